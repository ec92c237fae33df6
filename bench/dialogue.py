"""Dialogue benchmark: turn latency (p50/p95) and throughput with concurrent conversations.

In-process: the engine, the billing API (``BillingClient.embedded``, ASGI in the
same process) and the real NLU model, on SQLite and/or PostgreSQL. Each turn is
timed end to end (lease, state load, NLU, actions with their billing API calls,
rendering, the state+log transaction). The NLU's own share is timed separately.

Usage::

    nice -n 10 .venv/bin/python bench/dialogue.py --db sqlite --db postgres \\
        --turns 300 --concurrent 200 --rounds 3

Writes ``bench/results/dialogue.json`` and ``bench/results/dialogue_latency.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("BILLTALK_SECRET_KEY", "bench-secret-key")
# Simulated residents type faster than people: the per-user flood limit is not what is measured
# here (bench/flood.py measures it).
os.environ.setdefault("BILLTALK_DIALOGUE_MESSAGES_PER_WINDOW", "0")

SCRIPT = [
    "how much do I owe?",
    "and water?",
    "when is my bill due?",
    "hello",
    "what can you do?",
    "pay 10 for water",
    "cancel",
    "我一共欠多少钱",
]


class CachedNlu:
    """The real model's parses, memoised: isolates the engine's own cost from the NLU's."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: dict[str, dict[str, Any]] = {}

    def parse(self, text: str, *, reference_date: Any = None) -> dict[str, Any]:
        if text not in self.cache:
            self.cache[text] = self.model.parse(text, reference_date=reference_date)
        return self.cache[text]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def seed_db(kind: str, households: int) -> str:
    from backend.demo import seed
    from bot.store import ensure_schema

    if kind == "sqlite":
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-dialogue-')) / 'bench.db'}"
    else:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        admin_url = os.environ.get(
            "BILLTALK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
        name = f"bench_dialogue_{uuid.uuid4().hex[:8]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    seed(url, households=households, seed=7, months=3, today=date(2026, 11, 20))
    ensure_schema(url)
    return url


def drop_db(url: str) -> None:
    """Remove the benchmark's PostgreSQL database (SQLite temp files are left in /tmp)."""
    if url.startswith("sqlite"):
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


async def build_engine(url: str, nlu_model: Any) -> Any:
    from backend.client import BillingClient
    from billtalk.db import make_engine
    from bot.engine import DialogueEngine
    from bot.store import ConversationStore

    pool = {} if url.startswith("sqlite") else {"pool_size": 20, "max_overflow": 20}
    return DialogueEngine(
        ConversationStore(make_engine(url, **pool)),
        BillingClient.embedded(url),
        nlu_model,
        clock=lambda: datetime.now(UTC),
    )


def residents(url: str) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [r[0] for r in conn.execute(text("select resident_id from residents"))]
    engine.dispose()
    return rows


async def latency(engine: Any, people: list[str], turns: int) -> dict[str, Any]:
    from bot.messages import IncomingMessage

    samples: list[float] = []
    for i in range(turns):
        who = people[i % len(people)]
        text = SCRIPT[i % len(SCRIPT)]
        start = time.perf_counter()
        await engine.handle(
            IncomingMessage(channel="bench-seq", external_user_id=who, resident_id=who, text=text)
        )
        samples.append((time.perf_counter() - start) * 1000)
    return {"samples_ms": samples}


async def throughput(
    engine: Any, people: list[str], conversations: int, turns_each: int
) -> dict[str, Any]:
    from bot.messages import IncomingMessage

    tag = uuid.uuid4().hex[:6]

    async def one(i: int) -> list[float]:
        who = people[i % len(people)]
        out = []
        for k in range(turns_each):
            start = time.perf_counter()
            await engine.handle(
                IncomingMessage(
                    channel="bench-par",
                    external_user_id=f"{tag}-{i}",
                    resident_id=who,
                    text=SCRIPT[(i + k) % len(SCRIPT)],
                )
            )
            out.append((time.perf_counter() - start) * 1000)
        return out

    batcher = getattr(engine, "_batcher", None)
    seen = len(batcher.batch_sizes) if batcher is not None else 0
    start = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(conversations)))
    wall = time.perf_counter() - start
    total = conversations * turns_each
    batcher = getattr(engine, "_batcher", None)
    sizes = batcher.batch_sizes[seen:] if batcher is not None else []
    return {
        "turns": total,
        "wall_s": wall,
        "turns_per_s": total / wall,
        "samples_ms": [x for r in results for x in r],
        "nlu_batches": len(sizes),
        "nlu_mean_batch": round(statistics.fmean(sizes), 1) if sizes else None,
    }


