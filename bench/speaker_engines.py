"""pocketsphinx vs Whisper base for the speaker: memory, spoken PINs and Chinese.

bench/speaker.py measures the two engines on bill requests (``--engine``). This
adds what decides *which engine for which use*:

* **memory**: resident-set growth of loading each engine and decoding once;
* **spoken PINs**: 6-digit strings said digit by digit ("four eight two nine one
  three") in four espeak voices, through the speaker's recogniser
  (``bot.channels.speaker.wyoming_server.recognise``): string exact match and
  digit accuracy after the speaker's spoken-digit normalisation;
* **Chinese**: requests in espeak-ng's Mandarin voice (``cmn``): character error
  rate and intent agreement (pocketsphinx has no Chinese model here: its rows
  show what happens when a Chinese speaker talks to it).

Run::

    nice -n 10 .venv/bin/python bench/speaker_engines.py [--quick]

Writes ``bench/results/speaker_engines.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

VOICES = [("en-us", 165), ("en-us+f3", 150), ("en-gb", 175), ("en-us+m7", 140)]
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
CHINESE = [
    "我欠多少钱",
    "交水费",
    "电费为什么这么高",
    "燃气费什么时候到期",
    "查一下缴费记录",
    "我要交物业费",
    "这个月用了多少电",
    "给我发一张收据",
    "转人工客服",
    "开通自动缴费",
]


def rss_mb() -> float:
    """Peak resident set size of this process, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pcm_of(text: str, voice: str, speed: int, lang: str = "en") -> bytes:
    from speech.audio import load_audio, to_pcm16
    from speech.tts import synthesize

    wav = synthesize(text, voice=voice, speed=speed, lang=lang)  # type: ignore[arg-type]
    return to_pcm16(load_audio(wav, trim=False).samples)


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate (spaces ignored), for Chinese."""
    from speech.recognize import word_error_rate

    ref, hyp = " ".join(reference.replace(" ", "")), " ".join(hypothesis.replace(" ", ""))
    return word_error_rate(ref, hyp)


def run_engine(engine: str, quick: bool, seed: int) -> dict[str, Any]:
    from bot.channels.speaker.channel import spoken_figures
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import recognise

    settings = SpeakerSettings(asr_engine=engine)  # type: ignore[arg-type]
    before = rss_mb()
    t0 = time.perf_counter()
    recognise(pcm_of("how much do I owe", "en-us", 165), settings=settings)
    load_s = time.perf_counter() - t0
    after = rss_mb()
    rng = random.Random(seed)
    pins = []
    n_pins = 3 if quick else 10
    jobs = [
        (voice, "".join(rng.choice("0123456789") for _ in range(6)))
        for voice in VOICES
        for _ in range(n_pins)
    ]
    for (voice, speed), digits in tqdm(jobs, desc=f"{engine} PINs", file=sys.stderr):
        said = " ".join(DIGIT_WORDS[int(d)] for d in digits)
        t = time.perf_counter()
        heard = recognise(pcm_of(said, voice, speed), settings=settings)
        got = "".join(c for c in spoken_figures(heard.text) if c.isdigit())
        pins.append(
            {
                "voice": voice,
                "digits": digits,
                "heard": heard.text,
                "got": got,
                "exact": got == digits,
                "weak": heard.weak,
                "digit_acc": sum(a == b for a, b in zip(got, digits, strict=False)) / 6,
                "s": time.perf_counter() - t,
            }
        )
    import nlu

    model = nlu.load_model()
    chinese = []
    for text in tqdm(CHINESE[:4] if quick else CHINESE, desc=f"{engine} Chinese", file=sys.stderr):
        heard = recognise(pcm_of(text, "cmn", 160, "zh"), settings=settings, language="zh")
        chinese.append(
            {
                "text": text,
                "heard": heard.text,
                "cer": cer(text, heard.text),
                "weak": heard.weak,
                "intent_text": model.parse(text)["intent"]["name"],
                "intent_audio": model.parse(heard.text or "")["intent"]["name"],
            }
        )
    return {
        "engine": engine,
        "load_and_first_decode_s": load_s,
        "rss_growth_mb": after - before,
        "pins": pins,
        "chinese": chinese,
        "summary": {
            "pin_exact": statistics.mean(p["exact"] for p in pins),
            "pin_digit_acc": statistics.mean(p["digit_acc"] for p in pins),
            "pin_weak": statistics.mean(p["weak"] for p in pins),
            "pin_s_median": statistics.median(p["s"] for p in pins),
            "zh_cer": statistics.mean(c["cer"] for c in chinese),
            "zh_intent_agreement": statistics.mean(
                c["intent_audio"] == c["intent_text"] for c in chinese
            ),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    from billtalk.logs import configure_logging

    configure_logging("WARNING")
    started = time.time()
    results = [run_engine(e, args.quick, args.seed) for e in ("pocketsphinx", "faster_whisper")]
    meta = {
        "machine": f"{platform.machine()}, {platform.python_version()}, shared 2 vCPU, nice 10",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "nice -n 10 .venv/bin/python bench/speaker_engines.py"
        + (" --quick" if args.quick else ""),
        "elapsed_s": round(time.time() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "speaker_engines.json").write_text(
        json.dumps({"meta": meta, "engines": results}, indent=1, ensure_ascii=False)
    )
    print(f"Machine: {meta['machine']}; {meta['date']}; command: `{meta['command']}`\n")
    print(
        "| engine | memory (RSS growth) | load + first decode | spoken PIN exact | PIN digit"
        " accuracy | PIN weak | PIN decode median | Chinese CER | Chinese intent agreement |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s = r["summary"]
        print(
            f"| {r['engine']} | {r['rss_growth_mb']:.0f} MB | {r['load_and_first_decode_s']:.1f} s"
            f" | {s['pin_exact']:.1%} (n={len(r['pins'])}) | {s['pin_digit_acc']:.1%} | "
            f"{s['pin_weak']:.1%} | {s['pin_s_median']:.2f} s | {s['zh_cer']:.1%} | "
            f"{s['zh_intent_agreement']:.1%} (n={len(r['chinese'])}) |"
        )


if __name__ == "__main__":
    main()
