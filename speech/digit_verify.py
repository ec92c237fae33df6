"""Checking a spoken digit string against the digits that were asked for.

Recognising the digits and then comparing them with the challenge throws away
what the system knows: which digits it expects. On real 8 kHz voices the digit
recogniser gets only about 55% of 6-digit strings within one error, yet the
expected string usually scores almost as well as the recogniser's own best
guess. So the verification asks the acoustic model a likelihood-ratio
question instead:

* **expected path**: the best path through a grammar that holds only the
  expected digits (forced alignment; "zero" or "oh" for 0, optional silence
  and fillers between words);
* **free path**: the best path through a grammar of any digits of the same
  length (what :func:`speech.recognize_digits` decodes);
* **score** = (log score of the expected path - log score of the free path)
  per 10 ms frame, in pocketsphinx's log units (base 1.0001). 0 means the
  expected digits are the best explanation of the audio; a recording of other
  digits scores clearly below 0.

Both decodes compute every senone in every frame (``compallsen``): otherwise
pocketsphinx normalises each frame by the best *active* senone, which differs
between the two searches, and the scores cannot be compared (a first prototype
without it found the expected path scoring *better* than the free one).

The threshold on the score is decided by :mod:`biometrics.voice.challenge`,
calibrated in docs/voice.md.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from speech.audio import Audio
from speech.grammar import digit_grammar
from speech.numbers import DIGIT_WORDS
from speech.recognize import DIGIT_SEARCH, _as_audio, pcm_for
from speech.settings import SpeechSettings, get_speech_settings

__all__ = ["NO_PATH", "DigitScore", "DigitScorer", "digit_scorer", "score_expected_digits"]

_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_LOG_BASE = math.log(1.0001)  # pocketsphinx's log units
_FAILED = -1e300  # no path through the grammar survived the beams
#: The score given when no expected path survives the beams (and the floor of all scores).
NO_PATH = -1000.0


@dataclass(frozen=True)
class DigitScore:
    """How well the audio matches the expected digits, against any other digits.

    Attributes:
        expected: The digits asked for.
        heard: The best digit string of the same length (free decode).
        score: Log score of the expected path minus that of the free path, per
            frame, in pocketsphinx log units (base 1.0001). Near 0 or above when
            the expected digits are what was said; very negative when nothing
            like them was (:data:`NO_PATH`, -1000, when no expected path
            survived the beams at all).
        frames: Number of 10 ms frames decoded.
        decode_s: Wall-clock seconds of both decodes.
    """

    expected: str
    heard: str
    score: float
    frames: int
    decode_s: float


@dataclass(frozen=True)
class _Path:
    log_score: float
    words: tuple[str, ...]


def _jsgf(body: str) -> str:
    return (
        "#JSGF V1.0;\ngrammar check;\n"
        f"<d> = {' | '.join(dict.fromkeys(('zero', 'oh', *_NAMES)))};\n"
        f"public <s> = {body};\n"
    )


def expected_body(digits: str) -> str:
    """The JSGF body that accepts exactly ``digits`` ("zero" or "oh" for 0)."""
    if not digits or not digits.isdigit() or not digits.isascii():
        raise ValueError(f"expected digits must be ASCII decimal digits, got {digits!r}")
    return " ".join("(zero | oh)" if d == "0" else _NAMES[int(d)] for d in digits)


class DigitScorer:
    """A pocketsphinx decoder that scores audio against digit grammars.

    One instance per sample rate, shared by the process; calls are serialised
    (a pocketsphinx decoder is not re-entrant). Grammars are small and built
    per call; the decoder and its dictionary are loaded once.

    Args:
        sample_rate: Rate of the PCM given to :meth:`best_path` (16000).
    """

    def __init__(self, sample_rate: int = 16_000) -> None:
        from pocketsphinx import Config, Decoder

        from speech.sphinx import model_dir, narrowband_model

        gram, dic = digit_grammar(None)
        hmm = narrowband_model() if sample_rate == 8000 else model_dir() / "en-us"
        config = Config(hmm=str(hmm), loglevel="FATAL")
        config["dict"] = str(dic)
        config["lm"] = None
        config["jsgf"] = str(gram)
        config["bestpath"] = False
        config["compallsen"] = True
        config["samprate"] = sample_rate
        if sample_rate == 8000:
            config["nfft"] = 256
        for name, value in DIGIT_SEARCH.items():
            config[name] = value
        self.sample_rate = sample_rate
        self._decoder = Decoder(config)
        self._lock = threading.Lock()
        self._searches: set[str] = set()

    def best_path(self, pcm16: bytes, body: str, *, name: str | None = None) -> _Path:
        """The best path through the grammar ``public <s> = body;`` (``<d>`` is any digit).

        Args:
            pcm16: 16-bit mono PCM at :attr:`sample_rate`.
            body: The grammar body.
            name: Keep the compiled grammar under this name for reuse (fixed
                grammars such as the free N-digit one); ``None`` builds it anew.
        """
        dec = self._decoder
        with self._lock:
            search = name or "_expected"
            if name is None or name not in self._searches:
                dec.add_jsgf_string(search, _jsgf(body))
                if name is not None:
                    self._searches.add(name)
            dec.activate_search(search)
            dec.start_utt()
            dec.process_raw(pcm16, no_search=False, full_utt=True)
            dec.end_utt()
            hyp = dec.hyp()
            if hyp is None or hyp.best_score <= 0.0:
                return _Path(_FAILED, ())
            words = tuple(
                w.split("(")[0]
                for w in (seg.word for seg in dec.seg())
                if w.split("(")[0] in DIGIT_WORDS
            )
            return _Path(math.log(hyp.best_score) / _LOG_BASE, words)

    def frames(self) -> int:
        """Frames in the last decoded utterance."""
        return int(self._decoder.n_frames())

    def free_path(self, pcm16: bytes, length: int) -> _Path:
        """The best path through any ``length`` digits."""
        return self.best_path(pcm16, " ".join(["<d>"] * length), name=f"free{length}")

    def score(self, pcm16: bytes, expected: str) -> DigitScore:
        """Score ``pcm16`` against ``expected`` (see :class:`DigitScore`)."""
        return self.score_all(pcm16, [expected])[0]

    def score_all(self, pcm16: bytes, candidates: list[str]) -> list[DigitScore]:
        """Score one recording against several digit strings of the same length.

        The free decode is shared; each candidate costs one forced decode. The
        benchmark uses it to check a recording against many other challenges.
        """
        started = time.perf_counter()
        bodies = [expected_body(c) for c in candidates]
        if len({len(c) for c in candidates}) != 1:
            raise ValueError("candidates must be non-empty and of one length")
        free = self.free_path(pcm16, len(candidates[0]))
        frames = max(self.frames(), 1)
        heard = "".join(str(DIGIT_WORDS[w]) for w in free.words)
        out: list[DigitScore] = []
        for candidate, body in zip(candidates, bodies, strict=True):
            forced = self.best_path(pcm16, body)
            if free.log_score <= _FAILED or forced.log_score <= _FAILED:
                value = NO_PATH
            else:
                value = max((forced.log_score - free.log_score) / frames, NO_PATH)
            out.append(DigitScore(candidate, heard, value, frames, time.perf_counter() - started))
        return out


_scorers: dict[int, DigitScorer] = {}
_scorers_lock = threading.Lock()


def digit_scorer(sample_rate: int = 16_000) -> DigitScorer:
    """The process's :class:`DigitScorer` for ``sample_rate``, built once."""
    with _scorers_lock:
        scorer = _scorers.get(sample_rate)
        if scorer is None:
            scorer = _scorers[sample_rate] = DigitScorer(sample_rate)
        return scorer


def score_expected_digits(
    audio: bytes | Path | str | Audio,
    expected: str,
    *,
    settings: SpeechSettings | None = None,
) -> DigitScore:
    """Score a recording against the digits that were asked for.

    Args:
        audio: Encoded audio (bytes or a path) or a loaded :class:`Audio`.
        expected: The digits asked for ("471902").
        settings: Speech settings; defaults to :func:`get_speech_settings`.

    Returns:
        The :class:`DigitScore`; its ``heard`` is the free decode of the same length.

    Raises:
        ValueError: ``expected`` is not a non-empty string of ASCII digits.
        AudioError: The audio is empty, silent, corrupt, too long or holds no speech.
    """
    expected_body(expected)
    settings = settings or get_speech_settings()
    loaded = _as_audio(audio, settings)
    pcm, rate = pcm_for(loaded, settings)
    return digit_scorer(rate).score(pcm, expected)