def nlu_batched(nlu_model: Any, n: int, batch: int = 32) -> float:
    """Milliseconds per message when ``batch`` messages are parsed in one call."""
    texts = [SCRIPT[i % len(SCRIPT)] for i in range(batch)]
    start = time.perf_counter()
    for _ in range(max(1, n // batch)):
        nlu_model.parse_many(texts, reference_date=date(2026, 11, 20))
    return (time.perf_counter() - start) * 1000 / (max(1, n // batch) * batch)


def nlu_only(nlu_model: Any, n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        nlu_model.parse(SCRIPT[i % len(SCRIPT)], reference_date=date(2026, 11, 20))
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": round(pct(samples, 50), 2),
        "p95_ms": round(pct(samples, 95), 2),
        "mean_ms": round(statistics.fmean(samples), 2),
        "max_ms": round(max(samples), 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import nlu

    nlu.ensure_default_model()
    model = nlu.load_model()
    report: dict[str, Any] = {
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}"
        ),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "nlu_parse": summary(nlu_only(model, 200)),
        "nlu_parse_many_32_ms_per_message": round(nlu_batched(model, 256), 2),
        "databases": {},
    }
    print(f"nlu parse: {report['nlu_parse']}", file=sys.stderr)
    for kind in args.db:
        url = seed_db(kind, args.households)
        engine = await build_engine(url, model)
        people = residents(url)
        await latency(engine, people, 20)  # warm-up
        rounds = []
        for r in range(args.rounds):
            lat = await latency(engine, people, args.turns)
            thr = await throughput(engine, people, args.concurrent, args.turns_each)
            rounds.append(
                {
                    "latency": summary(lat["samples_ms"]),
                    "throughput_turns_per_s": round(thr["turns_per_s"], 1),
                    "concurrent_latency": summary(thr["samples_ms"]),
                    "nlu_batches": thr["nlu_batches"],
                    "nlu_mean_batch": thr["nlu_mean_batch"],
                    "samples": lat["samples_ms"],
                }
            )
            print(
                f"{kind} round {r + 1}: {rounds[-1]['latency']} | "
                f"{rounds[-1]['throughput_turns_per_s']} turns/s "
                f"(NLU mean batch {rounds[-1]['nlu_mean_batch']})",
                file=sys.stderr,
            )
        engine.nlu = CachedNlu(model)
        engine.policy.parse = engine._parse
        await latency(engine, people, 20)
        cached = await latency(engine, people, args.turns)
        cached_thr = await throughput(engine, people, args.concurrent, args.turns_each)
        engine.nlu = model
        await engine.billing.aclose()
        engine.store.engine.dispose()
        drop_db(url)
        p95s = [x["latency"]["p95_ms"] for x in rounds]
        p50s = [x["latency"]["p50_ms"] for x in rounds]
        tps = [x["throughput_turns_per_s"] for x in rounds]
        report["databases"][kind] = {
            "p50_ms_median": statistics.median(p50s),
            "p95_ms_median": statistics.median(p95s),
            "p95_ms_range": [min(p95s), max(p95s)],
            "turns_per_s_median": statistics.median(tps),
            "turns_per_s_range": [min(tps), max(tps)],
            "rounds": [{k: v for k, v in x.items() if k != "samples"} for x in rounds],
            "without_nlu": {
                "latency": summary(cached["samples_ms"]),
                "turns_per_s": round(cached_thr["turns_per_s"], 1),
            },
            "all_samples_ms": [s for x in rounds for s in x["samples"]],
        }
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for kind, data in report["databases"].items():
        ax.hist(
            data["all_samples_ms"],
            bins=60,
            alpha=0.6,
            label=f"{kind} (p95 {data['p95_ms_median']:.0f} ms)",
        )
    ax.axvline(25, color="red", linestyle="--", label="target p95 25 ms")
    ax.set_xlabel("turn latency (ms)")
    ax.set_ylabel("turns")
    ax.set_title("Dialogue turn latency, sequential, in-process")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--households", type=int, default=40)
    parser.add_argument("--turns", type=int, default=200, help="sequential turns per round")
    parser.add_argument("--concurrent", type=int, default=200, help="concurrent conversations")
    parser.add_argument(
        "--turns-each", type=int, default=3, help="turns per concurrent conversation"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    args.db = args.db or ["sqlite"]
    report = asyncio.run(run(args))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    plot(report, out / "dialogue_latency.png")
    for data in report["databases"].values():
        data.pop("all_samples_ms")
    (out / "dialogue.json").write_text(json.dumps(report, indent=2))
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
