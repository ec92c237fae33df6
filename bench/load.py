"""Load: simulated residents through the terminal engine, Telegram and the API, on PostgreSQL.

    flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/load.py \\
        [--residents 200] [--seconds 60] [--model both] [--telegram-share 0.5]

A real ``billtalk serve`` process serves the billing API on a loopback port, on a
fresh PostgreSQL database seeded with the demo community. In this process the
dialogue engine (real NLU, conversation store on the same PostgreSQL) talks to
it over HTTP with the service token, like a deployed assistant. Each simulated
resident (one per household; each phase has its own households), with a think
time of 0.5-2 s, asks for the balance or its payments, pays small amounts
(confirm, press Pay) and now and then a large one that needs step-up (the engine
asks for the PIN, records the verification with the API, carries the proof).
Every resident pays at most 4 times.

At the same time, ``--telegram-share`` of each phase's residents are Telegram
chats (linked to their residents) talking to a real ``billtalk telegram run``
bot (polling, a separate process on the same PostgreSQL, its own in-process
billing API with the same risk-model setting) through the Bot API stand-in,
driven by ``bench/telegram.py``'s simulation: balance, "why is electricity so
high", pay 1.00 of water and press Pay, with a think time like the terminal
residents'. Per channel: turns (updates) per second, p50/p95 latency (Telegram:
update injected -> the bot's first reply), errors, lost and duplicated answers.

Checked at the end: 0 errors (exceptions, "something went wrong", "unreachable"),
0 duplicated payments (each "Paid" reply is one payment row, each Pay press at
most one), payments that needed step-up carried a proof, and the trial balance
holds. Reported: turns/s, p50/p95 turn latency, and the server's risk cost per
payment, with the risk model off and on (``--model off|on|both``: the server is
restarted with ``BILLTALK_BILLING_RISK_MODEL_ENABLED``; the model is trained
first with ``billtalk risk train``).

Writes ``bench/results/load.json`` and ``bench/results/load_latency.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("BILLTALK_SECRET_KEY", "bench-secret-key")
# Simulated residents are not a flood: the per-user message limit is measured by bench/flood.py.
os.environ.setdefault("BILLTALK_DIALOGUE_MESSAGES_PER_WINDOW", "0")
BILLTALK = str(REPO / ".venv" / "bin" / "billtalk")
PIN = "482916"
ERRORS = ("went wrong", "not reachable", "couldn't reach", "couldn't be made", "internal")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))]


def start_bot(url: str, data_dir: Path, model: bool, logs: Path) -> tuple[Any, Any]:
    """A stand-in Bot API and a polling ``billtalk telegram run`` against it (started)."""
    from bench.telegram import BOT_ENV, next_update_ids, start_polling_bot
    from tests.channels.telegram.botapi_standin import BotApiStandIn
    from tests.channels.telegram.workers import worker_env

    standin = BotApiStandIn(first_update_id=next_update_ids()).start()
    # The notice poller off (as in bench/telegram.py): pushed reminders are not answers.
    env = {**env_for(url, data_dir, model), **worker_env(standin, url, **BOT_ENV)}
    env["BILLTALK_BILLING_RISK_MODEL_ENABLED"] = "true" if model else "false"
    log = logs / f"telegram-model-{'on' if model else 'off'}.log"
    return standin, start_polling_bot(standin, env, log)


def stop_bot(standin: Any, proc: Any) -> None:
    """Stop the bot process, then the stand-in."""
    from bench.telegram import stop_process

    stop_process(proc)
    standin.stop()


async def telegram_phase(standin: Any, chats: list[int], seconds: float) -> dict[str, Any]:
    """``bench/telegram.py``'s residents (text turns, a think time like the terminal's)."""
    from bench.telegram import TEXT_KINDS, Simulation

    if not chats:
        return {}
    sim = Simulation(standin, chats, b"", think_s=1.25, voice=False)
    try:
        result = await sim.run(seconds, "telegram")
    finally:
        standin.listeners.clear()
    errors = [
        str(c.params.get("text", ""))[:200]
        for chat in chats
        for c in standin.sent(chat)
        if any(e in str(c.params.get("text", "")).lower() for e in ERRORS)
    ]
    latencies = [v for kind in TEXT_KINDS for v in sim.latency[kind]]
    # Chats that got more messages than they sent updates: what the extra ones said.
    extra = [
        [str(c.params.get("text", ""))[:120] for c in standin.sent(chat)[-3:]]
        for chat in chats
        if sim.replies[chat] > sim.updates[chat]
    ]
    return {
        **result,
        "errors": len(errors),
        "error_samples": errors[:5],
        "extra_answer_samples": extra[:5],
        "latencies_ms": latencies,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_db() -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = os.environ.get(
        "BILLTALK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    name = f"bench_load_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_db(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def env_for(url: str, data_dir: Path, model: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BILLTALK_DATABASE_URL=url,
        BILLTALK_DATA_DIR=str(data_dir),
        BILLTALK_LOG_LEVEL="WARNING",
        BILLTALK_BILLING_RISK_MODEL_ENABLED="true" if model else "false",
    )
    return env


class Server:
    """``billtalk serve`` on a loopback port."""

    def __init__(self, env: dict[str, str]) -> None:
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [BILLTALK, "serve", "--port", str(self.port)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("billtalk serve did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def resident_loop(
    engine: Any, resident: str, end: float, rng: random.Random, stats: dict[str, Any]
) -> None:
    from bot.messages import IncomingMessage

    async def turn(text: str | None = None, payload: str | None = None) -> list[Any]:
        msg = IncomingMessage(
            channel="terminal",
            external_user_id=resident,
            resident_id=resident,
            text=text,
            button_payload=payload,
            supports_files=False,
        )
        t0 = time.perf_counter()
        try:
            replies = await engine.handle(msg)
        except Exception as exc:  # an error, counted
            stats["errors"].append(f"{resident}: {exc!r}"[:300])
            return []
        stats["latency"].append((time.perf_counter() - t0) * 1000)
        body = "\n".join(r.text for r in replies)
        if any(e in body.lower() for e in ERRORS):
            stats["errors"].append(f"{resident}: {body[:200]}")
        return list(replies)

    paid = 0
    while time.monotonic() < end:
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        r = rng.random()
        if paid >= 4 or r < 0.45:
            await turn(
                rng.choice(
                    ["how much is my bill?", "why is electricity so high?", "when is my bill due?"]
                )
            )
            continue
        big = r > 0.85
        text = "pay 200 for electricity" if big else f"pay {rng.randrange(1, 9)} for water"
        replies = await turn(text)
        buttons = [b for rep in replies for b in rep.buttons]
        if not buttons or "confirm" not in "\n".join(x.text for x in replies).lower():
            continue  # e.g. more than is due: the resident moves on
        await asyncio.sleep(rng.uniform(0.3, 1.0))
        stats["presses"] += 1
        replies = await turn(payload=buttons[0].payload)
        body = "\n".join(x.text for x in replies)
        if "PIN" in body:
            stats["step_ups"] += 1
            replies = await turn(PIN)
            body = "\n".join(x.text for x in replies)
        if "Paid" in body:
            paid += 1
            stats["paid_replies"] += 1


async def phase(
    url: str, token: str, server_url: str, people: list[str], seconds: float, nlu_model: Any
) -> dict[str, Any]:
    from backend.client import BillingClient
    from billtalk.db import make_engine
    from bot.engine import DialogueEngine
    from bot.store import ConversationStore

    billing = BillingClient(server_url, token, timeout=60)
    engine = DialogueEngine(
        ConversationStore(make_engine(url, pool_size=10, max_overflow=10)),
        billing,
        nlu_model,
        clock=lambda: datetime.now(UTC),
    )
    stats: dict[str, Any] = {
        "latency": [],
        "errors": [],
        "presses": 0,
        "paid_replies": 0,
        "step_ups": 0,
    }
    end = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(
        *[resident_loop(engine, r, end, random.Random(i), stats) for i, r in enumerate(people)]
    )
    elapsed = time.monotonic() - started
    tb = await billing.trial_balance()
    await billing.aclose()
    engine.store.engine.dispose()
    lat = stats["latency"]
    return {
        "seconds": round(elapsed, 1),
        "turns": len(lat),
        "turns_per_s": round(len(lat) / elapsed, 2),
        "p50_ms": round(pct(lat, 50), 1) if lat else None,
        "p95_ms": round(pct(lat, 95), 1) if lat else None,
        "errors": len(stats["errors"]),
        "error_samples": stats["errors"][:5],
        "pay_presses": stats["presses"],
        "paid_replies": stats["paid_replies"],
        "step_ups": stats["step_ups"],
        "trial_balance": tb.balanced,
        "latencies_ms": lat,
    }


def db_checks(url: str, since: datetime) -> dict[str, Any]:
    """Payments the residents made in a phase, duplicates, proofs and the server's risk cost."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select count(*), count(distinct idempotency_key) from payments "
                "where source = 'resident' and created_at >= :t"
            ),
            {"t": since},
        ).one()
        proofs = conn.execute(
            text("select count(*) from step_up_proofs where used_at >= :t"), {"t": since}
        ).scalar()
        big = conn.execute(
            text(
                "select count(*) from payments where source = 'resident' and amount >= 200 "
                "and created_at >= :t and status not in ('review')"
            ),
            {"t": since},
        ).scalar()
    engine.dispose()
    return {
        "resident_payments": rows[0],
        "distinct_keys": rows[1],
        "duplicated": rows[0] - rows[1],
        "proofs_used": proofs,
        "payments_at_or_above_threshold": big,
    }


