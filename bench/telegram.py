"""Benchmark of the Telegram channel: simulated residents through the Bot API stand-in.

200 residents (Telegram chats, each linked to a seeded resident) run a realistic
session over and over for 60 s: ask the balance, ask why a bill is so high, pay
1.00-1.99 of a utility and press the Pay button, send a voice note ("how much do I
owe", espeak-ng, OGG/Opus). Each text is drawn from a few dozen phrasings and amounts
(``--texts fixed``: the three fixed texts of runs 1-8, which the NLU cache answers).
Each resident waits for the bot's answer before the next message (a closed loop, no
think time: the bot is kept saturated).

Everything is real and separate: the bot runs as ``billtalk telegram run``
processes (polling, or 1 and 2 webhook workers) on PostgreSQL; the stand-in
(tests/channels/telegram/botapi_standin.py) is the Bot API on loopback and
records what the bot sent. Measured:

* first-reply latency (update injected -> the bot's first ``sendMessage`` or
  ``editMessageText`` to that chat), p50 / p95, per kind of turn;
* updates handled per second;
* lost updates (never answered) and duplicate answers (an update answered twice);
* failed turns: answered, but with the engine's apology because the billing backend
  or the engine failed (``FAILURE_REPLIES``); an apology is not a lost update, and
  not a turn done either.

Run (the machine is shared, so nice it)::

    nice -n 10 .venv/bin/python bench/telegram.py [--seconds 60] [--residents 200]

Writes ``bench/results/telegram.json`` and ``bench/results/telegram.png`` and
prints a Markdown summary on stdout. Needs PostgreSQL (BILLTALK_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

logging.getLogger("httpx").setLevel(logging.WARNING)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
os.environ.setdefault("BILLTALK_SECRET_KEY", "bench-secret-key-for-the-telegram-benchmark")
# Simulated residents type faster than people: the per-user flood limit is not what is measured
# here (bench/flood.py measures it).
os.environ.setdefault("BILLTALK_DIALOGUE_MESSAGES_PER_WINDOW", "0")

from tests.channels.telegram.botapi_standin import BotApiStandIn, Call  # noqa: E402
from tests.channels.telegram.workers import (  # noqa: E402
    REPO,
    SECRET,
    webhook_workers,
    worker_env,
)

REPLY_METHODS = ("sendMessage", "editMessageText")
#: The bot processes' extra environment. The notice poller is off: the reminders it pushes
#: (due and overdue bills of the seeded community) are sendMessage calls to the same chats,
#: which this benchmark would count as answers to updates (as "duplicates"); it measures
#: turns. Pushed notices have their own tests (tests/channels/telegram).
BOT_ENV = {"BILLTALK_TELEGRAM_NOTICE_POLL_S": "0"}
SESSION = (
    ("balance", "how much do I owe?"),
    ("explain", "why is my electricity bill so high?"),
    ("pay", "pay 1 for water"),
    ("voice", None),
)
#: What residents type, by kind (``--texts varied``, the default): each turn draws one, so the
#: NLU parse cache sees what real residents would give it, not three texts repeated (runs 1-8
#: used :data:`SESSION`'s fixed texts, ``--texts fixed``). Every phrasing parses to its kind's
#: intent (check_balance, explain_bill, pay_bill with its amount and utility).
BALANCE_TEXTS = (
    "how much do I owe?",
    "what's my balance",
    "what do I owe right now?",
    "how much is outstanding on my account",
    "can you tell me my balance please",
    "balance?",
    "do I owe anything",
    "what's the total I need to pay",
    "how much money do I owe you",
    "show me what's due",
    "am I behind on any bills?",
    "what is my current balance",
    "how much is my bill",
    "how much do i have to pay this month",
    "tell me my outstanding amount",
    "whats due on my account",
)
EXPLAIN_TEXTS = (
    "why is my electricity bill so high?",
    "why did my electricity bill go up",
    "explain my water bill",
    "why is my gas bill higher than last month",
    "what are the charges on my electricity bill",
    "can you explain my latest bill",
    "my water bill looks too high, why?",
    "why is my bill so expensive this time",
    "break down my electricity charges",
    "why am I paying more for water",
    "what makes up my gas bill",
    "why has my electric bill increased",
    "explain the charges on my water bill please",
    "why is the power bill so big",
)
#: Payments: a phrasing, a utility and an amount of 1.00-1.99 (small: no step-up, and about the
#: money the fixed "pay 1 for water" moved). A utility with nothing due is answered "nothing is
#: due", with no button to press, as for the fixed text's households with no water due.
PAY_TEMPLATES = (
    "pay {amount} for {utility}",
    "I want to pay {amount} for {utility}",
    "please pay {amount} for my {utility} bill",
    "can I pay {amount} for {utility}",
    "make a payment of {amount} for {utility}",
    "i'd like to pay {amount} on the {utility} bill",
    "pay {amount} towards my {utility} bill",
    "pay ¥{amount} for {utility}",
    "pay {amount} yuan for {utility}",
)
PAY_UTILITIES = ("water", "electricity", "gas")


def session_text(kind: str, rng: random.Random, varied: bool) -> str | None:
    """What a resident types for a turn of ``kind`` (None: a voice note)."""
    fixed = dict(SESSION)[kind]
    if not varied or fixed is None:
        return fixed
    if kind == "balance":
        return rng.choice(BALANCE_TEXTS)
    if kind == "explain":
        return rng.choice(EXPLAIN_TEXTS)
    amount = f"1.{rng.randrange(100):02d}"
    return rng.choice(PAY_TEMPLATES).format(amount=amount, utility=rng.choice(PAY_UTILITIES))


TEXT_KINDS = ("balance", "explain", "pay", "press")
#: Replies that answer a turn without doing it: the engine's apologies when the billing
#: backend or the engine itself failed. An answer, so not "lost", but a failed turn.
FAILURE_REPLIES = ("backend_down", "backend_error", "internal_error", "voice_failed")


def failure_texts() -> tuple[str, ...]:
    """The English text of every failure reply (the residents are English)."""
    from bot.responses import Responses

    responses = Responses()
    return tuple(responses.template(key, "en") for key in FAILURE_REPLIES)


_update_blocks = iter(range(1_000, 10**9, 10_000_000))


def next_update_ids() -> int:
    """The first ``update_id`` of the next stand-in: the same bot's ids only ever grow."""
    return next(_update_blocks)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values`` (nearest rank), in the values' unit."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Simulation:
    """Residents driving the stand-in; answers are matched to the chat's one open update."""

    def __init__(
        self,
        standin: BotApiStandIn,
        chats: list[int],
        voice_note: bytes,
        *,
        think_s: float = 0.0,
        voice: bool = True,
        varied: bool = True,
    ) -> None:
        self.standin = standin
        self.chats = chats
        self.voice_note = voice_note
        self.think_s = think_s
        self.session = [kind for kind, _ in SESSION if voice or kind != "voice"]
        self.varied = varied
        self.random = random.Random(7)
        self.loop = asyncio.get_running_loop()
        self.waiting: dict[int, asyncio.Future[tuple[float, Call]]] = {}
        self.replies: dict[int, int] = defaultdict(int)
        self.updates: dict[int, int] = defaultdict(int)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.timeouts = 0
        self.answered_in_window = 0
        self.failure_texts = failure_texts()
        self.failed: Counter[str] = Counter()
        standin.listeners.append(self._on_call)

    def _on_call(self, call: Call) -> None:
        if call.method in REPLY_METHODS and call.status == 200:
            chat = int(call.params["chat_id"])
            self.loop.call_soon_threadsafe(self._answered, chat, time.monotonic(), call)

    def _answered(self, chat: int, at: float, call: Call) -> None:
        self.replies[chat] += 1
        future = self.waiting.pop(chat, None)
        if future is not None and not future.done():
            future.set_result((at, call))

    async def _turn(self, chat: int, kind: str, inject: Any, progress: tqdm) -> Call | None:
        future: asyncio.Future[tuple[float, Call]] = self.loop.create_future()
        self.waiting[chat] = future
        started = time.monotonic()
        inject()
        self.updates[chat] += 1
        try:
            at, call = await asyncio.wait_for(future, 60)
        except TimeoutError:
            self.timeouts += 1
            self.waiting.pop(chat, None)
            return None
        self.latency[kind].append((at - started) * 1000)
        self.answered_in_window += 1
        if str(call.params.get("text", "")).startswith(self.failure_texts):
            self.failed[kind] += 1
        progress.update(1)
        return call

    async def resident(self, chat: int, until: float, progress: tqdm) -> None:
        """One resident's sessions until ``until`` (monotonic seconds)."""
        standin = self.standin
        if self.think_s:  # residents start at different moments
            await asyncio.sleep(self.random.uniform(0, self.think_s))
        while time.monotonic() < until:
            for kind in self.session:
                text = session_text(kind, self.random, self.varied)
                if time.monotonic() >= until:
                    return
                if self.think_s:
                    await asyncio.sleep(self.random.uniform(0.5, 1.5) * self.think_s)
                if kind == "voice":
                    await self._turn(
                        chat, kind, lambda: standin.voice(chat, self.voice_note), progress
                    )
                    continue
                call = await self._turn(chat, kind, lambda t=text: standin.text(chat, t), progress)
                markup = (call.params.get("reply_markup") or {}) if call is not None else {}
                buttons = [b for row in markup.get("inline_keyboard", []) for b in row]
                if kind == "pay" and buttons and time.monotonic() < until:
                    message_id = int(call.params["_message_id"])  # type: ignore[union-attr]
                    data = buttons[0]["callback_data"]
                    await self._turn(
                        chat,
                        "press",
                        lambda d=data, m=message_id: standin.press(chat, d, message_id=m),
                        progress,
                    )

    async def run(self, seconds: float, label: str) -> dict[str, Any]:
        """Run every resident for ``seconds``; the measurements."""
        until = time.monotonic() + seconds
        started = time.monotonic()
        with tqdm(desc=label, unit="upd", file=sys.stderr) as progress:
            await asyncio.gather(*(self.resident(c, until, progress) for c in self.chats))
        elapsed = time.monotonic() - started
        await asyncio.sleep(5.0)  # anything answered late or twice arrives now
        lost = sum(max(0, self.updates[c] - self.replies[c]) for c in self.chats)
        duplicates = sum(max(0, self.replies[c] - self.updates[c]) for c in self.chats)
        text_latency = [v for k in TEXT_KINDS for v in self.latency[k]]
        return {
            "updates": sum(self.updates.values()),
            "answered": sum(self.replies.values()),
            "seconds": round(elapsed, 2),
            "updates_per_s": round(self.answered_in_window / elapsed, 1),
            "answered_in_window": self.answered_in_window,
            "lost": lost,
            "duplicates": duplicates,
            "timeouts_60s": self.timeouts,
            "failed_turns": sum(self.failed.values()),
            "failed_by_kind": dict(sorted(self.failed.items())),
            "text_p50_ms": round(percentile(text_latency, 0.5), 1),
            "text_p95_ms": round(percentile(text_latency, 0.95), 1),
            "by_kind": {
                k: {
                    "n": len(v),
                    "p50_ms": round(percentile(v, 0.5), 1),
                    "p95_ms": round(percentile(v, 0.95), 1),
                }
                for k, v in sorted(self.latency.items())
            },
        }


