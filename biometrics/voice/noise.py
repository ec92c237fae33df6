"""How noisy a recording is: a signal-to-noise estimate for the probe-time gate.

Speech is loud in its syllables and near the noise floor in the short pauses
between words; steady background noise (a fan, traffic, a busy room) fills
those pauses. So the estimate compares the level of the loudest 30-ms frames
(speech) with the level of the quietest ones (the floor between syllables):

    snr_db = 10 log10(P90(frame power) / P10(frame power))

It needs no voice-activity detector (which noise fools) and no clean
reference. It is an estimate of how far speech stands above the floor, not a
laboratory SNR: on the benchmark's clean real recordings (FSDD digit strings,
LibriSpeech test-other) it stays far above the gate; real speech with white or
babble noise added at 0-5 dB falls below it (``bench/voice.py``;
``tests/voice/test_noise_gate.py``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
_FRAME = 480  # 30 ms at 16 kHz


def estimate_snr_db(wav: npt.NDArray[np.float32]) -> float:
    """The estimated speech-to-noise-floor ratio of 16 kHz samples, in dB.

    Returns ``0.0`` for audio shorter than ten frames (too little to tell;
    the length gates refuse such audio anyway).
    """
    x = np.asarray(wav, dtype=np.float64)
    n = len(x) // _FRAME
    if n < 10:
        return 0.0
    frames = x[: n * _FRAME].reshape(n, _FRAME)
    power = (frames - frames.mean(axis=1, keepdims=True)) ** 2
    level = power.mean(axis=1) + 1e-12
    loud, quiet = np.percentile(level, 90), np.percentile(level, 10)
    return float(10.0 * np.log10(loud / quiet))
