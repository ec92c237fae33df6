"""Benchmark of the smart-speaker channel over Wyoming (bot/channels/speaker).

Everything goes through the real Wyoming server on loopback, driven by the
``wyoming`` package's client (one connection per request, as Home Assistant
does), on a seeded demo community with a paired speaker:

* **handle**: a ``transcript`` in, ``handled`` out (the dialogue engine, the
  billing API in-process, SQLite): p50 / p95 over typical questions;
* **whole voice turn** for a ~3 s utterance: asr (audio streamed at espeak's
  22.05 kHz, resampled by the server) -> handle -> tts (audio back), p50 / p95;
  and the real-time factors of asr (decode time / audio length) and tts
  (synthesis time / audio length);
* **recognition on the speaker path**: WER and intent agreement (the NLU's intent
  on the transcript equals its intent on the written request) over requests
  synthesised in four espeak voices, clean and with pink noise at 15 dB SNR.

Run (the machine is shared: one benchmark at a time, niced)::

    flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/speaker.py [--quick]

Writes ``bench/results/speaker.json`` and ``bench/results/speaker_latency.png``,
and prints a Markdown summary on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import wave
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
# The bench measures the dialogue turn, not the engine's flood control: 200 handle
# requests from two speakers within a minute would otherwise mostly be answered
# "slow down" (as bench/telegram.py and bench/dialogue.py do).
os.environ.setdefault("BILLTALK_DIALOGUE_MESSAGES_PER_WINDOW", "0")

from wyoming.asr import Transcribe, Transcript  # noqa: E402
from wyoming.audio import AudioChunk, AudioStart, wav_to_chunks  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.event import Event  # noqa: E402
from wyoming.tts import Synthesize  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_speech", ROOT / "bench" / "speech.py")
assert _spec is not None and _spec.loader is not None
bench_speech = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_speech)
_spec2 = importlib.util.spec_from_file_location(
    "bench_speaker_engines", ROOT / "bench" / "speaker_engines.py"
)
assert _spec2 is not None and _spec2.loader is not None
bench_engines = importlib.util.module_from_spec(_spec2)
_spec2.loader.exec_module(bench_engines)

#: Questions a paired speaker is asked (handle latency).
QUESTIONS = [
    "how much do I owe",
    "what's my electricity bill",
    "when is my water bill due",
    "how much gas did I use last month",
    "why is my electricity bill so high",
    "show my payment history",
    "what's my total balance",
    "and water?",
]
#: About three seconds when spoken (the whole-turn target is for a 3 s utterance).
THREE_SECONDS = [
    "how much do I owe for electricity this month",
    "when is my water bill due this month please",
    "why is my electricity bill so high this month",
    "show me my payment history for the last month",
]


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0-1) by linear interpolation."""
    return float(np.percentile(np.asarray(values, dtype=float), q * 100))


async def request(port: int, events: list[Event], until: tuple[str, ...]) -> list[Event]:
    """One connection: send ``events``, read until one of ``until``."""
    out: list[Event] = []
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for event in events:
            await client.write_event(event)
        while True:
            event = await asyncio.wait_for(client.read_event(), 300)
            if event is None:
                break
            out.append(event)
            if event.type in until:
                break
    return out


def ctx(device: str) -> dict[str, str]:
    return {"conversation_id": f"conv-{device}", "device_id": device, "satellite_id": device}


async def handle(port: int, text: str, device: str) -> Event:
    events = await request(
        port,
        [Transcript(text=text, language="en", context=ctx(device)).event()],
        ("handled", "not-handled", "error"),
    )
    return events[-1]


def asr_events(wav: bytes) -> list[Event]:
    with wave.open(io.BytesIO(wav), "rb") as reader:
        chunks = [c.event() for c in wav_to_chunks(reader, 1024, start_event=True, stop_event=True)]
    return [Transcribe(language="en").event(), *chunks]


