"""Offline speech for billtalk: recognition tuned to bill conversations, and synthesis.

The public API:

* :func:`transcribe` - audio (WAV, FLAC, OGG/Opus, MP3) to a :class:`Transcript`
  with a confidence, spoken numbers turned into figures;
* :func:`recognize_digits` - a spoken digit string (challenge, link code);
* :func:`synthesize` - text to WAV or OGG/Opus with espeak-ng, figures spoken
  naturally;
* :func:`~speech.audio.load_audio` and :class:`~speech.audio.AudioError`.

Heavy pieces (pocketsphinx, PyAV) load on first use.
"""

from __future__ import annotations

from speech.audio import Audio, AudioError, load_audio
from speech.recognize import Transcript, recognize_digits, transcribe
from speech.tts import synthesize

__all__ = [
    "Audio",
    "AudioError",
    "Transcript",
    "load_audio",
    "recognize_digits",
    "synthesize",
    "transcribe",
]
