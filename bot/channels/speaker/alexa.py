"""An Alexa-style custom skill endpoint: ``POST /speaker/alexa``.

Every request is verified first (:mod:`bot.channels.speaker.alexa_verify`); a
request that fails is answered 400 and logged at warning level with the reason
(never the body). A genuine request is turned into something said to the
:class:`~bot.channels.speaker.channel.SpeakerChannel`, with the Alexa device
(``context.System.device.deviceId``) as the speaker:

* ``LaunchRequest``: "hello" (an unpaired device hears how to pair);
* ``IntentRequest``: ``AMAZON.YesIntent`` -> "yes", ``AMAZON.NoIntent`` -> "no",
  ``AMAZON.CancelIntent``/``AMAZON.StopIntent`` -> "cancel" (Stop also ends the
  session), ``AMAZON.HelpIntent`` -> "help", ``AMAZON.FallbackIntent`` -> asked
  again; any other intent says the values of its slots (the skill's catch-all
  intent carries the whole utterance in an ``AMAZON.SearchQuery`` slot, and a
  ``PinIntent`` its digits);
* ``SessionEndedRequest``: an empty response.

The answer is ``outputSpeech`` (SSML), a ``reprompt`` while something is pending,
and ``shouldEndSession``.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from billtalk.logs import get_logger
from bot.channels.speaker.channel import SpeakerChannel, SpokenReply, phrase

log = get_logger("bot.channels.speaker.alexa")

_BUILT_IN = {
    "AMAZON.YesIntent": "yes",
    "AMAZON.NoIntent": "no",
    "AMAZON.CancelIntent": "cancel",
    "AMAZON.StopIntent": "cancel",
    "AMAZON.HelpIntent": "help",
}
_REPROMPT = {"en": "What would you like to do?", "zh": "您还需要什么帮助？"}


def ssml(text: str) -> dict[str, str]:
    """``outputSpeech`` holding ``text`` as SSML."""
    return {"type": "SSML", "ssml": f"<speak>{escape(text)}</speak>"}


def alexa_response(reply: SpokenReply, *, end_session: bool | None = None) -> dict[str, Any]:
    """The skill response for a spoken reply."""
    end = reply.end_session if end_session is None else end_session
    response: dict[str, Any] = {"outputSpeech": ssml(reply.text), "shouldEndSession": end}
    if not end:
        response["reprompt"] = {
            "outputSpeech": ssml(_REPROMPT.get(reply.language, _REPROMPT["en"]))
        }
    return {"version": "1.0", "response": response}


def _language(locale: Any) -> str:
    return "zh" if isinstance(locale, str) and locale.lower().startswith("zh") else "en"


def _slot_text(intent: dict[str, Any]) -> str:
    slots = intent.get("slots") or {}
    values = [
        str(slot.get("value")).strip()
        for slot in slots.values()
        if isinstance(slot, dict) and slot.get("value")
    ]
    return " ".join(values)


async def answer(channel: SpeakerChannel, request: dict[str, Any]) -> dict[str, Any]:
    """Answer one verified Alexa request body."""
    inner = request["request"]
    kind = inner.get("type")
    system = (request.get("context") or {}).get("System") or {}
    device = (system.get("device") or {}).get("deviceId") or (system.get("user") or {}).get(
        "userId"
    )
    lang = _language(inner.get("locale"))
    if kind == "SessionEndedRequest":
        log.info("alexa_session_ended", reason=inner.get("reason"))
        return {"version": "1.0", "response": {}}
    if not device:
        reply = SpokenReply(phrase("nothing_heard", lang), lang, handled=False)
        return alexa_response(reply, end_session=True)
    device_id = f"alexa:{device}"[:128]
    if kind == "LaunchRequest":
        reply = await channel.ask(
            device_id, "你好" if lang == "zh" else "hello", language=lang, source="alexa"
        )
        return alexa_response(reply, end_session=False)
    if kind != "IntentRequest":
        log.warning("alexa_unknown_request_type", type=str(kind)[:40])
        reply = SpokenReply(phrase("nothing_heard", lang), lang, handled=False)
        return alexa_response(reply, end_session=True)
    intent = inner.get("intent") or {}
    name = str(intent.get("name") or "")
    if name == "AMAZON.FallbackIntent":
        reply = SpokenReply(phrase("not_understood", lang), lang, handled=False)
        return alexa_response(reply, end_session=False)
    text = _BUILT_IN.get(name) or _slot_text(intent)
    if name == "AMAZON.StopIntent":
        reply = await channel.ask(device_id, text, language=lang, source="alexa")
        return alexa_response(reply, end_session=True)
    reply = await channel.ask(device_id, text, language=lang, source="alexa")
    return alexa_response(reply)
