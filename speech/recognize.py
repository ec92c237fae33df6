"""Speech to text for billtalk: domain-adapted pocketsphinx, other engines by configuration.

The default engine is pocketsphinx, the only one whose model ships inside a
wheel and so works offline. Decoding runs in stages (see docs/speech.md):

1. the **domain trigram LM** (generated from the NLU training data) decodes the
   utterance; its words' lattice posteriors give the **confidence**;
2. when that confidence is below ``min_confidence``, the **general en-US model**
   (loaded lazily: it costs seconds once) decodes it too and the more confident
   result is kept. A result still below the threshold is marked ``weak``: the
   dialogue re-asks instead of acting on it;
3. when the dialogue knows what it asked, it passes an **answer grammar**
   (``grammar="amount"``, ``"yes_no"``, ``"utility"``, ``"month"``,
   ``"digits"``, or a JSGF file) and the decoder is held to it.

Every payment heard by voice is read back and explicitly confirmed by the
dialogue, whatever the confidence: a grammar can turn "how high is my electric
bill" into a well-formed payment request.

Other engines (``BILLTALK_SPEECH_ENGINE=vosk|whisper|faster_whisper``) go through
SpeechRecognition and need their models installed by the deployer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from billtalk.logs import get_logger
from speech.audio import SAMPLE_RATE, Audio, AudioError, add_noise_floor, load_audio, to_pcm16
from speech.grammar import digit_grammar, domain_model
from speech.numbers import DIGIT_WORDS, normalize_transcript
from speech.settings import SpeechSettings, get_speech_settings
from speech.sphinx import Decoded, get_decoder

log = get_logger("speech.recognize")

__all__ = ["Transcript", "recognize_digits", "transcribe", "word_error_rate"]


@dataclass(frozen=True)
class Transcript:
    """What was said, as text the NLU and challenge checker can use.

    Attributes:
        text: The transcript with spoken numbers as figures ("pay 120.50 yuan for
            water"); for :func:`recognize_digits`, the digits spaced ("4 7 1 9").
        confidence: 0-1; below ``min_confidence`` the result is ``weak``.
        duration_s: Duration of the audio as received, in seconds.
        engine: Engine and stage that produced ``text``, e.g.
            ``"pocketsphinx/grammar"``, ``"pocketsphinx/domain-lm"``,
            ``"pocketsphinx/general"``, ``"pocketsphinx/digits"``, ``"vosk"``.
        words: The recognised words before number normalisation.
        weak: Whether the dialogue should re-ask rather than act on it.
        digits: For :func:`recognize_digits`, the digit string ("4719"), else None.
        decode_s: Wall-clock seconds spent decoding (for real-time factor).
    """

    text: str
    confidence: float
    duration_s: float
    engine: str
    words: str = ""
    weak: bool = False
    digits: str | None = None
    decode_s: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """The JSON form printed by ``billtalk speech transcribe``."""
        out: dict[str, object] = {
            "text": self.text,
            "duration_s": round(self.duration_s, 3),
            "confidence": round(self.confidence, 3),
            "weak": self.weak,
            "engine": self.engine,
            "words": self.words,
        }
        if self.digits is not None:
            out["digits"] = self.digits
        return out


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` (edits / reference words)."""
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return 0.0 if not hyp else 1.0
    return _edit_distance(ref, hyp) / len(ref)


def _edit_distance(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def word_agreement(a: str, b: str) -> float:
    """How far two hypotheses agree word by word: 1 - their word edit distance over the
    longer one's length (symmetric; 0.0 when both are empty).

    A grammar decode that agrees with the free LM decode of the same audio is more
    believable than one that does not (:func:`recognize_digits`,
    :func:`speech.expectation.decode_in_state`).
    """
    wa, wb = a.split(), b.split()
    if not wa and not wb:
        return 0.0
    return 1.0 - _edit_distance(wa, wb) / max(len(wa), len(wb))


def decode_confidence(decoded: Decoded) -> float:
    """Confidence (0-1) of one pocketsphinx decode from its words' lattice posteriors.

    The mean says how sure the decoder is overall, the minimum catches the one
    wrong word (an amount, a utility) that matters most in a payment request;
    both count. Calibrated on the synthetic benchmark (bench/speech.py).
    """
    posts = decoded.word_posteriors
    if not decoded.text or not posts:
        return 0.0
    return round(0.5 * sum(posts) / len(posts) + 0.5 * min(posts), 4)


def checked_confidence(decoded: Decoded, agreement: float) -> float:
    """Confidence of a constrained decode (a grammar, a digit loop): half its own
    lattice's (:func:`decode_confidence`), half how far an independent decode of the
    same audio agrees with it (``agreement``, 0-1, e.g. :func:`word_agreement`).

    A grammar always finds *some* sentence; it is trusted only as far as both say.
    """
    return round(0.5 * decode_confidence(decoded) + 0.5 * agreement, 4)


def _as_audio(audio: bytes | Path | str | Audio, settings: SpeechSettings) -> Audio:
    if isinstance(audio, Audio):
        return audio
    return load_audio(
        audio, max_seconds=settings.max_seconds, vad_aggressiveness=settings.vad_aggressiveness
    )


def pcm_for(audio: Audio, settings: SpeechSettings) -> tuple[bytes, int]:
    """The 16-bit PCM and sample rate pocketsphinx decodes ``audio`` at.

    The settings' noise floor (``dither_db``) is added; in ``narrowband`` telephone
    mode audio that arrived at 8 kHz or less is decoded at 8 kHz.
    """
    samples = add_noise_floor(audio.samples, settings.dither_db)
    if settings.telephone_mode == "narrowband" and audio.source_rate <= 8000:
        import librosa

        samples = librosa.resample(samples, orig_sr=SAMPLE_RATE, target_sr=8000)
        return to_pcm16(samples), 8000
    return to_pcm16(samples), SAMPLE_RATE


def transcribe(
    audio: bytes | Path | str | Audio,
    *,
    grammar: str | Path | None = None,
    settings: SpeechSettings | None = None,
) -> Transcript:
    """Recognise what was said.

    Args:
        audio: Encoded audio (WAV, FLAC, OGG/Opus, MP3) as bytes or a path, or an
            already loaded :class:`~speech.audio.Audio`.
        grammar: ``None`` for the domain LM with the general fallback (the
            default); an answer grammar name (``"amount"``, ``"yes_no"``,
            ``"utility"``, ``"month"``); ``"digits"`` for a digit string;
            ``"general"`` for the general model only; or the path of a JSGF file.
        settings: Speech settings; defaults to :func:`get_speech_settings`.

    Returns:
        The :class:`Transcript`.

    Raises:
        AudioError: The audio is empty, silent, corrupt, truncated, too long or
            holds no speech.
    """
    settings = settings or get_speech_settings()
    loaded = _as_audio(audio, settings)
    if grammar == "digits":
        return recognize_digits(loaded, settings=settings)
    started = time.perf_counter()
    if settings.engine != "pocketsphinx":
        result = _transcribe_other(loaded, settings)
    else:
        result = _transcribe_sphinx(loaded, grammar, settings)
    elapsed = time.perf_counter() - started
    log.info(
        "speech_transcribed",
        engine=result.engine,
        confidence=result.confidence,
        duration_s=loaded.duration_s,
        decode_s=round(elapsed, 3),
    )
    return replace(result, decode_s=elapsed)


def _result(
    words: str, confidence: float, audio: Audio, engine: str, settings: SpeechSettings
) -> Transcript:
    return Transcript(
        text=normalize_transcript(words),
        confidence=confidence,
        duration_s=audio.duration_s,
        engine=engine,
        words=words,
        weak=confidence < settings.min_confidence or not words,
    )


def _transcribe_sphinx(
    audio: Audio, grammar: str | Path | None, settings: SpeechSettings
) -> Transcript:
    pcm, rate = pcm_for(audio, settings)
    model = domain_model()
    if grammar == "general":
        general = get_decoder("lm", None, None, sample_rate=rate).decode(pcm)
        return _result(
            general.text, decode_confidence(general), audio, "pocketsphinx/general", settings
        )
    lm = get_decoder("lm", model.lm, model.dictionary, sample_rate=rate).decode(pcm)
    if grammar is not None:
        path = model.answers.get(str(grammar)) or Path(grammar)
        if not path.is_file():
            raise ValueError(f"unknown grammar {grammar!r}: use one of {sorted(model.answers)}")
        constrained = get_decoder("jsgf", path, model.dictionary, sample_rate=rate).decode(pcm)
        conf = checked_confidence(constrained, word_agreement(constrained.text, lm.text))
        return _result(constrained.text, conf, audio, f"pocketsphinx/{path.stem}", settings)
    best = (decode_confidence(lm), lm.text, "pocketsphinx/domain-lm")
    if best[0] < settings.min_confidence and settings.general_fallback:
        general = get_decoder("lm", None, None, sample_rate=rate).decode(pcm)
        candidate = (decode_confidence(general), general.text, "pocketsphinx/general")
        best = max(best, candidate)
    confidence, words, engine = best
    return _result(words, confidence, audio, engine, settings)


def _transcribe_other(audio: Audio, settings: SpeechSettings) -> Transcript:
    """Run a SpeechRecognition engine (Vosk, Whisper, faster-whisper).

    These engines do not report a comparable confidence here, so results carry
    ``settings.min_confidence`` (not weak, not strong): the dialogue still reads
    every payment back for confirmation.
    """
    import speech_recognition as sr

    data = sr.AudioData(to_pcm16(audio.samples), SAMPLE_RATE, 2)
    recognizer = sr.Recognizer()
    try:
        if settings.engine == "vosk":
            import json

            from vosk import Model

            recognizer.vosk_model = Model(settings.vosk_model_path)
            words = json.loads(recognizer.recognize_vosk(data)).get("text", "")
        elif settings.engine == "whisper":
            words = recognizer.recognize_whisper(data, model=settings.whisper_model, language="en")
        else:
            words = recognizer.recognize_faster_whisper(data, model=settings.whisper_model)
    except (ImportError, sr.RequestError, sr.UnknownValueError, OSError) as exc:
        raise AudioError(
            "engine_unavailable", f"Speech engine {settings.engine!r} failed: {exc}"
        ) from exc
    words = " ".join(str(words).lower().split())
    return _result(words, settings.min_confidence, audio, settings.engine, settings)


#: Search settings of the digit grammars. Beams wider than pocketsphinx's
#: defaults (1e-48/7e-29/1e-48): on 60 real 8 kHz FSDD 6-digit strings (length
#: known) digit accuracy rose from 67.8% to 71.1% and strings within one digit
#: error from 51.7% to 55.0%; 1e-100 was no better and slower. The grammars are
#: tiny, so the cost is about 40% more decode time on a 3 s string.
DIGIT_SEARCH: dict[str, float | int | str | bool] = {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80}


def recognize_digits(
    audio: bytes | Path | str | Audio,
    *,
    expected_len: int | None = None,
    settings: SpeechSettings | None = None,
) -> Transcript:
    """Recognise a spoken digit string (a verification challenge or a link code).

    "zero" and "oh" both count as 0. With ``expected_len`` the decoder is held
    to exactly that many digits, which measured to help a lot on real voices;
    a second, free-length decode checks it, and their agreement is the
    confidence.

    Args:
        audio: Encoded audio as bytes or a path, or an :class:`Audio`.
        expected_len: The number of digits prompted, if known.
        settings: Speech settings; defaults to :func:`get_speech_settings`.

    Returns:
        A :class:`Transcript` whose ``digits`` holds the digits ("471902") and
        whose ``text`` holds them spaced ("4 7 1 9 0 2").

    Raises:
        AudioError: As for :func:`transcribe`.
    """
    settings = settings or get_speech_settings()
    loaded = _as_audio(audio, settings)
    started = time.perf_counter()
    pcm, rate = pcm_for(loaded, settings)
    gram_any, dic = digit_grammar(None)
    free = get_decoder("jsgf", gram_any, dic, sample_rate=rate, options=DIGIT_SEARCH).decode(pcm)
    free_digits = _digits_of(free.text)
    if expected_len:
        gram_fixed, _ = digit_grammar(expected_len)
        fixed = get_decoder("jsgf", gram_fixed, dic, sample_rate=rate, options=DIGIT_SEARCH).decode(
            pcm
        )
        digits = _digits_of(fixed.text)
        agree = word_agreement(" ".join(digits), " ".join(free_digits))
        confidence = checked_confidence(fixed, agree)
        words = fixed.text
    else:
        # Without a known length the digit loop may insert or drop digits; the
        # domain LM (which also knows digit strings) is the independent check.
        model = domain_model()
        lm = get_decoder("lm", model.lm, model.dictionary, sample_rate=rate).decode(pcm)
        digits = free_digits
        agree = word_agreement(" ".join(digits), " ".join(_digits_of(lm.text)))
        confidence = checked_confidence(free, agree) if digits else 0.0
        words = free.text
    elapsed = time.perf_counter() - started
    log.info(
        "speech_digits_recognized",
        n_digits=len(digits),
        expected_len=expected_len,
        confidence=confidence,
        decode_s=round(elapsed, 3),
    )
    return Transcript(
        text=" ".join(digits),
        confidence=confidence,
        duration_s=loaded.duration_s,
        engine="pocketsphinx/digits",
        words=words,
        weak=confidence < settings.min_confidence or not digits,
        digits=digits,
        decode_s=elapsed,
    )


def _digits_of(words: str) -> str:
    return "".join(str(DIGIT_WORDS[w]) for w in words.split() if w in DIGIT_WORDS)


def warm_up(settings: SpeechSettings | None = None) -> None:
    """Build the artefacts and load the decoders now instead of on the first request."""
    settings = settings or get_speech_settings()
    model = domain_model()
    get_decoder("lm", model.lm, model.dictionary)
    gram, dic = digit_grammar(None)
    get_decoder("jsgf", gram, dic, options=DIGIT_SEARCH)