def make_voice_note(tmp: Path) -> bytes:
    """'how much do I owe' by espeak-ng, as OGG/Opus."""
    from tests.channels.telegram.helpers import ogg_note

    return ogg_note("how much do I owe", tmp)


def create_database(admin_url: str) -> str:
    """A fresh PostgreSQL database for the benchmark; its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"billtalk_bench_tg_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    """Drop the benchmark's database."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def prepare(url: str, households: int, chats: list[int]) -> None:
    """Seed the community, migrate, and link every chat to a resident (round robin)."""
    from datetime import date

    from backend.demo import seed
    from billtalk.db import make_engine
    from bot.store import ConversationStore, ensure_schema

    result = seed(url, households=households, seed=7, months=3, today=date(2026, 11, 20))
    ensure_schema(url)
    store = ConversationStore(make_engine(url))
    homes = result["households"]
    now = datetime.now(UTC)
    for i, chat in enumerate(chats):
        home = homes[i % len(homes)]
        store.link("telegram", str(chat), home["resident_ids"][0], home["household_id"], now)
    store.engine.dispose()


def _stat(pid: str) -> list[str] | None:
    """``/proc/PID/stat`` fields after the command name (state is [0]), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def cpu_snapshot() -> dict[str, float]:
    """CPU seconds so far (Linux /proc): the bot processes (this process's descendants),
    this process (the Bot API stand-in and the simulated residents), PostgreSQL's
    processes (every database: other users' too), and the whole machine (busy time)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {p.name: _stat(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}
    names = {}
    for pid in stats:
        try:
            names[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            names[pid] = ""
    children: dict[str, list[str]] = defaultdict(list)
    for pid, fields in stats.items():
        if fields is not None:
            children[fields[1]].append(pid)  # [1] is the parent's pid
    bot, todo = 0.0, list(children[str(os.getpid())])
    while todo:
        pid = todo.pop()
        fields = stats.get(pid)
        if fields is not None:
            bot += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        todo.extend(children[pid])
    postgres = sum(
        (int(f[11]) + int(f[12])) / tick
        for pid, f in stats.items()
        if f is not None and names.get(pid) == "postgres"
    )
    cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = (sum(cpu) - cpu[3] - cpu[4]) / tick  # all but idle and iowait
    me = os.times()
    return {"bot": bot, "bench": me.user + me.system, "postgres": postgres, "machine": busy}


def cpu_per_update(
    before: dict[str, float], after: dict[str, float], updates: int
) -> dict[str, float]:
    """CPU milliseconds per handled update, by part, between two :func:`cpu_snapshot`s;
    ``other`` is the rest of the machine's busy time (other users' work)."""
    used = {k: after[k] - before[k] for k in before}
    used["other"] = used["machine"] - used["bot"] - used["bench"] - used["postgres"]
    return {k: round(v * 1000 / max(updates, 1), 1) for k, v in used.items()}


async def measure(
    standin: BotApiStandIn,
    chats: list[int],
    note: bytes,
    seconds: float,
    label: str,
    think_s: float,
    voice: bool,
    varied: bool = True,
) -> dict[str, Any]:
    sim = Simulation(standin, chats, note, think_s=think_s, voice=voice, varied=varied)
    load = os.getloadavg()[0]
    before = cpu_snapshot()
    try:
        result = await sim.run(seconds, label)
    finally:
        standin.listeners.clear()
    # Over the phase and its 5 s tail, per update answered in the phase.
    cpu = cpu_per_update(before, cpu_snapshot(), result["answered_in_window"])
    return {
        "think_s": think_s,
        "voice_notes": voice,
        **result,
        "cpu_ms_per_update": cpu,
        "load_average_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
    }


#: (name, think time between a resident's messages, whether the session has a voice note)
PHASES = {
    "latency": (5.0, True),  # people pause between messages: first-reply latency
    "throughput_text": (0.0, False),  # saturated, text turns only: the channel's capacity
    "throughput_full": (0.0, True),  # saturated, the whole session with its voice note
}


def worker_stats(urls: list[str]) -> dict[str, int]:
    """The webhook workers' counters (``/healthz``: updates handled, NLU cache hits and
    misses), summed over the workers."""
    import httpx

    total: Counter[str] = Counter()
    for url in urls:
        body = httpx.get(url.replace("/telegram/webhook", "/healthz"), timeout=10).json()
        total.update({k: v for k, v in body.items() if isinstance(v, int)})
    return dict(total)


def run_phases(
    standin: BotApiStandIn,
    chats: list[int],
    note: bytes,
    seconds: float,
    mode: str,
    phases: list[str],
    urls: list[str] | None = None,
    varied: bool = True,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for phase in phases:
        think_s, voice = PHASES[phase]
        before = worker_stats(urls) if urls else {}
        out[phase] = asyncio.run(
            measure(standin, chats, note, seconds, f"{mode} {phase}", think_s, voice, varied)
        )
        if urls:  # the NLU cache's share of this phase's parses
            after = worker_stats(urls)
            hits = after.get("nlu_cache_hits", 0) - before.get("nlu_cache_hits", 0)
            misses = after.get("nlu_cache_misses", 0) - before.get("nlu_cache_misses", 0)
            out[phase]["nlu_cache"] = {
                "hits": hits,
                "misses": misses,
                "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
            }
        print(f"{mode} {phase}: {json.dumps(out[phase])}", file=sys.stderr)
    return out


def start_polling_bot(
    standin: BotApiStandIn, env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """``billtalk telegram run --mode polling`` against ``standin`` with ``env`` (its output
    to ``log_path``), once it polls."""
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "telegram", "run", "--mode", "polling"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=log,
    )
    standin.wait_for(lambda: standin.calls_of("getUpdates"), timeout=240, what="the polling bot")
    return proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a bot process (killed if it has not exited within 30 s)."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def polling_bot(
    standin: BotApiStandIn, url: str, log_path: Path, **extra_env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A polling bot on database ``url`` for the duration of the block (notice poller off)."""
    proc = start_polling_bot(standin, worker_env(standin, url, **BOT_ENV, **extra_env), log_path)
    try:
        yield proc
    finally:
        stop_process(proc)


def run_polling(
    url: str,
    chats: list[int],
    note: bytes,
    seconds: float,
    logs: Path,
    phases: list[str],
    varied: bool = True,
) -> dict[str, Any]:
    with (
        BotApiStandIn(first_update_id=next_update_ids()) as standin,
        polling_bot(standin, url, logs / "polling.log"),
    ):
        return run_phases(standin, chats, note, seconds, "polling", phases, varied=varied)


def run_webhook(
    url: str,
    chats: list[int],
    note: bytes,
    seconds: float,
    workers: int,
    logs: Path,
    phases: list[str],
    varied: bool = True,
) -> dict[str, Any]:
    standin = BotApiStandIn(
        webhook_timeout_s=60, webhook_connections=100, first_update_id=next_update_ids()
    )
    with standin, webhook_workers(standin, url, workers, logs, **BOT_ENV) as urls:
        standin.webhook = {"url": urls[0], "secret_token": SECRET}
        standin.deliver_to = urls
        return run_phases(standin, chats, note, seconds, f"webhook{workers}", phases, urls, varied)


async def engine_only(url: str, chats: list[int], seconds: float) -> dict[str, Any]:
    """The same text turns straight into ``DialogueEngine.handle`` (no Telegram): a baseline."""
    from bot.engine import DialogueEngine
    from bot.messages import IncomingMessage

    engine = await DialogueEngine.embedded(url)
    engine.nlu.parse("how much do I owe?")
    texts = [t for k, t in SESSION if t is not None]
    latencies: list[float] = []
    until = time.monotonic() + seconds
    started = time.monotonic()

    async def resident(chat: int) -> None:
        n = 0
        while time.monotonic() < until:
            t0 = time.monotonic()
            await engine.handle(
                IncomingMessage(
                    channel="telegram", external_user_id=str(chat), text=texts[n % len(texts)]
                )
            )
            latencies.append((time.monotonic() - t0) * 1000)
            n += 1

    try:
        await asyncio.gather(*(resident(c) for c in chats))
    finally:
        await engine.billing.aclose()
    elapsed = time.monotonic() - started
    return {
        "turns": len(latencies),
        "seconds": round(elapsed, 2),
        "turns_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
    }


def rows(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(mode, phase, measurements)`` of every phase run."""
    return [(m, ph, r) for m, phases in results["modes"].items() for ph, r in phases.items()]


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    latency = [(m, r) for m, ph, r in rows(results) if ph == "latency"]
    xs = range(len(latency))
    left.bar([x - 0.2 for x in xs], [r["text_p50_ms"] for _, r in latency], 0.4, label="p50")
    left.bar([x + 0.2 for x in xs], [r["text_p95_ms"] for _, r in latency], 0.4, label="p95")
    left.axhline(150, color="red", linestyle="--", label="p95 target")
    left.set_xticks(list(xs), [m for m, _ in latency])
    left.set_yscale("log")
    left.set_ylabel("first reply, text turns (ms, log)")
    left.set_title("latency (5 s think time)")
    left.legend()
    saturated = [
        (f"{m}\n{ph.removeprefix('throughput_')}", r)
        for m, ph, r in rows(results)
        if ph.startswith("throughput") and m != "engine"
    ]
    right.bar([n for n, _ in saturated], [r["updates_per_s"] for _, r in saturated])
    right.axhline(150, color="red", linestyle="--", label="target (2 workers)")
    right.set_ylabel("updates handled per second")
    right.set_title("throughput (no think time)")
    right.legend()
    fig.suptitle(
        f"Telegram: {results['residents']} residents, {results['seconds']:.0f} s a phase,"
        f" PostgreSQL, {results['machine']['cpus']} shared cores"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--households", type=int, default=50)
    parser.add_argument(
        "--plan",
        default="polling:latency,webhook1:latency+throughput_text,"
        "webhook2:latency+throughput_text+throughput_full",
        help="mode:phase+phase,... (modes: polling, webhookN)",
    )
    parser.add_argument("--logs", default="", help="keep the bot processes' logs here")
    parser.add_argument("--out", default="telegram", help="results file stem in bench/results")
    parser.add_argument(
        "--texts",
        choices=("varied", "fixed"),
        default="varied",
        help="what residents type: phrasings drawn per turn (default), or the "
        "three fixed texts of runs 1-8",
    )
    parser.add_argument(
        "--bot-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable of the bot processes (repeatable), e.g. "
        "BILLTALK_TELEGRAM_EARLY_ACK=false; BILLTALK_TELEGRAM_* of the caller's "
        "environment are not passed on",
    )
    args = parser.parse_args()
    varied = args.texts == "varied"
    for item in args.bot_env:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--bot-env {item!r}: NAME=VALUE")
        BOT_ENV[name] = value
    admin = os.environ.get(
        "BILLTALK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    chats = [8_000_001 + i for i in range(args.residents)]
    load_before = list(os.getloadavg())
    url = create_database(admin)
    modes: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(args.logs) if args.logs else Path(tmp)
            tmp_path.mkdir(parents=True, exist_ok=True)
            note = make_voice_note(tmp_path)
            prepare(url, args.households, chats)
            for item in args.plan.split(","):
                mode, _, phase_list = item.partition(":")
                phases = phase_list.split("+")
                if mode == "engine":  # the baseline: no Telegram at all
                    modes[mode] = {
                        "throughput_text": asyncio.run(engine_only(url, chats, args.seconds))
                    }
                    print(f"engine: {json.dumps(modes[mode])}", file=sys.stderr)
                elif mode == "polling":
                    modes[mode] = run_polling(
                        url, chats, note, args.seconds, tmp_path, phases, varied
                    )
                else:
                    workers = int(mode.removeprefix("webhook"))
                    modes[mode] = run_webhook(
                        url, chats, note, args.seconds, workers, tmp_path, phases, varied
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
        "residents": args.residents,
        "households": args.households,
        "seconds": args.seconds,
        "session": [k for k, _ in SESSION] + ["press (after pay)"],
        "texts": args.texts,
        "phases": {k: {"think_s": v[0], "voice_notes": v[1]} for k, v in PHASES.items()},
        "database": "postgresql",
        "bot_env": dict(BOT_ENV),
        "modes": modes,
        "targets": {
            "text_p95_ms": 150,
            "updates_per_s_2_workers": 150,
            "lost": 0,
            "duplicates": 0,
            "failed_turns": 0,
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    if any(m != "engine" for m in modes):
        chart(results, RESULTS / f"{args.out}.png")
    print(
        "| mode | phase | updates/s | text p50 ms | text p95 ms | voice p50 ms | voice p95 ms "
        "| lost | duplicates | failed turns | CPU ms/update: bot, bench, postgres, other "
        "| load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for mode, phase, r in rows(results):
        if mode == "engine":
            print(
                f"| engine only | {phase} | {r['turns_per_s']} | {r['p50_ms']} | {r['p95_ms']} "
                "| - | - | - | - |"
            )
            continue
        voice = r["by_kind"].get("voice", {})
        print(
            f"| {mode} | {phase} | {r['updates_per_s']} | {r['text_p50_ms']} | "
            f"{r['text_p95_ms']} | {voice.get('p50_ms', '-')} | {voice.get('p95_ms', '-')} | "
            f"{r['lost']} | {r['duplicates']} | {r.get('failed_turns', '-')} | "
            + ", ".join(
                str(r["cpu_ms_per_update"][k]) for k in ("bot", "bench", "postgres", "other")
            )
            + f" | {r['load_average_1m'][0]}-{r['load_average_1m'][1]} |"
        )


if __name__ == "__main__":
    main()
