"""The speaker channel: one spoken request in, what the speaker says out.

:class:`SpeakerChannel` is what the three front ends (Wyoming, Alexa, HTTP)
share. For each request it

1. records the device (``speaker_devices``);
2. answers a *weak* transcript without acting on it: it says what it heard and
   asks again, and after ``max_weak_transcripts`` misses in a row suggests the chat;
3. for an **unpaired** device, refuses while pairing is locked, otherwise lets the
   engine's unlinked flow redeem a link code ("my link code is 123456") and counts
   wrong codes (too many lock pairing for the device, and too many from all
   devices together lock it for every unpaired one); the engine never tells an
   unlinked user an amount, and the speaker's reply explains how to pair;
4. for a **paired** device, hands the text to the engine (channel ``speaker``,
   the device id as the channel user, so the conversation continues across
   requests and connections) and returns the spoken rendering;
5. when the dialogue refused a payment on the speaker (at or above the step-up
   amount, see :mod:`bot.channels.speaker.payment_rule`), pushes a step-up
   request to the resident's linked chat.

Spoken digits ("one two three four five six", "一二三四五六", "5 2 9 1 8 0") are
turned into figures first, so a spoken PIN or link code reaches the dialogue as
digits; after a PIN prompt, a PIN said with its carrier phrase ("my PIN is ...")
reaches it as the digits alone.

:meth:`SpeakerChannel.expectation` tells the recogniser what the dialogue waits
for on a device (a PIN, a yes/no confirmation, a link code on an unpaired
speaker), so the answer is decoded with that in mind (:mod:`speech.expectation`).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billtalk.logs import get_logger
from bot.channels.base import ChannelCapabilities, ChannelUnreachable
from bot.channels.speaker.devices import CHANNEL, DeviceRegistry
from bot.channels.speaker.settings import SpeakerSettings, get_speaker_settings
from bot.messages import IncomingMessage, OutgoingMessage
from bot.spoken import speak

log = get_logger("bot.channels.speaker")

_ZH_DIGITS = {
    "零": "0",
    "〇": "0",
    "一": "1",
    "幺": "1",
    "二": "2",
    "两": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "八": "8",
    "九": "9",
}
_ZH_DIGIT = f"[{''.join(_ZH_DIGITS)}]"
#: Four or more Chinese digit words, maybe spaced as Whisper writes them ("二 四 六 八").
_ZH_RUN = re.compile(f"{_ZH_DIGIT}(?:[ \u3000]?{_ZH_DIGIT}){{3,}}")
#: Groups of figures spaced as Whisper writes a spoken PIN ("5 2 9 1", "551 9 0 7"):
#: joined when they hold 4-8 digits together (:data:`SPACED_DIGITS`) in three groups or
#: more, or in groups of three ("835 012"); "pay 12 40" stays.
_SPACED_FIGURES = re.compile(r"(?<![\d.])\d{1,3}(?: \d{1,3})+(?![\d.])")
SPACED_DIGITS = range(4, 9)


def _join_spaced(match: re.Match[str]) -> str:
    groups = match[0].split(" ")
    joined = "".join(groups)
    grouped = len(groups) >= 3 or all(len(g) == 3 for g in groups)
    return joined if grouped and len(joined) in SPACED_DIGITS else match[0]


#: A PIN said with a carrier phrase, after a PIN prompt ("my pin is 610384"). Its digits
#: may come in groups ("my pin is 48 2913"): how Whisper groups them differs by CPU.
_PIN_CARRIER = re.compile(
    r"(?:(?:here is |here's |it's |it is )?(?:my |the )?(?:pin|pin code|code|password)"
    r"(?: is| number is)?|it's|it is) (\d(?: ?\d){3,7})"
)

#: What the speaker says that the written dialogue can't (pairing, weak audio).
PHRASES: dict[str, dict[str, str]] = {
    "pair_how": {
        "en": "This speaker isn't paired with a household yet. To pair it, say: my link code "
        "is, followed by the digits of your household's link code.",
        "zh": "这个音箱还没有绑定住户。请说：我的绑定码是，然后读出您家的绑定码。",
    },
    "pair_bad_code": {
        "en": "That link code didn't work. Please check it and say it again.",
        "zh": "这个绑定码无效。请核对后再说一遍。",
    },
    "pair_locked": {
        "en": "Too many wrong link codes. Pairing this speaker is locked for {minutes} minutes.",
        "zh": "绑定码错误次数过多，这个音箱的绑定已锁定{minutes}分钟。",
    },
    "pair_done": {
        "en": "Done: this speaker is now paired with your household. Ask me how much you owe.",
        "zh": "绑定成功！现在可以问我欠多少钱。",
    },
    "weak": {
        "en": "I'm not sure I heard that right. I heard: {heard}. Please say it again.",
        "zh": "我不确定听清楚了，我听到的是：{heard}。请再说一遍。",
    },
    "weak_give_up": {
        "en": "Sorry, I'm having trouble hearing you. You can ask me in the Telegram chat instead.",
        "zh": "抱歉，我听不清楚。您也可以在 Telegram 聊天里问我。",
    },
    "nothing_heard": {
        "en": "I didn't hear anything. Please say it again.",
        "zh": "我没有听到声音，请再说一遍。",
    },
    "not_understood": {
        "en": "Sorry, I didn't catch that. Please say it again.",
        "zh": "抱歉，我没听懂，请再说一遍。",
    },
    "language_unsupported": {
        "en": "Sorry, this speaker only understands English by voice. You can ask me in Chinese "
        "in the Telegram chat.",
        "zh": "抱歉，这个音箱的语音识别只支持英语。您可以在 Telegram 聊天里用中文问我。",
    },
    "too_long": {
        "en": "That was too long for me. Please ask one short question at a time.",
        "zh": "这段话太长了，请一次只问一个简短的问题。",
    },
    "step_up_push_all": {
        "en": "You asked a speaker to pay {amount} towards your bills. Payments of this size "
        'must be confirmed here: say "pay everything" to continue.',
        "zh": "您通过音箱要求缴纳{amount}。这个金额需要在这里确认：请发送“全部缴清”继续。",
    },
    "step_up_push": {
        "en": "You asked a speaker to pay {amount} for {utility}. Payments of this size must "
        'be confirmed here: say "pay the {utility} bill" to continue.',
        "zh": "您通过音箱要求缴纳{utility}{amount}。这个金额需要在这里确认："
        "请发送“缴{utility}费”继续。",
    },
}


def phrase(key: str, language: str, **params: Any) -> str:
    """A speaker phrase in ``language`` (``en`` unless ``zh``)."""
    lang = "zh" if language == "zh" else "en"
    return PHRASES[key][lang].format(**params)


def normalize_language(value: str | None) -> str | None:
    """``"zh-CN"``/``"cmn"`` -> ``"zh"``, ``"en-US"`` -> ``"en"``, else ``None``."""
    if not value:
        return None
    low = value.lower()
    if low.startswith(("zh", "cmn")):
        return "zh"
    if low.startswith("en"):
        return "en"
    return None


def spoken_figures(text: str) -> str:
    """Spoken digits as figures: PINs and link codes said aloud reach the dialogue as digits."""
    from speech.numbers import normalize_transcript, spoken_digits

    stripped = text.strip()
    if not stripped:
        return stripped
    stripped = _SPACED_FIGURES.sub(_join_spaced, stripped)
    zh = _ZH_RUN.sub(lambda m: "".join(_ZH_DIGITS[c] for c in m[0] if c in _ZH_DIGITS), stripped)
    if zh != stripped:
        return zh
    if re.search(r"[a-zA-Z]", stripped):
        digits = spoken_digits(stripped.lower().rstrip(".!?"))
        if digits is not None:
            return digits
        return normalize_transcript(stripped)
    return stripped


def dialogue_text(text: str, expect: str | None = None) -> str:
    """What the dialogue gets for a transcript: :func:`spoken_figures`, and after a PIN
    prompt (``expect="pin"``) a PIN said with its carrier phrase as the digits alone."""
    figures = spoken_figures(text)
    if expect == "pin":
        said = _PIN_CARRIER.fullmatch(figures.lower().rstrip(".!?"))
        if said is not None:
            return said[1].replace(" ", "")
    return figures


@dataclass(frozen=True)
class SpokenReply:
    """What the speaker says for one request.

    Attributes:
        text: The spoken rendering (amounts with two decimals, no symbols).
        language: ``en`` or ``zh``.
        handled: The dialogue acted on the request (Wyoming ``handled``); False for
            re-asks, pairing prompts and errors (``not-handled``).
        end_session: The exchange is over (nothing is pending).
        messages: The engine's messages, when the engine answered.
    """

    text: str
    language: str
    handled: bool = True
    end_session: bool = False
    messages: tuple[OutgoingMessage, ...] = field(default=())


class SpeakerChannel:
    """The voice channel onto the dialogue engine (see the module docstring).

    Args:
        engine: The :class:`~bot.engine.DialogueEngine`.
        devices: The speaker registry (default: on the engine's database).
        settings: Speaker settings.
    """

    name = CHANNEL
    capabilities = ChannelCapabilities(
        buttons=False, files=False, voice_out=True, max_text_chars=None, markup="plain"
    )

    def __init__(
        self,
        engine: Any,
        devices: DeviceRegistry | None = None,
        settings: SpeakerSettings | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings or get_speaker_settings()
        self.devices = devices or DeviceRegistry(
            engine.store.engine,
            max_failures=self.settings.pairing_max_failures,
            lock_minutes=self.settings.pairing_lock_minutes,
        )
        self._weak: dict[str, int] = {}
        self._seen: dict[str, tuple[float, str | None]] = {}
        #: When wrong link codes were said, by any speaker (monotonic seconds).
        self._failures: deque[float] = deque()

    async def send(self, user: str, message: OutgoingMessage) -> None:
        """Speakers only answer when spoken to: a pushed message can't be delivered here.

        Raises:
            ChannelUnreachable: Always (the push path should target the resident's chat).
        """
        raise ChannelUnreachable("a speaker can't be spoken to unprompted")

    def _now(self) -> datetime:
        now: datetime = self.engine.clock()
        return now

    async def expectation(self, device_id: str) -> str | None:
        """What the dialogue waits for from ``device_id`` (for the recogniser).

        ``link_code`` on an unpaired speaker (it has been told to say its link code),
        else what the device's conversation waits for
        (:meth:`~bot.engine.DialogueEngine.expectation`): ``pin`` after a PIN prompt,
        ``yes_no`` after a payment confirmation, ``utility`` / ``method`` after "which
        bill?" / "how would you like to pay?", None.
        """
        return await asyncio.to_thread(self._expectation, device_id)

    def _expectation(self, device_id: str) -> str | None:
        if self.engine.store.linked_resident(CHANNEL, device_id) is None:
            return "link_code"
        return self.engine.expectation(CHANNEL, device_id)

    async def ask(
        self,
        device_id: str,
        text: str,
        *,
        language: str | None = None,
        weak: bool = False,
        source: str = "wyoming",
        label: str | None = None,
    ) -> SpokenReply:
        """Answer one spoken request from ``device_id``.

        Args:
            device_id: The speaker (Wyoming ``device_id``/``satellite_id``, an Alexa
                device, an HTTP device).
            text: What was said (a transcript).
            language: ``en``/``zh`` (or a locale such as ``zh-CN``), if known.
            weak: The recogniser was unsure: say what was heard and ask again.
            source: ``wyoming``, ``alexa`` or ``http`` (recorded with the device).
            label: What the device calls itself (its area, "kitchen").
        """
        lang = normalize_language(language) or _guess_language(text)
        now = self._now()
        await self._touch(device_id, source, now, label)
        text = (text or "").strip()
        if not text:
            return SpokenReply(phrase("nothing_heard", lang), lang, handled=False)
        if weak:
            misses = self._weak.get(device_id, 0) + 1
            if misses >= self.settings.max_weak_transcripts:
                self._weak.pop(device_id, None)
                log.warning("speaker_weak_transcripts", device=device_id, misses=misses)
                return SpokenReply(phrase("weak_give_up", lang), lang, handled=False)
            self._weak[device_id] = misses
            return SpokenReply(phrase("weak", lang, heard=text), lang, handled=False)
        self._weak.pop(device_id, None)
        linked = await asyncio.to_thread(self.engine.store.linked_resident, CHANNEL, device_id)
        if linked is None:
            return await self._unpaired(device_id, text, lang, now)
        return await self._paired(device_id, text, lang, linked[0])

    async def _touch(self, device_id: str, source: str, now: datetime, label: str | None) -> None:
        """Record the device as heard, at most once a minute per device (a write per request
        would cost more than the rest of a short turn)."""
        seen = self._seen.get(device_id)
        mono = time.monotonic()
        if seen is not None and mono - seen[0] < 60 and seen[1] == label:
            return
        await asyncio.to_thread(self.devices.touch, device_id, source, now, label)
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[device_id] = (mono, label)

    # -- unpaired -----------------------------------------------------------------------

    async def _unpaired(self, device_id: str, text: str, lang: str, now: datetime) -> SpokenReply:
        if self._globally_locked():
            log.warning("speaker_pairing_locked_for_all", device=device_id)
            minutes = self.settings.pairing_lock_minutes
            return SpokenReply(phrase("pair_locked", lang, minutes=minutes), lang, handled=False)
        until = await asyncio.to_thread(self.devices.pairing_locked_until, device_id, now)
        if until is not None:
            minutes = max(1, int((until - now).total_seconds() // 60) + 1)
            log.warning("speaker_pairing_locked", device=device_id)
            return SpokenReply(phrase("pair_locked", lang, minutes=minutes), lang, handled=False)
        messages = await self.engine.handle(
            IncomingMessage(
                channel=CHANNEL,
                external_user_id=device_id,
                text=spoken_figures(text),
                language=lang,
                supports_files=False,
            )
        )
        if await asyncio.to_thread(self.engine.store.linked_resident, CHANNEL, device_id):
            await asyncio.to_thread(self.devices.record_paired, device_id)
            log.info("speaker_paired", device=device_id)
            return SpokenReply(phrase("pair_done", lang), lang, messages=tuple(messages))
        actions = await asyncio.to_thread(self._last_actions, device_id)
        if "link_account" in actions:
            self._failures.append(time.monotonic())
            locked = await asyncio.to_thread(self.devices.record_failed_code, device_id, now)
            log.warning("speaker_pairing_bad_code", device=device_id, locked=locked is not None)
            if locked is not None:
                minutes = self.settings.pairing_lock_minutes
                return SpokenReply(phrase("pair_locked", lang, minutes=minutes), lang, False)
            return SpokenReply(phrase("pair_bad_code", lang), lang, handled=False)
        return SpokenReply(phrase("pair_how", lang), lang, handled=False)

    def _globally_locked(self) -> bool:
        """Too many wrong link codes from all speakers within the lock period."""
        window = self.settings.pairing_lock_minutes * 60
        oldest = time.monotonic() - window
        while self._failures and self._failures[0] < oldest:
            self._failures.popleft()
        return len(self._failures) >= self.settings.pairing_max_failures_global

    def _last_turn(self, device_id: str) -> Any:
        store = self.engine.store
        conv = store.conversation_id_for(CHANNEL, device_id, None, self._now())
        return store.last_turn(conv)

    def _last_actions(self, device_id: str) -> list[str]:
        row = self._last_turn(device_id)
        return list(json.loads(row.actions or "[]")) if row is not None else []

    # -- paired -------------------------------------------------------------------------

    async def _paired(self, device_id: str, text: str, lang: str, resident_id: str) -> SpokenReply:
        said_text = spoken_figures(text)
        if _PIN_CARRIER.fullmatch(said_text.lower().rstrip(".!?")):
            # "my PIN is 610384" after a PIN prompt: the dialogue takes the digits alone.
            said_text = dialogue_text(said_text, await self.expectation(device_id))
        messages = await self.engine.handle(
            IncomingMessage(
                channel=CHANNEL,
                external_user_id=device_id,
                text=said_text,
                language=lang,
                supports_files=False,
            )
        )
        row = await asyncio.to_thread(self._last_turn, device_id)
        actions = list(json.loads(row.actions or "[]")) if row is not None else []
        if "speaker_payment_refused" in actions and row is not None:
            await self._push_step_up(resident_id, row)
        if not messages:
            return SpokenReply("", lang, handled=False, end_session=True)
        reply_lang = messages[0].language or lang
        said = " ".join(
            m.spoken or speak(m.text, [b.title for b in m.buttons], m.language) for m in messages
        )
        pending = bool(messages[-1].buttons) or said.rstrip().endswith(("?", "？"))
        understood = not any(a in actions for a in _NOT_HANDLED) and (
            row is None or row.intent not in ("out_of_scope", "nlu_fallback")
        )
        return SpokenReply(
            said, reply_lang, handled=understood, end_session=not pending, messages=tuple(messages)
        )

    async def _push_step_up(self, resident_id: str, row: Any) -> None:
        """Ask the resident's chat to confirm the payment the speaker refused."""
        slots = json.loads(row.slots_after or "{}")
        wanted = slots.get("speaker_refused_payment") or {}
        lang = row.language or "en"
        amount = str(wanted.get("amount", ""))
        utility = wanted.get("utility")
        shown = f"{amount} yuan" if lang != "zh" else f"{amount}元"
        if utility:
            text = phrase(
                "step_up_push", lang, amount=shown, utility=_utility_name(str(utility), lang)
            )
        else:  # "pay everything": one payment towards the oldest bills first
            text = phrase("step_up_push_all", lang, amount=shown)
        push = getattr(self.engine, "push", None)
        if push is None:
            log.warning("speaker_step_up_push_unavailable")
            return
        try:
            queued = await push(
                resident_id,
                text,
                kind="step_up",
                dedupe_key=f"speaker-step-up:{row.conversation_id}:{row.turn}",
                channels=tuple(c for c in ("telegram", "terminal") if c != CHANNEL),
            )
        except Exception as exc:  # the spoken answer must not fail because of the push
            log.warning("speaker_step_up_push_failed", error=type(exc).__name__)
            return
        log.info("speaker_step_up_pushed", queued=queued)


#: Turn actions that mean the dialogue did not act on the request (Wyoming ``not-handled``).
_NOT_HANDLED = frozenset({"fallback", "no_such_button", "refused_too_long", "misunderstood"})

_ZH_UTILITIES = {"electricity": "电", "water": "水", "gas": "燃气", "property_fee": "物业"}


def _utility_name(utility: str, lang: str) -> str:
    if lang == "zh":
        return _ZH_UTILITIES.get(utility, utility)
    return utility.replace("_", " ")


def _guess_language(text: str) -> str:
    return "zh" if re.search(r"[\u4e00-\u9fff]", text or "") else "en"