async def setup(tmp: Path, engine_name: str) -> tuple[Any, Any, int, dict[str, Any]]:
    """Seed a community, start the engine and the Wyoming server; pair two speakers."""
    from backend.client import BillingClient
    from backend.demo import seed
    from billtalk.db import make_engine
    from bot.channels.speaker.channel import SpeakerChannel
    from bot.channels.speaker.devices import ensure_schema as ensure_speaker_schema
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import SpeakerService, start_server
    from bot.engine import DialogueEngine
    from bot.store import ConversationStore, ensure_schema
    from speech.recognize import warm_up

    url = f"sqlite:///{tmp / 'bench.db'}"
    seeded = seed(url, households=6, seed=7, months=3, today=date(2026, 11, 20))
    ensure_schema(url)
    ensure_speaker_schema(url)
    import nlu

    nlu.ensure_default_model()
    engine = DialogueEngine(
        ConversationStore(make_engine(url)), BillingClient.embedded(url), nlu.load_model()
    )
    settings = SpeakerSettings(asr_engine=engine_name)
    service = SpeakerService(SpeakerChannel(engine, settings=settings), settings)
    server = await start_server("127.0.0.1", 0, service)
    port = server.sockets[0].getsockname()[1]
    await asyncio.to_thread(warm_up)
    if engine_name == "faster_whisper":
        from bot.channels.speaker.whisper_asr import get_model

        await asyncio.to_thread(get_model, settings.whisper_model_dir, settings.whisper_threads)
    for i, household in enumerate(seeded["households"][:2]):
        reply = await handle(port, f"my link code is {household['link_code']}", f"bench-{i}")
        assert reply.type == "handled", reply.data
    return engine, server, port, seeded


async def bench_handle(port: int, n: int) -> list[dict[str, Any]]:
    rows = []
    for i in tqdm(range(n), desc="handle", file=sys.stderr):
        text = QUESTIONS[i % len(QUESTIONS)]
        started = time.perf_counter()
        reply = await handle(port, text, f"bench-{i % 2}")
        rows.append(
            {"text": text, "ms": (time.perf_counter() - started) * 1000, "type": reply.type}
        )
    return rows


def turn_audio(seed: int = 7) -> dict[tuple[str, str], bytes]:
    """The voice turns' WAVs: each request clean (en-us, which pocketsphinx decodes surely)
    and in en-us+f3 with pink noise at 15 dB (mostly weak for pocketsphinx, so under
    ``auto`` Whisper decodes it too: the slow path)."""
    from speech.audio import load_audio
    from speech.tts import synthesize

    rng = np.random.default_rng(seed)
    audio: dict[tuple[str, str], bytes] = {}
    for text in THREE_SECONDS:
        audio[(text, "clean")] = synthesize(text, voice="en-us", speed=165)
        samples = load_audio(synthesize(text, voice="en-us+f3", speed=150), trim=False).samples
        audio[(text, "snr15")] = bench_speech.wav_bytes(bench_speech.mix(samples, 15.0, rng))
    return audio


