"""Benchmark: one Telegram user floods the bot (1,000 messages in a minute); do others notice?

Residents (Telegram chats linked to seeded residents) chat with a think time
between messages, through the real bot (``billtalk telegram run``, polling, a
separate process) and the Bot API stand-in, on PostgreSQL, as in
``bench/telegram.py`` (whose simulation this reuses). Three phases of
``--seconds`` each:

* ``quiet``: only the residents;
* ``flood``: the same, while one more linked chat sends 1,000 messages spread
  evenly over the minute, against the bot's per-user message limit
  (``BILLTALK_DIALOGUE_MESSAGES_PER_WINDOW``, default 30 a minute);
* ``flood_unlimited``: the same flood against a bot with the limit off (what the
  limit buys).

Reported per phase: the normal residents' first-reply latency p50 / p95 (update
injected -> the bot's first message to that chat), lost and duplicated answers,
and for the flooder: what the bot sent back (turns answered, "slow down" replies)
and how many of its updates the ledger recorded as handled (none may be left for
Telegram to redeliver).

Run::

    flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/flood.py

Writes ``bench/results/flood.json`` and ``bench/results/flood.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.telegram import (  # noqa: E402
    Simulation,
    create_database,
    drop_database,
    next_update_ids,
    polling_bot,
    prepare,
)
from tests.channels.telegram.botapi_standin import BotApiStandIn  # noqa: E402

RESULTS = ROOT / "bench" / "results"
FLOODER = 9_000_001
SLOW_DOWN = "faster than I can read"


async def flood(standin: BotApiStandIn, chat: int, messages: int, seconds: float) -> list[int]:
    """Inject ``messages`` texts from ``chat`` spread evenly over ``seconds``; their ids."""
    ids: list[int] = []
    started = time.monotonic()
    for i in range(messages):
        due = started + i * seconds / messages
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        ids.append(int(standin.text(chat, f"how much do I owe? ({i})")["update_id"]))
    return ids


def handled(url: str, ids: list[int]) -> int:
    """How many of ``ids`` the bot's update ledger records as done."""
    from sqlalchemy import create_engine, func, select

    from bot.channels.telegram.ledger import updates_table

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(updates_table)
                    .where(updates_table.c.update_id.in_(ids), updates_table.c.status == "done")
                ).scalar()
                or 0
            )
    finally:
        engine.dispose()


async def measure(
    standin: BotApiStandIn,
    url: str,
    chats: list[int],
    seconds: float,
    think_s: float,
    messages: int,
) -> dict[str, Any]:
    """One phase: the residents for ``seconds``, with a flood of ``messages`` (0: none)."""
    sim = Simulation(standin, chats, b"", think_s=think_s, voice=False)
    sent_before = len(standin.sent(FLOODER))
    try:
        task = asyncio.create_task(flood(standin, FLOODER, messages, seconds)) if messages else None
        result = await sim.run(seconds, f"{messages} flood messages")
        ids = await task if task is not None else []
    finally:
        standin.listeners.clear()
    out: dict[str, Any] = {"think_s": think_s, "flood_messages": messages, **result}
    if ids:
        waited = time.monotonic()
        done = handled(url, ids)
        while done < len(ids) and time.monotonic() - waited < 120:
            await asyncio.sleep(1.0)
            done = handled(url, ids)
        waited = time.monotonic() - waited
        texts = [str(c.params.get("text", "")) for c in standin.sent(FLOODER)[sent_before:]]
        slow = sum(SLOW_DOWN in t for t in texts)
        out["flooder"] = {
            "updates": len(ids),
            "handled_in_ledger": done,
            "replies": len(texts),
            "slow_down_replies": slow,
            "turn_replies": len(texts) - slow,
            "still_draining_s_after_phase": round(waited, 1),
        }
    return out