def risk_cost(url: str, data_dir: Path, samples: int = 300) -> dict[str, Any]:
    """The server-side risk cost per payment (features + rules [+ model]) on this database."""
    from decimal import Decimal

    from sqlalchemy import text

    from backend.service_layer import risk
    from backend.service_layer.unit_of_work import UnitOfWork
    from backend.settings import BillingSettings

    uow = UnitOfWork.from_url(url)
    with uow.reading():
        households = [
            r[0] for r in uow.session.execute(text("select household_id from households"))
        ]
    out: dict[str, Any] = {}
    for name, enabled in (("model_off", False), ("model_on", True)):
        settings = BillingSettings(
            risk_model_enabled=enabled, risk_model_path=str(data_dir / "risk" / "model.joblib")
        )
        times = []
        for i in range(samples):
            t0 = time.perf_counter()
            with uow.reading():
                f = risk.features(
                    uow.session,
                    households[i % len(households)],
                    Decimal("25.00"),
                    "card",
                    "terminal",
                    Decimal("300.00"),
                    datetime.now(UTC),
                    settings,
                )
            risk.assess_payment(f, settings, enforce=True)
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = {
            "median_ms": round(statistics.median(times), 3),
            "p95_ms": round(pct(times, 95), 3),
        }
    out["model_cost_ms"] = round(out["model_on"]["median_ms"] - out["model_off"]["median_ms"], 3)
    uow.engine.dispose()
    return out


