"""Benchmark of billtalk's speech recognition (speech).

Measures, on this machine:

* WER and exact-match of :func:`speech.transcribe` on 64 domain requests
  synthesised by espeak-ng in 4 voices, clean and with pink noise at 15 dB and
  5 dB SNR (the requests are written for this benchmark, not copied from the
  NLU training data);
* intent agreement: ``nlu.load_model().parse`` on the transcript vs on the text;
* digit-string accuracy of :func:`speech.recognize_digits` on real FSDD
  speakers (6-digit challenges made by concatenating recordings), with the
  length known, upsampled to 16 kHz vs decoded natively at 8 kHz;
* real-time factor (decode time / audio duration) and how well the confidence
  separates right from wrong transcripts.

Run (the machine is shared, so nice it)::

    nice -n 10 .venv/bin/python bench/speech.py [--quick]

Writes ``bench/results/speech.json``, ``bench/results/speech_wer.png`` and
``bench/results/speech_confidence.png``, and prints a Markdown summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speech.audio import load_audio  # noqa: E402
from speech.recognize import recognize_digits, transcribe, word_error_rate  # noqa: E402
from speech.settings import get_speech_settings  # noqa: E402
from speech.tts import synthesize  # noqa: E402

FSDD = Path("/work/shared/data/voice/fsdd/recordings")
RESULTS = ROOT / "bench" / "results"

#: Requests as a resident would say them, written out as spoken words.
UTTERANCES = [
    "how much do i owe",
    "what is my balance",
    "how much is my electricity bill",
    "what do i owe for water this month",
    "show me my gas bill",
    "what's my total balance",
    "how much is the property fee",
    "do i have any unpaid bills",
    "pay my water bill",
    "pay the electricity bill",
    "pay one hundred fifty yuan for water",
    "pay two hundred yuan for electricity",
    "i want to pay my gas bill",
    "pay eighty yuan for gas",
    "pay the property fee with alipay",
    "pay my electricity bill with wechat pay",
    "pay everything",
    "pay all my bills with my card",
    "pay three hundred yuan by bank transfer",
    "pay forty five yuan and fifty fen for water",
    "why is my electricity bill so high",
    "why is my water bill higher than last month",
    "explain my gas bill",
    "why did my bill go up",
    "what are the charges on my electricity bill",
    "when is my water bill due",
    "when is the electricity bill due",
    "what is the due date for my gas bill",
    "is my property fee overdue",
    "show my payment history",
    "what did i pay last month",
    "show me my last payment",
    "did my payment go through",
    "how much electricity did i use this month",
    "show my water usage",
    "how much gas did i use last month",
    "compare my electricity usage with last year",
    "submit a meter reading",
    "my electricity meter reads one two three four five",
    "the water meter shows four five six",
    "turn on autopay for electricity",
    "set up automatic payments for water",
    "turn off autopay",
    "send me a receipt",
    "i need a receipt for my last payment",
    "there is a problem with my bill",
    "i was charged twice",
    "i want to talk to a person",
    "let me speak to someone",
    "i want to set up voice verification",
    "link my account",
    "hello",
    "good morning",
    "thank you",
    "thanks a lot",
    "goodbye",
    "yes",
    "no",
    "cancel",
    "help",
    "what can you do",
    "yes please pay it",
    "no thanks",
    "what is the late fee",
]

VOICES = [("en-us", 165), ("en-us+f3", 150), ("en-gb", 175), ("en-us+m7", 140)]
CONDITIONS = [("clean", None), ("snr15", 15.0), ("snr5", 5.0)]


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f) noise of ``n`` samples, unit RMS."""
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, n))
    spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n=n)
    return noise / np.sqrt(np.mean(noise**2))