def run_bot(
    url: str,
    chats: list[int],
    seconds: float,
    think_s: float,
    logs: Path,
    phases: list[tuple[str, int]],
    limit: int,
) -> dict[str, Any]:
    """Start a polling bot with the message ``limit``; run ``phases``; stop it."""
    out: dict[str, Any] = {}
    # The bot's notice poller is off (bench/telegram.polling_bot): a pushed reminder to a
    # resident's chat is not an answer to one of their messages.
    with (
        BotApiStandIn(first_update_id=next_update_ids()) as standin,
        polling_bot(
            standin,
            url,
            logs / f"bot-limit{limit}.log",
            BILLTALK_DIALOGUE_MESSAGES_PER_WINDOW=str(limit),
        ),
    ):
        asyncio.run(measure(standin, url, chats, 15.0, think_s, 0))  # warm-up, not kept
        for name, messages in phases:
            out[name] = asyncio.run(measure(standin, url, chats, seconds, think_s, messages))
            out[name]["messages_per_window"] = limit
            print(f"{name}: {json.dumps(out[name])}", file=sys.stderr)
    return out


def chart(results: dict[str, Any], path: Path) -> None:
    """Residents' p50/p95 first-reply latency per phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = results["phases"]
    names = list(phases)
    xs = range(len(names))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar([x - 0.2 for x in xs], [phases[n]["text_p50_ms"] for n in names], 0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], [phases[n]["text_p95_ms"] for n in names], 0.4, label="p95")
    labels = {
        "quiet": "no flood",
        "flood": "flood,\nlimit on",
        "flood_unlimited": "flood,\nlimit off",
    }
    ax.set_xticks(list(xs), [labels.get(n, n) for n in names])
    ax.set_yscale("log")
    ax.set_ylabel("residents' first reply (ms, log)")
    ax.set_title(
        f"{results['residents']} residents ({results['think_s']:.0f} s think time) "
        f"while 1 user sends {results['flood_messages']} msgs / "
        f"{results['seconds']:.0f} s"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--residents", type=int, default=50)
    parser.add_argument("--households", type=int, default=50)
    parser.add_argument("--think", type=float, default=5.0, help="seconds between messages")
    parser.add_argument("--messages", type=int, default=1000, help="the flood's size")
    parser.add_argument("--limit", type=int, default=30, help="messages per user per minute")
    parser.add_argument("--skip-unlimited", action="store_true")
    parser.add_argument("--out", default="flood")
    args = parser.parse_args()
    admin = os.environ.get(
        "BILLTALK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    chats = [8_500_001 + i for i in range(args.residents)]
    load_before = list(os.getloadavg())
    url = create_database(admin)
    phases: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            logs = Path(tmp)
            prepare(url, args.households, [*chats, FLOODER])
            phases.update(
                run_bot(
                    url,
                    chats,
                    args.seconds,
                    args.think,
                    logs,
                    [("quiet", 0), ("flood", args.messages)],
                    args.limit,
                )
            )
            if not args.skip_unlimited:
                phases.update(
                    {
                        "flood_unlimited": run_bot(
                            url,
                            chats,
                            args.seconds,
                            args.think,
                            logs,
                            [("flood_unlimited", args.messages)],
                            0,
                        )["flood_unlimited"]
                    }
                )
    finally:
        drop_database(admin, url)
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": list(os.getloadavg()),
        },
        "database": "postgresql",
        "mode": "polling, one bot process",
        "residents": args.residents,
        "think_s": args.think,
        "seconds": args.seconds,
        "flood_messages": args.messages,
        "messages_per_window": args.limit,
        "phases": phases,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(results, RESULTS / f"{args.out}.png")
    print(
        "| phase | residents' p50 ms | p95 ms | answers/s | lost | duplicates "
        "| flooder updates | handled | turn replies | slow-down replies |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in phases.items():
        f = r.get("flooder", {})
        print(
            f"| {name} | {r['text_p50_ms']} | {r['text_p95_ms']} | {r['updates_per_s']} | "
            f"{r['lost']} | {r['duplicates']} | {f.get('updates', 0)} | "
            f"{f.get('handled_in_ledger', '-')} | {f.get('turn_replies', '-')} | "
            f"{f.get('slow_down_replies', '-')} |"
        )


if __name__ == "__main__":
    main()