async def both_channels(
    url: str,
    token: str,
    server_url: str,
    people: list[str],
    chats: list[int],
    standin: Any,
    seconds: float,
    nlu_model: Any,
) -> dict[str, Any]:
    """The terminal residents and the Telegram residents at the same time."""
    terminal, telegram = await asyncio.gather(
        phase(url, token, server_url, people, seconds, nlu_model),
        telegram_phase(standin, chats, seconds),
    )
    terminal["telegram"] = telegram
    return terminal


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    import nlu
    from backend.demo import seed
    from billtalk.db import make_engine
    from bot.store import ConversationStore, ensure_schema
    from bot.verifiers.pin import hash_pin

    progress = tqdm(total=3 + 2 * len(args.modes), desc="load bench", file=sys.stderr)
    url = make_db()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        households = args.residents * len(args.modes)
        demo = seed(url, households=households, seed=7, months=args.months)
        ensure_schema(url)
        token = demo["service_token"]
        firsts = [h["resident_ids"][0] for h in demo["households"]]
        groups = [
            firsts[i * args.residents : (i + 1) * args.residents] for i in range(len(args.modes))
        ]
        store = ConversationStore(make_engine(url))
        for r in firsts:
            store.set_pin_hash(r, hash_pin(PIN), datetime.now(UTC))
        # The first --telegram-share of each phase's residents talk through Telegram.
        n_tg = round(args.residents * args.telegram_share)
        homes = {h["resident_ids"][0]: h["household_id"] for h in demo["households"]}
        chat_groups: list[list[int]] = []
        for g, group in enumerate(groups):
            chats = [7_000_001 + g * 100_000 + i for i in range(n_tg)]
            for chat, resident in zip(chats, group[:n_tg], strict=True):
                store.link("telegram", str(chat), resident, homes[resident], datetime.now(UTC))
            chat_groups.append(chats)
            groups[g] = group[n_tg:]
        store.engine.dispose()
        progress.update()
        trained = subprocess.run(
            [BILLTALK, "risk", "train"],
            env=env_for(url, data_dir, True),
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        progress.update()
        if hasattr(nlu, "ensure_default_model"):
            nlu.ensure_default_model()
        nlu_model = nlu.load_model()
        progress.update()
        report: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()} ({os.cpu_count()} CPU), "
            f"Python {platform.python_version()}",
            "load_average_start": os.getloadavg(),
            "residents": args.residents,
            "telegram_residents": n_tg,
            "terminal_residents": args.residents - n_tg,
            "households": households,
            "seconds": args.seconds,
            "model": json.loads(trained.stdout),
            "phases": {},
        }
        for mode, people, chats in zip(args.modes, groups, chat_groups, strict=True):
            server = Server(env_for(url, data_dir, mode == "on"))
            standin, bot = start_bot(url, data_dir, mode == "on", data_dir)
            progress.update()
            since = datetime.now(UTC)
            try:
                result = await both_channels(
                    url, token, server.url, people, chats, standin, args.seconds, nlu_model
                )
            finally:
                server.stop()
                stop_bot(standin, bot)
            result.update(db_checks(url, since))
            report["phases"][f"model_{mode}"] = result
            progress.update()
        report["risk_cost_per_payment"] = risk_cost(url, data_dir)
        report["load_average_end"] = os.getloadavg()
        progress.close()
        return report
    finally:
        drop_db(url)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, phase_ in report["phases"].items():
        lat = sorted(phase_["latencies_ms"])
        if lat:
            ax.plot(lat, [i / len(lat) for i in range(len(lat))], label=f"{name} terminal")
        tg = sorted(phase_.get("telegram", {}).get("latencies_ms", []))
        if tg:
            ax.plot(tg, [i / len(tg) for i in range(len(tg))], "--", label=f"{name} telegram")
    ax.set_xscale("log")
    ax.set_xlabel("turn latency (ms, log)")
    ax.set_ylabel("share of turns")
    ax.set_title(f"{report['residents']} residents, terminal + Telegram + API, PostgreSQL")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--months", type=int, default=3, help="months of demo history")
    parser.add_argument("--model", choices=["off", "on", "both"], default="both")
    parser.add_argument(
        "--telegram-share", type=float, default=0.5, help="share of residents on Telegram"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    args.modes = ["off", "on"] if args.model == "both" else [args.model]
    report = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    plot(report, args.out / "load_latency.png")
    for p in report["phases"].values():
        p.pop("latencies_ms")
        p.get("telegram", {}).pop("latencies_ms", None)
    (args.out / "load.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
