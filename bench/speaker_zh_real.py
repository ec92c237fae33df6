"""Whisper base on real Mandarin speech: bill requests joined from a human speaker's words.

There is no recording of Chinese bill requests here, and espeak-ng's Mandarin
voice is unintelligible to Whisper base. The public repository ``hugolpz/audio-cmn``
holds about 8,600 recordings of HSK words read by one native speaker (Yue Tan,
from the Shtooka "Base Audio Libre De Mots Chinois", licence CC BY-SA 3.0). This
benchmark joins those words into 18 short bill requests ("我 欠 多少 钱", with
0.12 s pauses, like bench/speech.py's digit strings joined from FSDD) and a few
single-word answers, and measures what the speaker's recogniser hears
(``bot.channels.speaker.wyoming_server.recognise`` with ``language="zh"``):
character error rate and intent agreement (the NLU on the transcript vs on the
written request). Joined words are slower and more careful than a request said in
one breath, so this is an optimistic proxy for real requests, and one voice only.

The recordings are not copied into this repository (CC BY-SA); point ``--repo``
at a clone (a bare git directory works, files are read with ``git show``).

Run::

    flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/speaker_zh_real.py \\
        --repo /path/to/audio-cmn [--configs short,30s]

Writes ``bench/results/speaker_zh_real.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Requests as the words they are joined from (each word one recording).
REQUESTS: list[list[str]] = [
    ["我", "欠", "多少", "钱"],
    ["一共", "多少", "钱"],
    ["水", "费", "多少", "钱"],
    ["交", "水", "费"],
    ["我", "要", "交", "电", "费"],
    ["我", "要", "付款"],
    ["我", "要", "支付", "电", "费"],
    ["帮", "我", "交", "天然气", "费"],
    ["天然气", "费", "什么", "时候", "到期"],
    ["水", "费", "什么", "时候", "到期"],
    ["电", "费", "为什么", "这么", "贵"],
    ["为什么", "这么", "高"],
    ["这个", "月", "用", "了", "多少", "电"],
    ["查", "一下", "记录"],
    ["是的"],
    ["不是"],
    ["取消"],
    ["确认"],
    ["帮助"],
    ["二", "四", "六", "八", "一", "三"],
]
GAP_S = 0.12
CONFIGS: dict[str, dict[str, Any]] = {
    "whisper-short-beam5": {"asr_engine": "faster_whisper"},
    "whisper-30s-beam5": {"asr_engine": "faster_whisper", "whisper_short_window": False},
}


def word_audio(repo: Path, word: str) -> np.ndarray:
    """One HSK word's recording as 16 kHz float samples (silence trimmed)."""
    from speech.audio import load_audio

    data = subprocess.run(
        ["git", f"--git-dir={repo}", "show", f"HEAD:64k/hsk/cmn-{word}.mp3"],
        check=True,
        capture_output=True,
    ).stdout
    return load_audio(data, trim=True).samples


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate, punctuation and spaces ignored, digits as written."""
    from speech.recognize import word_error_rate

    def chars(s: str) -> str:
        return " ".join(c for c in s if c.isalnum())

    return word_error_rate(chars(reference), chars(hypothesis))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="A clone of hugolpz/audio-cmn.")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/speaker_zh_real.json")
    args = parser.parse_args()
    from billtalk.logs import configure_logging

    configure_logging("WARNING")
    import nlu
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import recognise
    from speech.audio import to_pcm16

    nlu.ensure_default_model()
    model = nlu.load_model()
    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    digits = dict(zip("一二三四五六七八九", "123456789", strict=True))
    clips = []
    for words in REQUESTS:
        gap = np.zeros(int(GAP_S * 16_000), np.float32)
        parts = [np.concatenate([word_audio(args.repo, w), gap]) for w in words]
        audio = np.concatenate([np.zeros(4_000, np.float32), *parts, np.zeros(4_000, np.float32)])
        text = "".join(words)
        if all(w in digits for w in words):
            text = "".join(digits[w] for w in words)  # a PIN: the digits are the reference
        clips.append((text, audio))
    results = []
    for name in args.configs.split(","):
        settings = SpeakerSettings(**CONFIGS[name])
        recognise(to_pcm16(clips[0][1]), settings=settings, language="zh")  # load
        rows = []
        for text, audio in clips:
            t = time.perf_counter()
            heard = recognise(to_pcm16(audio), settings=settings, language="zh")
            seconds = time.perf_counter() - t
            rows.append(
                {
                    "text": text,
                    "heard": heard.text,
                    "weak": heard.weak,
                    "s": seconds,
                    "duration_s": len(audio) / 16_000,
                    "cer": cer(text, heard.text),
                    "intent_text": model.parse(text)["intent"]["name"],
                    "intent_audio": model.parse(heard.text or "")["intent"]["name"],
                }
            )
        results.append(
            {
                "config": name,
                "settings": CONFIGS[name],
                "rows": rows,
                "cer": statistics.mean(r["cer"] for r in rows),
                "intent_agreement": statistics.mean(
                    r["intent_text"] == r["intent_audio"] for r in rows
                ),
                "weak": statistics.mean(r["weak"] for r in rows),
                "s_median": statistics.median(r["s"] for r in rows),
            }
        )
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": load_before,
        "load_after": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
        "source": "hugolpz/audio-cmn 64k/hsk (speaker Yue Tan, CC BY-SA 3.0), words joined",
        "n": len(clips),
    }
    args.out.write_text(
        json.dumps({"meta": meta, "engines": results}, indent=1, ensure_ascii=False)
    )
    print(f"{meta['date']}; load {meta['load_before']} -> {meta['load_after']}; n = {meta['n']}")
    print("| engine | CER | intent agreement | weak | decode median |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['config']} | {r['cer']:.1%} | {r['intent_agreement']:.1%} | {r['weak']:.0%} |"
            f" {r['s_median']:.2f} s |"
        )
    for r in results:
        for row in r["rows"]:
            print(f"  {r['config']}: {row['text']} -> {row['heard']!r} (weak={row['weak']})")


if __name__ == "__main__":
    main()
