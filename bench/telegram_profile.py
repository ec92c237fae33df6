"""Where a text turn's milliseconds go: the engine's parts, SQL statements, API requests.

The Telegram benchmark's text turns (balance, explain, pay: its varied phrasings, or
with ``--texts fixed`` its three fixed texts), one at a time into ``DialogueEngine.handle``
(no Telegram: the engine is most of a turn's cost), on a fresh seeded database.
Prints per turn: wall time and process CPU time, the wall time of each part
(backend API requests through the in-process ASGI transport, NLU parse, the
store's calls), SQL statements by kind, API requests by route, and on
PostgreSQL the driver's waits on the server (about one per round trip).

Run (heavy: under the benchmark lock)::

    flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/telegram_profile.py \
        [--db pg|sqlite] [--cprofile] [--voice N] [--texts varied|fixed]

``--cprofile`` adds the functions with the most CPU (own and cumulative), with the
thread-pool work run inline so that cProfile sees it; ``--voice N`` the CPU of
transcribing the benchmark's voice note (N times).

Prints Markdown on stdout; nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/ itself off the path: bench/telegram.py would shadow python-telegram-bot's package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BILLTALK_SECRET_KEY", "bench-secret-key-for-the-telegram-benchmark")
os.environ.setdefault("BILLTALK_DIALOGUE_MESSAGES_PER_WINDOW", "0")

TEXTS = ("how much do I owe?", "why is my electricity bill so high?", "pay 1 for water")


class Timings:
    """Wall time and calls of wrapped functions, by label."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()

    def wrap(self, owner: Any, name: str, label: str) -> None:
        """Time ``owner.name`` (sync or async) under ``label``."""
        func: Callable[..., Any] = getattr(owner, name)
        timings = self
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await func(*args, **kwargs)
                finally:
                    timings.seconds[label] += time.perf_counter() - started
                    timings.calls[label] += 1

            setattr(owner, name, timed_async)
        else:

            @functools.wraps(func)
            def timed(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return func(*args, **kwargs)
                finally:
                    timings.seconds[label] += time.perf_counter() - started
                    timings.calls[label] += 1

            setattr(owner, name, timed)


def run_threads_inline() -> None:
    """Run ``asyncio.to_thread`` and AnyIO's thread-pool calls inline (for cProfile).

    cProfile sees only the thread it runs in; inline, the NLU, the store and the
    API's sync routes are counted too. Turns run one at a time, so nothing waits.
    """
    import anyio.to_thread

    async def inline(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    asyncio.to_thread = inline  # type: ignore[assignment]
    anyio.to_thread.run_sync = inline  # type: ignore[assignment]


def print_cprofile(stats_profile: Any, turns: int) -> None:
    """The functions with the most CPU, own time and cumulative, in ms per turn."""
    import pstats

    stats = pstats.Stats(stats_profile)
    rows = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _cc, _nc, tt, _ct, _callers in rows.values())
    print(f"\ncProfile: {total / turns * 1000:.1f} ms CPU per turn (profiler overhead included)\n")
    ours = tuple(str(ROOT / p) for p in ("backend", "bot", "actions", "nlu", "billtalk"))
    for title, index in (("own time", 2), ("cumulative, billtalk's code", 3)):
        print(f"| function ({title}) | ms per turn | share | calls per turn |\n|---|---|---|---|")
        candidates = [kv for kv in rows.items() if index == 2 or kv[0][0].startswith(ours)]
        top = sorted(candidates, key=lambda kv: -kv[1][index])[:40]
        for (path, line, name), (_cc, calls, tt, ct, _callers) in top:
            value = tt if index == 2 else ct
            where = "/".join(Path(path).parts[-2:])
            print(
                f"| `{where}:{line} {name}` | {value / turns * 1000:.2f} | "
                f"{value / total * 100:.1f} % | {calls / turns:.2f} |"
            )
        print()


def thread_cpu_s(native_id: int) -> float:
    """CPU seconds (user + system) of one thread of this process, from ``/proc``."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TelegramDriver:
    """Whole webhook updates through ``TelegramRuntime.process`` (the webhook route's call):
    the ledger, PTB's parsing and handlers, the engine's turn, ``sendMessage`` to a Bot API
    stand-in running in a thread of this process (its CPU is measured and left out)."""

    def __init__(self, url: str) -> None:
        from tests.channels.telegram.botapi_standin import TOKEN, BotApiStandIn

        self.standin = BotApiStandIn().start()
        os.environ.update(
            {
                "BILLTALK_TELEGRAM_TOKEN": TOKEN,
                "BILLTALK_TELEGRAM_API_URL": self.standin.api_url,
                "BILLTALK_TELEGRAM_FILE_URL": self.standin.file_url,
                "BILLTALK_TELEGRAM_WEBHOOK_SECRET": "profile",
                "BILLTALK_TELEGRAM_MAX_SENDS_PER_S": "10000",
                "BILLTALK_TELEGRAM_NOTICE_POLL_S": "0",
                "BILLTALK_TELEGRAM_KEEP_HANDLED_H": "0",
            }
        )
        self.url = url
        self.runtime: Any = None

    async def start(self, engine: Any) -> None:
        """The runtime in webhook mode (no outbox sender, no notice poller)."""
        from bot.channels.telegram.app import TelegramRuntime
        from bot.channels.telegram.settings import TelegramSettings

        self.runtime = TelegramRuntime(engine, TelegramSettings(), polling=False, outbox=False)
        await self.runtime.start()

    async def text(self, chat: int, text: str) -> None:
        """One text update, handled the way the webhook route handles it."""
        await self.runtime.process(self.standin.message(chat, text=text))

    def standin_cpu_s(self) -> float:
        """CPU seconds the stand-in's server thread used so far."""
        thread = self.standin._thread
        assert thread is not None and thread.native_id is not None
        return thread_cpu_s(thread.native_id)

    async def stop(self) -> None:
        """Stop the runtime and the stand-in."""
        await self.runtime.stop()
        self.standin.stop()


async def profile(
    url: str,
    chats: list[int],
    turns: int,
    cprofile: bool = False,
    telegram: bool = False,
    texts: list[str] | None = None,
) -> None:
    """Warm up, then run ``turns`` text turns one at a time and print the breakdown.

    With ``telegram``, each turn is a whole webhook update (:class:`TelegramDriver`).
    ``texts``: the measured turns' texts, in turn (default: :data:`TEXTS` over and over).
    """
    texts = texts or list(TEXTS)
    import httpx
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from bot.engine import DialogueEngine
    from bot.messages import IncomingMessage

    engine = await DialogueEngine.embedded(url)
    driver = TelegramDriver(url) if telegram else None
    if driver is not None:
        await driver.start(engine)
    for chat in chats:  # warm: conversations exist, scoped clients and NLU are loaded
        for text in TEXTS:
            if driver is not None:
                await driver.text(chat, text)
                continue
            await engine.handle(
                IncomingMessage(channel="telegram", external_user_id=str(chat), text=text)
            )
    statements: Counter[str] = Counter()

    @event.listens_for(Engine, "before_cursor_execute")
    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = statement.split()
        statements[" ".join(words[:4])[:60]] += 1

    transactions = [0]

    def in_transaction(conn: Any) -> bool:
        """Whether the connection ran in a server transaction (not autocommit)."""
        return conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT"

    @event.listens_for(Engine, "commit")
    def count_commit(conn: Any) -> None:
        transactions[0] += in_transaction(conn)

    @event.listens_for(Engine, "rollback")
    def count_rollback(conn: Any) -> None:
        transactions[0] += in_transaction(conn)

    timings = Timings()
    for name in ("linked_resident", "acquire", "processed_delivery", "commit_turn"):
        timings.wrap(engine.store, name, f"store.{name}")
    timings.wrap(engine.nlu, "parse_many", "NLU parse (worker thread)")
    timings.wrap(engine, "_render", "render replies")
    timings.wrap(httpx.AsyncClient, "send", "billing API request (in-process ASGI)")
    from backend.api.reads import InProcessReads

    timings.wrap(InProcessReads, "call", "billing read (in-process, no HTTP)")
    if driver is not None:
        ledger = driver.runtime.adapter.ledger
        for name in ("status", "claim", "finish"):
            timings.wrap(ledger, name, f"ledger.{name}")
        timings.wrap(driver.runtime.adapter.channel, "send", "Bot API send (sendMessage)")
    requests: Counter[str] = Counter()
    send = httpx.AsyncClient.send

    async def counted(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> Any:
        parts = [p for p in request.url.path.split("/") if p][2:3]
        requests[f"{request.method} /api/v1/{'/'.join(parts)}/..."] += 1
        return await send(self, request, **kwargs)

    httpx.AsyncClient.send = counted  # type: ignore[method-assign]
    waits = [0]
    if url.startswith("postgresql"):
        import psycopg

        wait = psycopg.Connection.wait

        def counted_wait(self: Any, *args: Any, **kwargs: Any) -> Any:
            waits[0] += 1
            return wait(self, *args, **kwargs)

        psycopg.Connection.wait = counted_wait  # type: ignore[method-assign]
    profiler = None
    if cprofile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not wall (server waits)
        profiler.enable()
    hops: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    run_in_executor = loop.run_in_executor

    def counted_hop(executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        target: Any = func
        if isinstance(func, functools.partial) and func.args:  # asyncio.to_thread's
            target = func.args[0]
        hops[getattr(target, "__qualname__", type(target).__name__)] += 1
        return run_in_executor(executor, func, *args)

    loop.run_in_executor = counted_hop  # type: ignore[method-assign]
    calls_before = len(driver.standin.calls) if driver is not None else 0
    standin_cpu0 = driver.standin_cpu_s() if driver is not None else 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(turns):
        if driver is not None:
            await driver.text(chats[i % len(chats)], texts[i % len(texts)])
            continue
        await engine.handle(
            IncomingMessage(
                channel="telegram",
                external_user_id=str(chats[i % len(chats)]),
                text=texts[i % len(texts)],
                delivery_id=f"telegram:profile:{wall0}:{i}",
            )
        )
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    loop.run_in_executor = run_in_executor  # type: ignore[method-assign]
    if profiler is not None:
        profiler.disable()
    standin_cpu = driver.standin_cpu_s() - standin_cpu0 if driver is not None else 0.0
    bot_api = Counter(c.method for c in driver.standin.calls[calls_before:]) if driver else None
    if driver is not None:
        await driver.stop()
    await engine.billing.aclose()
    what = "webhook updates (TelegramRuntime.process)" if driver else "text turns"
    print(
        f"{turns} {what} one at a time: **{wall / turns * 1000:.1f} ms** wall, "
        f"{(cpu - standin_cpu) / turns * 1000:.1f} ms process CPU per turn"
        + (f" (the stand-in's {standin_cpu / turns * 1000:.1f} ms left out)" if driver else "")
        + f"; load average {os.getloadavg()[0]:.2f}"
        + (f"; {waits[0] / turns:.1f} driver waits on the server per turn" if waits[0] else "")
    )
    print(f"\nThread-pool hops per turn: {sum(hops.values()) / turns:.2f}\n")
    print("| function run in a worker thread | per turn |\n|---|---|")
    for name, n in hops.most_common():
        print(f"| `{name}` | {n / turns:.2f} |")
    if bot_api is not None:
        print(
            f"\nBot API calls per turn: {sum(bot_api.values()) / turns:.2f} "
            + ", ".join(f"{m} {n / turns:.2f}" for m, n in bot_api.most_common())
        )
    print("\n| part | ms per turn | calls per turn |\n|---|---|---|")
    for label, seconds in sorted(timings.seconds.items(), key=lambda kv: -kv[1]):
        print(f"| {label} | {seconds / turns * 1000:.2f} | {timings.calls[label] / turns:.2f} |")
    print(
        f"\nSQL statements per turn: {sum(statements.values()) / turns:.1f}; transactions "
        f"(BEGIN ... COMMIT/ROLLBACK, not autocommit) {transactions[0] / turns:.2f}, so about "
        f"{(sum(statements.values()) + 2 * transactions[0]) / turns:.1f} round trips to the "
        "server (a statement, or BEGIN or COMMIT, each one)\n"
    )
    print("| statement | per turn |\n|---|---|")
    for statement, n in statements.most_common(25):
        print(f"| `{statement}` | {n / turns:.2f} |")
    print(f"\nBilling API requests per turn: {sum(requests.values()) / turns:.2f}\n")
    print("| request | per turn |\n|---|---|")
    for request, n in requests.most_common():
        print(f"| `{request}` | {n / turns:.2f} |")
    if profiler is not None:
        print_cprofile(profiler, turns)
        if os.environ.get("BILLTALK_PROFILE_DUMP"):  # the raw stats, for pstats / snakeviz
            profiler.dump_stats(os.environ["BILLTALK_PROFILE_DUMP"])


def voice_cost(notes: int, tmp: Path) -> None:
    """CPU per voice note: the benchmark's note decoded and transcribed ``notes`` times the
    way the engine does it (``VoiceInput``, pocketsphinx, in this thread)."""
    from bot.voice_input import decode
    from tests.channels.telegram.helpers import ogg_note

    note = ogg_note("how much do I owe", tmp)
    heard = decode(note)  # warm: decoders and models loaded
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(notes):
        decode(note)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(
        f"\nVoice note ({heard.duration_s:.2f} s of speech, heard {heard.text!r} by "
        f"{heard.engine}): **{cpu / notes * 1000:.0f} ms CPU** and {wall / notes * 1000:.0f} ms "
        f"wall per note ({notes} notes, load average {os.getloadavg()[0]:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("pg", "sqlite"), default="pg")
    parser.add_argument("--turns", type=int, default=150)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument(
        "--cprofile",
        action="store_true",
        help="also a cProfile of the measured turns, thread-pool work run inline",
    )
    parser.add_argument(
        "--telegram",
        action="store_true",
        help="whole webhook updates (ledger, PTB, sendMessage to a stand-in) instead of "
        "engine turns",
    )
    parser.add_argument(
        "--voice",
        type=int,
        default=0,
        metavar="N",
        help="also the CPU of transcribing the benchmark's voice note, N times",
    )
    parser.add_argument(
        "--texts",
        choices=("varied", "fixed"),
        default="varied",
        help="the benchmark's phrasings drawn per turn (default), or its three fixed texts",
    )
    args = parser.parse_args()
    import importlib.util

    # bench/telegram.py by path: its name would shadow python-telegram-bot's package.
    spec = importlib.util.spec_from_file_location("bench_telegram", ROOT / "bench" / "telegram.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    admin = os.environ.get(
        "BILLTALK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    chats = [8_000_001 + i for i in range(args.chats)]
    with tempfile.TemporaryDirectory() as tmp:
        url = (
            bench.create_database(admin)
            if args.db == "pg"
            else f"sqlite:///{Path(tmp) / 'profile.db'}"
        )
        try:
            bench.prepare(url, 10, chats)
            if args.cprofile:
                run_threads_inline()
            rng = random.Random(7)
            texts = [
                bench.session_text(
                    ("balance", "explain", "pay")[i % 3], rng, args.texts == "varied"
                )
                or ""
                for i in range(args.turns)
            ]
            print(f"Texts: {args.texts}, {len(set(texts))} different in {args.turns} turns\n")
            asyncio.run(profile(url, chats, args.turns, args.cprofile, args.telegram, texts))
            if args.voice:
                voice_cost(args.voice, Path(tmp))
        finally:
            if args.db == "pg":
                bench.drop_database(admin, url)


if __name__ == "__main__":
    main()
