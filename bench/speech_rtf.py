"""Real-time factor of speech.transcribe, as CPU time and wall time per audio second.

The shared machine's load inflates wall-clock time, so CPU time of this process
(``time.process_time``) is reported too: it is what one core would need.

    nice -n 10 .venv/bin/python bench/speech_rtf.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from speech import UTTERANCES, wav_bytes  # noqa: E402
from speech.audio import load_audio  # noqa: E402
from speech.recognize import recognize_digits, transcribe  # noqa: E402
from speech.settings import get_speech_settings  # noqa: E402
from speech.tts import synthesize  # noqa: E402


def main() -> None:
    from billtalk.logs import configure_logging

    configure_logging("WARNING")
    settings = get_speech_settings().model_copy(update={"general_fallback": False})
    clips = [wav_bytes(load_audio(synthesize(u), trim=False).samples) for u in UTTERANCES[:32]]
    transcribe(clips[0], settings=settings)  # load decoders once
    recognize_digits(synthesize("4 7 1 9 0 2"), expected_len=6)
    rows = []
    for clip in clips:
        w0, c0 = time.perf_counter(), time.process_time()
        t = transcribe(clip, settings=settings)
        rows.append(
            ((time.process_time() - c0) / t.duration_s, (time.perf_counter() - w0) / t.duration_s)
        )
    digit_clip = synthesize("4 7 1 9 0 2")
    drows = []
    for _ in range(10):
        w0, c0 = time.perf_counter(), time.process_time()
        t = recognize_digits(digit_clip, expected_len=6)
        drows.append(
            ((time.process_time() - c0) / t.duration_s, (time.perf_counter() - w0) / t.duration_s)
        )
    for name, rs in (("requests (load+decode, domain LM)", rows), ("6-digit challenge", drows)):
        cpu = [r[0] for r in rs]
        wall = [r[1] for r in rs]
        print(
            f"| {name} | {len(rs)} | {statistics.median(cpu):.3f} | {min(cpu):.3f}-{max(cpu):.3f}"
            f" | {statistics.median(wall):.3f} | {min(wall):.3f}-{max(wall):.3f} |"
        )


if __name__ == "__main__":
    main()