def mix(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add pink noise at ``snr_db`` relative to the speech RMS over the whole clip."""
    rms = np.sqrt(np.mean(samples.astype(np.float64) ** 2))
    noisy = samples + pink_noise(samples.size, rng) * rms * 10 ** (-snr_db / 20)
    return (noisy / max(1.0, float(np.max(np.abs(noisy))))).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = 16_000) -> bytes:
    """Mono float samples as a 16-bit WAV file."""
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def bench_requests(quick: bool, seed: int, general_fallback: bool) -> dict:
    rng = np.random.default_rng(seed)
    utterances = UTTERANCES[:16] if quick else UTTERANCES
    voices = VOICES[:2] if quick else VOICES
    rows = []
    # Clean: every utterance in every voice. Noisy: every utterance in two of the
    # voices (alternating), to keep the run within the shared machine's budget.
    jobs = []
    for i, text in enumerate(utterances):
        for j, voice in enumerate(voices):
            jobs.append((text, voice, CONDITIONS[0]))
            if j % 2 == i % 2:
                jobs += [(text, voice, CONDITIONS[1]), (text, voice, CONDITIONS[2])]
    clean_cache: dict[tuple[str, str], np.ndarray] = {}
    settings = get_speech_settings().model_copy(update={"general_fallback": general_fallback})
    for text, (voice, speed), (cond, snr) in tqdm(jobs, desc="requests", file=sys.stderr):
        key = (text, voice)
        if key not in clean_cache:
            wav = synthesize(text, voice=voice, speed=speed)
            clean_cache[key] = load_audio(wav, trim=False).samples
        samples = clean_cache[key]
        if snr is not None:
            samples = mix(samples, snr, rng)
        result = transcribe(wav_bytes(samples), settings=settings)
        rows.append(
            {
                "text": text,
                "voice": voice,
                "condition": cond,
                "words": result.words,
                "transcript": result.text,
                "wer": word_error_rate(text, result.words),
                "exact": result.words == text,
                "confidence": result.confidence,
                "weak": result.weak,
                "engine": result.engine,
                "rtf": result.decode_s / max(result.duration_s, 1e-6),
                "duration_s": result.duration_s,
            }
        )
    return {"rows": rows}


def add_intents(rows: list[dict]) -> dict:
    """Intent from the transcript vs intent from the text, with the shipped NLU model."""
    try:
        import nlu

        model = nlu.load_model()
    except Exception as exc:  # the NLU package may not be ready: report, don't crash
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"[:300]}
    texts = sorted({r["text"] for r in rows})
    reference = {t: model.parse(t)["intent"]["name"] for t in texts}
    for r in tqdm(rows, desc="intents", file=sys.stderr):
        r["intent_text"] = reference[r["text"]]
        r["intent_audio"] = model.parse(r["transcript"] or "")["intent"]["name"]
    return {"available": True}


def fsdd_strings(n: int, length: int, seed: int) -> list[tuple[str, list[Path], str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        speaker = rng.choice(["george", "jackson", "nicolas"])
        digits = "".join(str(rng.randint(0, 9)) for _ in range(length))
        files = [rng.choice(sorted(FSDD.glob(f"{d}_{speaker}_*.wav"))) for d in digits]
        out.append((digits, files, speaker))
    return out


def bench_digits(quick: bool, seed: int) -> dict:
    strings = fsdd_strings(20 if quick else 60, 6, seed)
    results: dict[str, list[dict]] = {}
    base = get_speech_settings()
    for mode in ("upsample", "narrowband"):
        settings = replace_settings(base, telephone_mode=mode)
        rows = []
        for digits, files, speaker in tqdm(strings, desc=f"fsdd-{mode}", file=sys.stderr):
            parts = []
            for f in files:
                parts += [load_audio(f, trim=False).samples, np.zeros(2400, np.float32)]
            audio = load_audio(wav_bytes(np.concatenate(parts)), trim=True)
            # The recordings are 8 kHz: keep that as the source rate for the mode switch.
            audio = replace(audio, source_rate=8000)
            fixed = recognize_digits(audio, expected_len=len(digits), settings=settings)
            free = recognize_digits(audio, settings=settings)
            rows.append(
                {
                    "ref": digits,
                    "speaker": speaker,
                    "fixed": fixed.digits,
                    "free": free.digits,
                    "fixed_conf": fixed.confidence,
                    "free_conf": free.confidence,
                    "digit_acc": sum(
                        a == b for a, b in zip(digits, fixed.digits or "", strict=False)
                    )
                    / len(digits),
                    "rtf": fixed.decode_s / max(audio.duration_s, 1e-6),
                }
            )
        results[mode] = rows
    return results


def replace_settings(settings, **changes):  # type: ignore[no-untyped-def]
    return settings.model_copy(update=changes)


def summarise(req: dict, digits: dict, intents: dict) -> dict:
    rows = req["rows"]
    by_cond = {}
    for cond, _ in CONDITIONS:
        rs = [r for r in rows if r["condition"] == cond]
        if not rs:
            continue
        ref_words = sum(len(r["text"].split()) for r in rs)
        errors = sum(r["wer"] * len(r["text"].split()) for r in rs)
        entry = {
            "n": len(rs),
            "wer": errors / ref_words,
            "exact": sum(r["exact"] for r in rs) / len(rs),
            "weak": sum(r["weak"] for r in rs) / len(rs),
            "exact_if_not_weak": _ratio([r["exact"] for r in rs if not r["weak"]]),
            "exact_if_weak": _ratio([r["exact"] for r in rs if r["weak"]]),
            "general_fallback_used": sum(r["engine"].endswith("general") for r in rs) / len(rs),
        }
        if intents.get("available"):
            entry["intent_agreement"] = sum(
                r["intent_audio"] == r["intent_text"] for r in rs
            ) / len(rs)
            confident = [r for r in rs if not r["weak"]]
            entry["intent_agreement_if_not_weak"] = _ratio(
                [r["intent_audio"] == r["intent_text"] for r in confident]
            )
        by_cond[cond] = entry
    rtfs = [r["rtf"] for r in rows]
    dig = {}
    for mode, rs in digits.items():
        dig[mode] = {
            "n": len(rs),
            "string_exact_fixed_len": sum(r["fixed"] == r["ref"] for r in rs) / len(rs),
            "digit_acc_fixed_len": statistics.mean(r["digit_acc"] for r in rs),
            "string_exact_free_len": sum(r["free"] == r["ref"] for r in rs) / len(rs),
            "rtf_median": statistics.median(r["rtf"] for r in rs),
        }
    return {
        "requests": by_cond,
        "rtf": {
            "median": statistics.median(rtfs),
            "p90": float(np.percentile(rtfs, 90)),
            "max": max(rtfs),
        },
        "digits": dig,
        "intents": intents,
    }


def _ratio(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def plots(req: dict, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = list(summary["requests"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    wers = [summary["requests"][c]["wer"] * 100 for c in conds]
    exact = [summary["requests"][c]["exact"] * 100 for c in conds]
    x = np.arange(len(conds))
    ax.bar(x - 0.2, wers, 0.4, label="WER %")
    ax.bar(x + 0.2, exact, 0.4, label="exact match %")
    ax.axhline(10, color="red", ls="--", lw=1, label="WER target 10%")
    ax.set_xticks(x, conds)
    ax.set_title("speech on synthesised domain requests")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "speech_wer.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    right = [r["confidence"] for r in req["rows"] if r["exact"]]
    wrong = [r["confidence"] for r in req["rows"] if not r["exact"]]
    bins = np.linspace(0, 1, 21)
    ax.hist(right, bins=bins, alpha=0.6, label=f"exact transcript (n={len(right)})")
    ax.hist(wrong, bins=bins, alpha=0.6, label=f"with errors (n={len(wrong)})")
    ax.axvline(get_speech_settings().min_confidence, color="k", ls="--", lw=1, label="weak below")
    ax.set_xlabel("confidence")
    ax.set_title("Confidence distribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "speech_confidence.png", dpi=120)
    plt.close(fig)


def markdown(summary: dict, meta: dict) -> str:
    lines = [
        f"Machine: {meta['machine']}; {meta['date']}; command: `{meta['command']}`",
        "",
        "| condition | n | WER | exact | intent = text intent | weak (re-ask) |"
        " exact when not weak | general fallback |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cond, e in summary["requests"].items():
        intent = f"{e['intent_agreement']:.1%}" if "intent_agreement" in e else "n/a"
        enw = f"{e['exact_if_not_weak']:.1%}" if e["exact_if_not_weak"] is not None else "n/a"
        lines.append(
            f"| {cond} | {e['n']} | {e['wer']:.1%} | {e['exact']:.1%} | {intent} | "
            f"{e['weak']:.1%} | {enw} | {e['general_fallback_used']:.1%} |"
        )
    r = summary["rtf"]
    lines += [
        "",
        f"Real-time factor (decode / audio, all requests): median {r['median']:.3f}, "
        f"p90 {r['p90']:.3f}, max {r['max']:.3f}.",
        "",
        "| FSDD 6-digit strings | n | string exact (length known) | digit accuracy |"
        " string exact (length unknown) | RTF median |",
        "|---|---|---|---|---|---|",
    ]
    for mode, d in summary["digits"].items():
        lines.append(
            f"| {mode} | {d['n']} | {d['string_exact_fixed_len']:.1%} | "
            f"{d['digit_acc_fixed_len']:.1%} | {d['string_exact_free_len']:.1%} | "
            f"{d['rtf_median']:.3f} |"
        )
    if not summary["intents"].get("available"):
        lines += ["", f"Intent agreement not measured: {summary['intents'].get('reason')}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small subset, for a smoke run.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--general-fallback",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Also try the general en-US model on weak results (slow on a shared machine).",
    )
    args = parser.parse_args()
    from billtalk.logs import configure_logging

    configure_logging("WARNING")
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    req = bench_requests(args.quick, args.seed, args.general_fallback)
    intents = add_intents(req["rows"])
    digits = bench_digits(args.quick, args.seed)
    summary = summarise(req, digits, intents)
    meta = {
        "machine": f"{platform.machine()}, {platform.python_version()}, shared 2 vCPU, nice 10",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "nice -n 10 .venv/bin/python bench/speech.py"
        + (" --quick" if args.quick else ""),
        "elapsed_s": round(time.time() - started, 1),
    }
    (RESULTS / "speech.json").write_text(
        json.dumps(
            {"meta": meta, "summary": summary, "requests": req["rows"], "digits": digits}, indent=1
        )
    )
    plots(req, summary)
    print(markdown(summary, meta))


if __name__ == "__main__":
    main()
