"""The biometric enrollment form: PIN step-up, then face or voice enrollment, or deletion.

Steps (``state.form_step`` while ``state.active_form == "enrollment"``):

* ``enroll_pin``: the resident must pass a PIN step-up in this session first
  (issue 6: enrollment only "in a verified session"). Without a PIN the PIN
  set-up runs first (``active_form == "pin_setup"`` with ``{"for": "biometrics"}``).
* ``enroll_choice``: buttons Face / Voice / Delete my biometrics.
* ``enroll_face``: 1-5 selfies (image attachments), then "done"; or one video
  note, whose quality-checked near-frontal frames become a small gallery at once.
* ``enroll_voice``: five prompted digit strings, one voice note each.
* ``enroll_delete``: a confirm button, then every template is deleted (audited).

Photos and recordings are biometric data: they are never put into the
conversation state (which is stored as JSON) nor logged. Between turns they are
held encrypted in the dialogue's database (:class:`bot.enrollment_media.PendingSamples`),
so the resident's next message may reach another worker or a restarted one and
the enrollment continues; they are deleted once the enrollment is done, fails,
is cancelled, or after ``_PENDING_TTL_S``. Only counts and the prompted digits
(not secret) are kept in the state. Should the samples be gone anyway (expired),
the resident is asked to send them again.

A photo or voice note sent *before* the form asks for it (while the PIN is set
up or asked for, or at the Face / Voice choice) is kept the same way, under the
session's ``:early`` key, and the resident is told so. A photo at the choice
starts the face enrollment, a voice note the voice one. When the face step
starts, the kept photos are used as if just sent. A voice note is never used
as a recording: every recording must read digits the bot chose at random when
it asked (so a recording made earlier, or by someone else, cannot enroll), and
nobody had asked for any yet. When the voice step starts the resident is told
so and the prompts follow as usual. Kept samples of the other kind are
deleted unused.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from billtalk.logs import get_logger
from bot.enrollment_media import PendingSamples
from bot.responses import ButtonSpec, Reply, Term
from bot.turn import Turn
from verification import Challenge, Decision, Evidence, VerificationKind

if TYPE_CHECKING:
    from biometrics.store import TemplateStore
    from bot.forms.host import FormHost

log = get_logger("bot.enrollment")

#: Selfies accepted for one face enrollment.
MAX_PHOTOS = 5
#: How long collected samples wait for the next message (seconds).
_PENDING_TTL_S = 600.0
#: Words that finish the selfie step.
DONE_RE = re.compile(
    r"^\s*(done|finish(ed)?|that'?s (all|it)|ok(ay)?|完成|好了|就这些)\s*[.!。！]?\s*$", re.I
)

FACE_CODES = frozenset(
    {
        "no_face",
        "multiple_faces",
        "face_too_small",
        "too_blurry",
        "corrupt_image",
        "unsupported_format",
        "image_too_large",
        "inconsistent_photos",
        "too_dark",
        "corrupt_video",
        "video_too_long",
    }
)
VOICE_CODES = frozenset(
    {
        "corrupt_audio",
        "silent",
        "audio_too_short",
        "audio_too_long",
        "wrong_digits",
        "inconsistent_speaker",
        "unprompted",
    }
)


class EnrollmentForm:
    """Runs biometric enrollment for the policy.

    Args:
        policy: The policy (settings, stores, verification service, payloads).
    """

    def __init__(self, policy: FormHost) -> None:
        self.policy = policy
        self.pending = PendingSamples(policy.store, ttl_s=_PENDING_TTL_S)

    # -- helpers ----------------------------------------------------------------

    def _templates(self) -> TemplateStore:
        from biometrics.store import TemplateStore

        for verifier in self.policy.verification.registry.values():
            store = getattr(verifier, "store", None)
            if isinstance(store, TemplateStore):
                return store
        return TemplateStore(self.policy.store.engine)

    def _kinds(self) -> list[str]:
        registry = self.policy.verification.registry
        return [str(k) for k in (VerificationKind.FACE, VerificationKind.VOICE) if k in registry]

    @staticmethod
    def _actor(turn: Turn) -> str:
        return f"resident:{turn.resident_id}"

    @staticmethod
    def _key(turn: Turn) -> str:
        return f"{turn.conversation_id}:{turn.state.session_id}"

    def _early_key(self, turn: Turn) -> str:
        return f"{self._key(turn)}:early"

    def _verified(self, turn: Turn) -> bool:
        return turn.state.slots.get("enroll_verified") == turn.state.session_id

    def _finish(self, turn: Turn) -> None:
        self.pending.drop(self._key(turn))
        self.pending.drop(self._early_key(turn))
        turn.state.clear_form()
        turn.state.slots.pop("enroll", None)

    # -- entry ------------------------------------------------------------------

    async def start(self, turn: Turn, kind: str = "") -> None:
        """``enroll_biometrics``: PIN first, PIN step-up, then the choice (or ``kind``)."""
        state = turn.state
        resident_id = str(turn.resident_id)
        pin = self.policy.verification.registry[VerificationKind.PIN]
        if state.active_form == "payment":
            self.policy.form.cancel(turn)
        state.clear_form()
        state.slots["enroll"] = {"kind": kind if kind in self._kinds() else ""}
        if not await pin.is_enrolled(resident_id):
            # The PIN comes first, and only with a one-time code from the property
            # office (bot.policy.Policy.start_pin_setup): never on the chat's say-so.
            state.active_form = "pin_setup"
            state.form_step = "pin_code"
            state.pin_setup = {"for": "biometrics"}
            turn.say("enroll_pin_first")
            turn.say("pin_code_ask")
            return
        await self._step_up(turn)

    async def after_pin_setup(self, turn: Turn) -> None:
        """The PIN set-up of the enrollment finished: continue with the step-up."""
        await self._step_up(turn)

    async def _step_up(self, turn: Turn) -> None:
        state = turn.state
        if self._verified(turn):
            await self._choose(turn)
            return
        service = self.policy.verification
        resident_id = str(turn.resident_id)
        until = service.locked_until(resident_id, VerificationKind.PIN)
        if until is not None:
            self._finish(turn)
            turn.say("verification_locked_enroll", until=until)
            return
        challenge = await service.start(resident_id, VerificationKind.PIN)
        state.active_form = "enrollment"
        state.form_step = "enroll_pin"
        state.verification = challenge.to_dict()
        turn.actions.append("enroll_step_up")
        turn.say("enroll_stepup_required")
        turn.say(challenge.prompt_key)

    async def pin(self, turn: Turn, text: str) -> None:
        """The PIN typed for the enrollment step-up."""
        state = turn.state
        if state.verification is None:
            self._finish(turn)
            turn.say("confirmation_stale")
            return
        challenge = Challenge.from_dict(state.verification)
        service = self.policy.verification
        outcome = await service.verify(
            str(turn.resident_id), challenge, Evidence("text", text.encode())
        )
        turn.verification.append(outcome.to_log())
        result = outcome.result
        if result.decision is Decision.ACCEPT:
            state.verification = None
            state.slots["enroll_verified"] = state.session_id
            turn.say("verify_ok")
            await self._choose(turn)
            return
        if result.decision is Decision.RETRY:
            if result.reason == "expired":
                turn.say("verify_expired")
                await self._step_up(turn)
            else:
                turn.say("verify_retry", reason=Term("verify_reason", result.reason))
            return
        if outcome.locked_until is not None or result.reason == "locked":
            self._finish(turn)
            turn.flag("verification_lockout")
            turn.actions.append("verification_locked")
            turn.say("verification_locked_enroll", until=outcome.locked_until or turn.now)
            return
        left = max(self.policy.settings.lockout_failures - outcome.failures, 0)
        turn.say("verify_failed_enroll", left=left)

    async def _choose(self, turn: Turn) -> None:
        state = turn.state
        state.active_form = "enrollment"
        kind = str((state.slots.get("enroll") or {}).get("kind") or "")
        if not kind:  # what was sent early answers the question
            kind = self._early_kind(turn)
            kind = kind if kind in self._kinds() else ""
        if kind == "face":
            await self._start_face(turn)
            return
        if kind == "voice":
            await self._start_voice(turn)
            return
        state.form_step = "enroll_choice"
        buttons = [
            ButtonSpec(
                "button_enroll",
                self.policy.payload(turn, "enroll_kind", kind=k),
                {"kind": Term("verify_kind", k)},
            )
            for k in self._kinds()
        ]
        buttons.append(
            ButtonSpec("button_enroll_delete", self.policy.payload(turn, "enroll_delete"))
        )
        buttons.append(ButtonSpec("button_cancel", self.policy.payload(turn, "cancel")))
        turn.add(Reply("enroll_choose", buttons=buttons))

    async def choose(self, turn: Turn, kind: str) -> None:
        """A button: Face, Voice or Delete."""
        state = turn.state
        if state.active_form != "enrollment" or not self._verified(turn):
            turn.say("enroll_not_verified")
            return
        if kind == "face" and "face" in self._kinds():
            await self._start_face(turn)
        elif kind == "voice" and "voice" in self._kinds():
            await self._start_voice(turn)
        elif kind == "delete":
            state.form_step = "enroll_delete"
            turn.add(
                Reply(
                    "enroll_delete_confirm",
                    buttons=[
                        ButtonSpec(
                            "button_enroll_delete_yes",
                            self.policy.payload(turn, "enroll_delete_yes"),
                        ),
                        ButtonSpec("button_cancel", self.policy.payload(turn, "cancel")),
                    ],
                )
            )
        else:
            turn.say("verify_unknown_kind")

    # -- face -------------------------------------------------------------------

    async def _start_face(self, turn: Turn) -> None:
        state = turn.state
        early = self._take_early(turn, "face")
        state.form_step = "enroll_face"
        state.slots["enroll"] = {"kind": "face", "photos": 0}
        self.pending.drop(self._key(turn))
        turn.actions.append("enroll_face_start")
        turn.say("enroll_face_prompt", max=MAX_PHOTOS)
        if early:
            turn.actions.append("enroll_early_media_used")
            turn.say("enroll_media_used_face", count=len(early))
            await self._face_photos(turn, early)

    async def _face_photos(self, turn: Turn, images: list[bytes] | None = None) -> None:
        from biometrics.face.service import observe

        key = self._key(turn)
        photos = self.pending.get(key)
        slot = turn.state.slots.setdefault("enroll", {"kind": "face"})
        if len(photos) != int(slot.get("photos") or 0):
            photos = []  # another worker or a restart: the earlier photos are gone
            turn.say("enroll_samples_lost")
        if images is None:
            videos = [a.data for a in turn.message.attachments if a.kind == "video"]
            if videos:
                await self._face_video(turn, videos[-1])
                return
            images = [a.data for a in turn.message.attachments if a.kind == "image"]
        if not images:
            turn.say("enroll_face_need_photo")
            return
        for data in images:
            if len(photos) >= MAX_PHOTOS:
                break
            try:
                await asyncio.to_thread(observe, data)
            except Exception as exc:  # FaceError: a clear re-ask, nothing kept
                code = str(getattr(exc, "code", "") or "")
                turn.actions.append(f"enroll_face_rejected:{code or type(exc).__name__}")
                turn.say(
                    "enroll_face_rejected", reason=Term("enroll_error", _code(code, FACE_CODES))
                )
                continue
            photos.append(data)
        self.pending.put(key, photos)
        slot["photos"] = len(photos)
        if len(photos) >= MAX_PHOTOS:
            await self._face_done(turn)
        elif photos:
            turn.say("enroll_face_got", count=len(photos), max=MAX_PHOTOS)

    async def _face_done(self, turn: Turn) -> None:
        from biometrics.face.service import EnrollmentError, enroll

        key = self._key(turn)
        photos = self.pending.get(key)
        slot = turn.state.slots.get("enroll") or {}
        if not photos:
            if slot.get("photos"):
                turn.say("enroll_samples_lost")
            turn.say("enroll_face_need_photo")
            return
        try:
            result = await asyncio.to_thread(
                enroll, self._templates(), str(turn.resident_id), photos, actor=self._actor(turn)
            )
        except EnrollmentError as exc:
            turn.actions.append(f"enroll_face_failed:{exc.code}")
            self.pending.drop(key)
            turn.state.slots["enroll"] = {"kind": "face", "photos": 0}
            turn.say(
                "enroll_face_rejected", reason=Term("enroll_error", _code(exc.code, FACE_CODES))
            )
            turn.say("enroll_face_again")
            return
        turn.actions.append("enroll_face_done")
        log.info("face_enrolled_in_chat", samples=result.samples)
        self._finish(turn)
        turn.say("enroll_face_done", count=result.samples)

    async def _face_video(self, turn: Turn, data: bytes) -> None:
        """Enroll from a video note: its best frames (quality-checked) become the gallery.

        See :func:`biometrics.face.service.enroll_from_video`. Selfies collected
        earlier in the step (already quality-checked) join the clip's gallery
        when they show the clip's person, and are dropped from the pending
        store once the video enrolls; if the video is refused they stay and the
        resident may send another video or more photos.
        """
        from biometrics.face.service import EnrollmentError, enroll_from_video

        key = self._key(turn)
        slot = turn.state.slots.get("enroll") or {}
        earlier = self.pending.get(key)
        if len(earlier) != int(slot.get("photos") or 0):
            earlier = []  # another worker or a restart: not the photos the resident sent
        try:
            result = await asyncio.to_thread(
                enroll_from_video,
                self._templates(),
                str(turn.resident_id),
                data,
                actor=self._actor(turn),
                photos=earlier,
            )
        except EnrollmentError as exc:
            turn.actions.append(f"enroll_face_video_rejected:{exc.code}")
            turn.say(
                "enroll_face_video_rejected",
                reason=Term("enroll_error", _code(exc.code, FACE_CODES)),
            )
            return
        self.pending.drop(key)
        turn.actions.append("enroll_face_done_video")
        if result.photos_merged:
            turn.actions.append(f"enroll_face_photos_merged:{result.photos_merged}")
        log.info(
            "face_enrolled_in_chat",
            samples=result.samples,
            video=True,
            photos_merged=result.photos_merged,
        )
        self._finish(turn)
        turn.say("enroll_face_done_video", count=result.samples - result.photos_merged)
        if result.photos_merged:
            turn.say("enroll_face_video_photos_merged", count=result.photos_merged)

    # -- voice ------------------------------------------------------------------

    async def _start_voice(self, turn: Turn) -> None:
        from biometrics.voice.enrollment import enrollment_prompts

        prompts = enrollment_prompts()
        state = turn.state
        early = self._take_early(turn, "voice")
        state.form_step = "enroll_voice"
        state.slots["enroll"] = {"kind": "voice", "prompts": prompts, "index": 0}
        self.pending.drop(self._key(turn))
        turn.actions.append("enroll_voice_start")
        turn.say("enroll_voice_prompt", count=len(prompts))
        if early:
            await self._early_voice(turn, early[-1].audio)
        self._voice_prompt(turn)

    async def _early_voice(self, turn: Turn, audio: bytes) -> None:
        """Explain why a voice note sent before the prompts is not used.

        Every enrollment recording must answer digits the bot chose at random
        (that is what makes a recording made earlier, or by someone else,
        useless), and nobody had asked for any digits yet. Only its arrival is
        acknowledged; the note itself was already deleted by ``_take_early``.
        """
        del audio
        turn.actions.append("enroll_voice_rejected:unprompted")
        turn.say("enroll_media_unusable_voice", reason=Term("enroll_error", "unprompted"))

    @staticmethod
    async def _voice_problem(sample: Any) -> str | None:
        """Why one recording cannot be used (an ``EnrollmentError`` code), or ``None``."""
        from biometrics.voice.enrollment import EnrollmentError, build_template

        try:
            await asyncio.to_thread(build_template, [sample], settings=_voice_settings_for_one())
        except EnrollmentError as exc:
            return str(exc.code)
        return None

    # -- media sent before the form asks for it -------------------------------------

    async def keep_early(self, turn: Turn, *, announce: bool = True) -> str | None:
        """Keep a photo or voice note sent before its step (encrypted); the kind kept.

        Up to :data:`MAX_PHOTOS` photos and the latest voice note are kept, under
        the session, until the step that uses them (or expiry, or cancel). With
        ``announce`` the resident is told it was kept.
        """
        from biometrics.voice.enrollment import EnrollmentSample

        media = [a for a in turn.message.attachments if a.kind in _MEDIA_KINDS]
        if not media:
            return None
        key = self._early_key(turn)
        held = self.pending.get(key)
        for attachment in media:
            if attachment.kind == "image":
                if sum(isinstance(h, bytes) for h in held) < MAX_PHOTOS:
                    held.append(attachment.data)
            else:
                held = [h for h in held if isinstance(h, bytes)]
                held.append(EnrollmentSample(attachment.data, None))
        self.pending.put(key, held)
        kind = "face" if _media_kind(turn) == "face" else "voice"
        turn.actions.append(f"enroll_early_media_kept:{kind}")
        if announce:
            turn.say("enroll_media_kept", kind=Term("enroll_media", kind))
        return kind

    def discard_early(self, turn: Turn) -> None:
        """Delete what was sent before its step (the enrollment's PIN set-up was cancelled)."""
        self.pending.drop(self._early_key(turn))

    def _early_kind(self, turn: Turn) -> str:
        """``face`` or ``voice`` when only samples of that kind are kept, else ``""``."""
        held = self.pending.get(self._early_key(turn))
        kinds = {"face" if isinstance(h, bytes) else "voice" for h in held}
        return kinds.pop() if len(kinds) == 1 else ""

    def _take_early(self, turn: Turn, kind: str) -> list[Any]:
        """The samples of ``kind`` kept before the step; all kept samples are deleted."""
        key = self._early_key(turn)
        held = self.pending.get(key)
        self.pending.drop(key)
        return [h for h in held if isinstance(h, bytes) == (kind == "face")]

    def _voice_prompt(self, turn: Turn) -> None:
        slot = turn.state.slots["enroll"]
        index = int(slot["index"])
        digits = str(slot["prompts"][index])
        turn.say(
            "enroll_voice_say",
            number=index + 1,
            count=len(slot["prompts"]),
            digits=" ".join(digits),
        )

    async def _voice_sample(self, turn: Turn) -> None:
        from biometrics.voice.enrollment import EnrollmentSample

        key = self._key(turn)
        slot = turn.state.slots["enroll"]
        samples = self.pending.get(key)
        if len(samples) != int(slot.get("index") or 0):
            samples = []
            slot["index"] = 0
            turn.say("enroll_samples_lost")
            self._voice_prompt(turn)
            self.pending.put(key, samples)
            return
        audio = [a for a in turn.message.attachments if a.kind in ("audio", "voice", "video")]
        if not audio:
            turn.say("enroll_voice_need_audio")
            self._voice_prompt(turn)
            return
        index = int(slot["index"])
        sample = EnrollmentSample(audio[0].data, str(slot["prompts"][index]))
        code = await self._voice_problem(sample)  # check it now: a bad one is re-asked at once
        if code == "prompt_too_short":  # prompts issued before they became longer: start over
            turn.actions.append("enroll_voice_rejected:prompt_too_short")
            self.pending.drop(key)
            await self._start_voice(turn)
            return
        if code is not None:
            turn.actions.append(f"enroll_voice_rejected:{code}")
            turn.say("enroll_voice_rejected", reason=Term("enroll_error", _code(code, VOICE_CODES)))
            self._voice_prompt(turn)
            return
        samples.append(sample)
        self.pending.put(key, samples)
        slot["index"] = index + 1
        if slot["index"] < len(slot["prompts"]):
            turn.say("enroll_voice_got", count=slot["index"], total=len(slot["prompts"]))
            self._voice_prompt(turn)
            return
        await self._voice_done(turn, samples)

    async def _voice_done(self, turn: Turn, samples: list[Any]) -> None:
        from biometrics.voice.enrollment import EnrollmentError, enroll

        try:
            report = await asyncio.to_thread(
                enroll, self._templates(), str(turn.resident_id), samples, actor=self._actor(turn)
            )
        except EnrollmentError as exc:
            turn.actions.append(f"enroll_voice_failed:{exc.code}")
            turn.say(
                "enroll_voice_rejected", reason=Term("enroll_error", _code(exc.code, VOICE_CODES))
            )
            slot = turn.state.slots["enroll"]
            if exc.code == "wrong_digits" and exc.index is not None:
                kept = samples[: exc.index] + samples[exc.index + 1 :]
                self.pending.put(self._key(turn), kept)
                # ask for the failed prompt again, at the end
                prompts = list(slot["prompts"])
                prompts.append(prompts.pop(exc.index))
                slot["prompts"], slot["index"] = prompts, len(kept)
            else:
                self.pending.drop(self._key(turn))
                await self._start_voice(turn)
                return
            self._voice_prompt(turn)
            return
        turn.actions.append("enroll_voice_done")
        log.info("voice_enrolled_in_chat", samples=report.samples)
        self._finish(turn)
        turn.say("enroll_voice_done")

    # -- delete -----------------------------------------------------------------

    async def delete(self, turn: Turn) -> None:
        """The resident confirmed: delete every biometric template (audited)."""
        state = turn.state
        if state.form_step != "enroll_delete" or not self._verified(turn):
            turn.say("enroll_not_verified")
            return
        removed = await asyncio.to_thread(
            self._templates().delete, str(turn.resident_id), None, actor=self._actor(turn)
        )
        turn.actions.append("enroll_deleted")
        self._finish(turn)
        turn.say("enroll_deleted" if removed else "enroll_deleted_none")

    # -- routing ----------------------------------------------------------------

    async def attachments(self, turn: Turn) -> None:
        """Files sent while enrolling (or while its PIN is set up)."""
        state = turn.state
        step = state.form_step
        if step == "enroll_face":
            await self._face_photos(turn)
        elif step == "enroll_voice":
            await self._voice_sample(turn)
        elif step in ("enroll_pin", "pin_new", "pin_repeat", "pin_code"):
            if await self.keep_early(turn) is None:
                await self.reprompt(turn)
            elif step == "enroll_pin":
                turn.say("verify_pin_prompt")
            else:
                turn.say("pin_code_ask" if step == "pin_code" else step)
        elif step == "enroll_choice" and self._verified(turn):
            # a photo answers "face", a voice note "voice": go straight to that step
            kind = _media_kind(turn)
            if kind is not None and kind in self._kinds():
                await self.keep_early(turn, announce=False)
                await self.choose(turn, kind)
            else:
                await self.reprompt(turn)
        else:
            await self.reprompt(turn)

    async def text(self, turn: Turn, text: str) -> bool:
        """Text while enrolling: "done" finishes the selfies; whether it was handled."""
        step = turn.state.form_step
        if step == "enroll_face" and DONE_RE.match(text):
            await self._face_done(turn)
            return True
        return False

    async def reprompt(self, turn: Turn) -> None:
        """Repeat the question of the current step."""
        step = turn.state.form_step
        if step == "enroll_pin":
            turn.say("verify_pin_prompt")
        elif step == "pin_code":
            turn.say("pin_code_ask")
        elif step in ("pin_new", "pin_repeat"):
            turn.say(step)
        elif step == "enroll_face":
            turn.say("enroll_face_need_photo")
        elif step == "enroll_voice":
            self._voice_prompt(turn)
        else:
            await self._choose(turn)

    def cancel(self, turn: Turn) -> None:
        """Cancel enrollment; nothing collected is kept."""
        self._finish(turn)
        turn.actions.append("cancel_enrollment")
        turn.say("enroll_cancelled")


#: Attachment kinds kept when sent early (``image`` for the face, the rest as a voice note).
_MEDIA_KINDS = frozenset({"image", "audio", "voice", "video"})


def _media_kind(turn: Turn) -> str | None:
    """``face`` (the last media is a photo), ``voice`` (a recording) or ``None`` (no media)."""
    media = [a for a in turn.message.attachments if a.kind in _MEDIA_KINDS]
    if not media:
        return None
    return "face" if media[-1].kind == "image" else "voice"


def _code(code: str, known: frozenset[str]) -> str:
    return code if code in known else "other"


def _voice_settings_for_one() -> Any:
    """Voice settings that accept a single recording (for checking one sample)."""
    from biometrics.voice.settings import get_voice_settings

    return get_voice_settings().model_copy(update={"enroll_utterances": 1})