async def bench_turns(port: int, n: int) -> list[dict[str, Any]]:
    audio = turn_audio()
    rows = []
    for i in tqdm(range(n), desc="voice turns", file=sys.stderr):
        text = THREE_SECONDS[i % len(THREE_SECONDS)]
        condition = "clean" if (i // len(THREE_SECONDS)) % 2 == 0 else "snr15"
        wav = audio[(text, condition)]
        with wave.open(io.BytesIO(wav), "rb") as r:
            seconds = r.getnframes() / r.getframerate()
        t0 = time.perf_counter()
        transcript = (await request(port, asr_events(wav), ("transcript",)))[-1]
        t1 = time.perf_counter()
        reply = await handle(port, transcript.data["text"], "bench-0")
        t2 = time.perf_counter()
        spoken = await request(
            port, [Synthesize(text=reply.data.get("text") or "OK").event()], ("audio-stop",)
        )
        t3 = time.perf_counter()
        start = AudioStart.from_event(spoken[0])
        pcm = sum(len(AudioChunk.from_event(e).audio) for e in spoken if e.type == "audio-chunk")
        out_s = pcm / (start.rate * start.width)
        rows.append(
            {
                "text": text,
                "condition": condition,
                "engine": (transcript.data.get("context") or {}).get("billtalk_asr"),
                "transcript": transcript.data["text"],
                "audio_s": seconds,
                "asr_s": t1 - t0,
                "handle_s": t2 - t1,
                "tts_s": t3 - t2,
                "turn_s": t3 - t0,
                "reply_audio_s": out_s,
            }
        )
    return rows


async def bench_recognition(
    port: int, quick: bool, seed: int, n_utterances: int
) -> list[dict[str, Any]]:
    """WER and transcripts on the speaker path: 4 voices, clean and 15 dB."""
    from speech.audio import load_audio
    from speech.scoring import scored_wer
    from speech.tts import synthesize

    rng = np.random.default_rng(seed)
    # Held out: requests that are NLU training sentences (pocketsphinx's language
    # model is generated from them) are left out, as in bench/speaker_engines.py.
    utterances, _dropped = bench_engines.heldout_requests(8 if quick else n_utterances)
    jobs = [
        (text, voice, cond)
        for text in utterances
        for voice in bench_speech.VOICES
        for cond in ("clean", "snr15")
    ]
    rows = []
    for text, (voice, speed), cond in tqdm(jobs, desc="recognition", file=sys.stderr):
        samples = load_audio(synthesize(text, voice=voice, speed=speed), trim=False).samples
        if cond == "snr15":
            samples = bench_speech.mix(samples, 15.0, rng)
        wav = bench_speech.wav_bytes(samples)
        transcript = (await request(port, asr_events(wav), ("transcript",)))[-1]
        hyp = transcript.data["text"]
        rows.append(
            {
                "text": text,
                "voice": voice,
                "condition": cond,
                "transcript": hyp,
                "wer": scored_wer(text, hyp),
                "weak": bool((transcript.data.get("context") or {}).get("billtalk_weak")),
            }
        )
    return rows


def add_intents(rows: list[dict[str, Any]]) -> None:
    import nlu

    model = nlu.load_model()
    reference = {t: model.parse(t)["intent"]["name"] for t in {r["text"] for r in rows}}
    for r in tqdm(rows, desc="intents", file=sys.stderr):
        r["intent_text"] = reference[r["text"]]
        r["intent_audio"] = model.parse(r["transcript"] or "")["intent"]["name"]


def summarise(handle_rows: list[dict], turns: list[dict], recog: list[dict]) -> dict[str, Any]:
    ms = [r["ms"] for r in handle_rows]
    turn_s = [r["turn_s"] for r in turns]
    summary: dict[str, Any] = {
        "handle_ms": {
            "n": len(ms),
            "p50": percentile(ms, 0.5),
            "p95": percentile(ms, 0.95),
            "max": max(ms),
            "target_p95": 100.0,
        },
        "turn_s": {
            "n": len(turn_s),
            "utterance_s_median": statistics.median(r["audio_s"] for r in turns),
            "p50": percentile(turn_s, 0.5),
            "p95": percentile(turn_s, 0.95),
            "max": max(turn_s),
            "asr_s_p50": percentile([r["asr_s"] for r in turns], 0.5),
            "handle_s_p50": percentile([r["handle_s"] for r in turns], 0.5),
            "tts_s_p50": percentile([r["tts_s"] for r in turns], 0.5),
            "target_p95": 1.5,
        },
        "rtf": {
            "asr_median": statistics.median(r["asr_s"] / r["audio_s"] for r in turns),
            "tts_median": statistics.median(r["tts_s"] / r["reply_audio_s"] for r in turns),
        },
        "recognition": {},
    }
    by_condition = {}
    for cond in ("clean", "snr15"):
        part = [r for r in turns if r.get("condition", "clean") == cond]
        if part:
            by_condition[cond] = {
                "n": len(part),
                "p50": percentile([r["turn_s"] for r in part], 0.5),
                "p95": percentile([r["turn_s"] for r in part], 0.95),
                "asr_p95": percentile([r["asr_s"] for r in part], 0.95),
                "by_whisper": statistics.mean(r.get("engine") == "faster_whisper" for r in part),
            }
    summary["turn_s"]["by_condition"] = by_condition
    for cond in ("clean", "snr15"):
        rows = [r for r in recog if r["condition"] == cond]
        if not rows:
            continue
        summary["recognition"][cond] = {
            "n": len(rows),
            "wer": statistics.mean(r["wer"] for r in rows),
            "intent_agreement": statistics.mean(
                r["intent_audio"] == r["intent_text"] for r in rows
            ),
            "weak": statistics.mean(r["weak"] for r in rows),
            "intent_agreement_if_not_weak": (
                statistics.mean(
                    r["intent_audio"] == r["intent_text"] for r in rows if not r["weak"]
                )
                if any(not r["weak"] for r in rows)
                else None
            ),
            "target_wer": 0.08,
            "target_agreement": 0.97,
        }
    return summary


def plot(handle_rows: list[dict], turns: list[dict], filename: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].hist([r["ms"] for r in handle_rows], bins=30, color="#4c72b0")
    axes[0].axvline(100, color="red", linestyle="--", label="target p95 100 ms")
    axes[0].set_xlabel("handle latency (ms)")
    axes[0].set_ylabel("requests")
    axes[0].legend()
    parts = np.array([[r["asr_s"], r["handle_s"], r["tts_s"]] for r in turns])
    order = np.argsort(parts.sum(axis=1))
    bottom = np.zeros(len(turns))
    for k, (label, color) in enumerate(
        [("asr", "#dd8452"), ("handle", "#4c72b0"), ("tts", "#55a868")]
    ):
        axes[1].bar(range(len(turns)), parts[order, k], bottom=bottom, color=color, label=label)
        bottom += parts[order, k]
    axes[1].axhline(1.5, color="red", linestyle="--", label="target p95 1.5 s")
    axes[1].set_xlabel("voice turns (sorted)")
    axes[1].set_ylabel("seconds")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / filename, dpi=110)


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    h, t, r = summary["handle_ms"], summary["turn_s"], summary["rtf"]
    lines = [
        f"Engine: {meta['engine']}. Machine: {meta['machine']}; {meta['date']}; load average"
        f" {meta.get('load_before', '?')} before, {meta.get('load_after', '?')} after; "
        f"command: `{meta['command']}`",
        "",
        "| measure | n | p50 | p95 | max | target |",
        "|---|---|---|---|---|---|",
        f"| handle (transcript -> handled, Wyoming) | {h['n']} | {h['p50']:.1f} ms | "
        f"{h['p95']:.1f} ms | {h['max']:.1f} ms | p95 <= 100 ms |",
        f"| whole voice turn ({t['utterance_s_median']:.1f} s utterance: asr + handle + tts) | "
        f"{t['n']} | {t['p50']:.2f} s | {t['p95']:.2f} s | {t['max']:.2f} s | p95 <= 1.5 s |",
        "",
        f"Turn parts (p50): asr {t['asr_s_p50']:.2f} s, handle {t['handle_s_p50']:.3f} s, "
        f"tts {t['tts_s_p50']:.2f} s. Real-time factors (median): asr {r['asr_median']:.3f}, "
        f"tts {r['tts_median']:.3f}.",
        "",
        *(
            f"Turns {cond}: n = {c['n']}, p50 {c['p50']:.2f} s, p95 {c['p95']:.2f} s, asr p95"
            f" {c['asr_p95']:.2f} s, decoded by Whisper too: {c['by_whisper']:.0%}."
            for cond, c in t.get("by_condition", {}).items()
        ),
        "",
        "| condition | n | WER (target <= 8 %) | intent agreement (target >= 97 %) |"
        " weak (re-asked) | agreement when not weak |",
        "|---|---|---|---|---|---|",
    ]
    for cond, e in summary["recognition"].items():
        nw = e["intent_agreement_if_not_weak"]
        lines.append(
            f"| {cond} | {e['n']} | {e['wer']:.1%} | {e['intent_agreement']:.1%} | "
            f"{e['weak']:.1%} | {'n/a' if nw is None else f'{nw:.1%}'} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        engine, server, port, _ = await setup(Path(tmp), args.engine)
        try:
            handle_rows = await bench_handle(port, 40 if args.quick else 200)
            turns = await bench_turns(port, 8 if args.quick else 40)
            recog = await bench_recognition(port, args.quick, args.seed, args.utterances)
        finally:
            server.close()
            await server.wait_closed()
            engine.store.engine.dispose()
    add_intents(recog)
    return {"handle": handle_rows, "turns": turns, "recognition": recog}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small subset, for a smoke run.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--engine",
        choices=["auto", "pocketsphinx", "faster_whisper"],
        default="auto",
        help="The speaker's recogniser (BILLTALK_SPEAKER_ASR_ENGINE).",
    )
    parser.add_argument(
        "--utterances",
        type=int,
        default=200,
        help="Held-out requests (bench/speaker_requests.py), each in 4 voices, clean and 15 dB.",
    )
    parser.add_argument(
        "--report", type=Path, help="Only print the Markdown summary of an earlier results file."
    )
    args = parser.parse_args()
    if args.report:
        data = json.loads(args.report.read_text())
        data["meta"].setdefault("engine", "pocketsphinx")
        print(markdown(data["summary"], data["meta"]))
        return
    from billtalk.logs import configure_logging

    configure_logging("WARNING")
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    rows = asyncio.run(run(args))
    summary = summarise(rows["handle"], rows["turns"], rows["recognition"])
    meta = {
        "machine": f"{platform.machine()}, {platform.python_version()}, shared 2 vCPU, "
        f"nice {os.nice(0)}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": load_before,
        "load_after": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
        "command": "flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/speaker.py"
        + (" --quick" if args.quick else "")
        + (f" --engine {args.engine}" if args.engine != "auto" else "")
        + (f" --utterances {args.utterances}" if args.utterances != 200 else ""),
        "handle_replies": {
            kind: sum(r["type"] == kind for r in rows["handle"])
            for kind in ("handled", "not-handled", "error")
        },
        "engine": args.engine,
        "elapsed_s": round(time.time() - started, 1),
    }
    suffix = "_whisper" if args.engine == "faster_whisper" else ""
    name = f"speaker{suffix}{'_quick' if args.quick else ''}.json"
    (RESULTS / name).write_text(json.dumps({"meta": meta, "summary": summary, **rows}, indent=1))
    plot(rows["handle"], rows["turns"], f"speaker{suffix}_latency.png")
    print(markdown(summary, meta))


if __name__ == "__main__":
    main()
