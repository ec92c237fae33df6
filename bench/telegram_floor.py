"""The floor of a Telegram update on this machine: PTB and the webhook alone, no engine, no DB.

What every webhook update costs at least, whatever billtalk does with it: the
webhook route (uvicorn, Starlette/FastAPI, the secret check and the JSON body,
exactly the product's :class:`~bot.channels.telegram.webhook.WebhookService.handle`),
PTB parsing the update and dispatching it through an ``Application`` built by the
product's :func:`~bot.channels.telegram.app.build_application` (``LenientBot``,
``HTTPXRequest``, ``AIORateLimiter``, the per-chat ordered update processor), and one
``sendMessage`` to the Bot API stand-in. The only handler is a bench-only echo (it
lives in this file, never in the product): no ledger, no engine, no database.

The same simulated residents as ``bench/telegram.py`` (its ``Simulation``, text
turns, closed loop, no think time) drive 1 or 2 such worker processes through the
stand-in; CPU per update is read from ``/proc`` by part (the workers; this process:
the stand-in and the residents; the rest of the machine).

Run (under the benchmark lock)::

    flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/telegram_floor.py \
        [--seconds 30] [--residents 200] [--workers 1,2]

Writes ``bench/results/telegram_floor.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/ itself off the path: bench/telegram.py would shadow python-telegram-bot's package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BILLTALK_SECRET_KEY", "bench-secret-key-for-the-telegram-benchmark")


def _bench() -> Any:
    """bench/telegram.py by path (its name would shadow python-telegram-bot's package)."""
    spec = importlib.util.spec_from_file_location("bench_telegram", ROOT / "bench" / "telegram.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the worker process: the product's webhook route and PTB, with an echo handler --------


class EchoAdapter:
    """Bench-only stand-in for ``TelegramAdapter``: answers every text with one sendMessage."""

    def __init__(self) -> None:
        from bot.channels.telegram.adapter import ChatSequencer

        self.sequencer = ChatSequencer()

    def attach(self, application: Any) -> None:
        """One handler: echo the text (one ``sendMessage``)."""
        from telegram.ext import MessageHandler, filters

        async def echo(update: Any, _context: Any) -> None:
            message = update.effective_message
            await update.get_bot().send_message(
                chat_id=message.chat_id, text=f"echo: {message.text}"
            )

        application.add_handler(MessageHandler(filters.TEXT, echo))


class EchoRuntime:
    """What ``TelegramRuntime.process`` does for a webhook update, minus the ledger."""

    def __init__(self, settings: Any) -> None:
        from bot.channels.telegram.app import build_application

        self.adapter = EchoAdapter()
        self.application = build_application(
            self.adapter,
            settings,  # type: ignore[arg-type]
            polling=False,
        )

    async def process(self, data: dict[str, Any]) -> None:
        """Parse the update and run it through PTB in its chat's order."""
        from bot.channels.telegram.adapter import chat_key
        from bot.channels.telegram.app import parse_update

        update = parse_update(data, self.application.bot)
        async with self.adapter.sequencer.hold(chat_key(update)):
            await self.application.process_update(update)


def serve(port: int) -> None:
    """Run one echo worker on ``port`` (the product's route handler and uvicorn settings)."""
    import contextlib

    import uvicorn
    from fastapi import FastAPI

    from bot.channels.telegram.settings import TelegramSettings
    from bot.channels.telegram.webhook import WebhookService

    settings = TelegramSettings()
    runtime = EchoRuntime(settings)
    service = WebhookService(settings)
    service.runtime = runtime

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        await runtime.application.initialize()
        await runtime.application.start()
        try:
            yield
        finally:
            await runtime.application.stop()
            await runtime.application.shutdown()

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_api_route(
        settings.webhook_path, service.handle, methods=["POST"], include_in_schema=False
    )
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


# -- the driver ------------------------------------------------------------------------------


@contextmanager
def echo_workers(standin: Any, count: int, log_dir: Path) -> Iterator[list[str]]:
    """``count`` echo worker processes behind ``standin``; yields their webhook URLs."""
    from tests.channels.telegram.workers import serving_processes, worker_env

    command = [sys.executable, str(Path(__file__).resolve()), "--serve"]
    with serving_processes(
        command, worker_env(standin, "sqlite://"), count, log_dir, "echo", 120
    ) as urls:
        yield urls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated")
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="residents' pause between messages (s); 0 saturates",
    )
    parser.add_argument("--out", default="telegram_floor", help="results file stem")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    bench = _bench()
    from tests.channels.telegram.botapi_standin import BotApiStandIn
    from tests.channels.telegram.workers import SECRET

    chats = [8_000_001 + i for i in range(args.residents)]
    load_before = list(os.getloadavg())
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(c) for c in args.workers.split(",")):
            standin = BotApiStandIn(
                webhook_timeout_s=60,
                webhook_connections=100,
                first_update_id=bench.next_update_ids(),
            )
            with standin, echo_workers(standin, count, Path(tmp)) as urls:
                standin.webhook = {"url": urls[0], "secret_token": SECRET}
                standin.deliver_to = urls
                label = f"echo{count}"
                result = asyncio.run(
                    bench.measure(standin, chats, b"", args.seconds, label, args.think, False)
                )
                runs[label] = result
                print(f"{label}: {json.dumps(result)}", file=sys.stderr)
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": list(os.getloadavg()),
        },
        "what": "webhook route + PTB + one sendMessage per text update; bench-only echo "
        "handler, no ledger, engine or database",
        "residents": args.residents,
        "seconds": args.seconds,
        "think_s": args.think,
        "runs": runs,
    }
    out = ROOT / "bench" / "results" / f"{args.out}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        "| workers | updates/s | p50 ms | p95 ms | lost | duplicates "
        "| CPU ms/update: workers, bench, postgres, other | load |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, r in runs.items():
        cpu = r["cpu_ms_per_update"]
        print(
            f"| {label.removeprefix('echo')} | {r['updates_per_s']} | {r['text_p50_ms']} | "
            f"{r['text_p95_ms']} | {r['lost']} | {r['duplicates']} | "
            f"{cpu['bot']}, {cpu['bench']}, {cpu['postgres']}, {cpu['other']} | "
            f"{r['load_average_1m'][0]}-{r['load_average_1m'][1]} |"
        )


if __name__ == "__main__":
    main()
