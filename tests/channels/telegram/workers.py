"""Webhook worker processes for the multi-worker tests and the benchmark.

Each worker is ``billtalk telegram run --mode webhook --port P`` (a separate
Python process, as in production), pointed at the stand-in and at one database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.channels.telegram.botapi_standin import TOKEN, BotApiStandIn, free_port

REPO = Path(__file__).resolve().parents[3]
SECRET = "stand-in-webhook-secret"


def worker_env(standin: BotApiStandIn, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker: the stand-in's URLs, the token, the database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLTALK_TELEGRAM_")}
    env.update(
        {
            "BILLTALK_DATABASE_URL": database_url,
            "BILLTALK_TELEGRAM_TOKEN": TOKEN,
            "BILLTALK_TELEGRAM_API_URL": standin.api_url,
            "BILLTALK_TELEGRAM_FILE_URL": standin.file_url,
            "BILLTALK_TELEGRAM_WEBHOOK_SECRET": SECRET,
            "BILLTALK_TELEGRAM_MAX_SENDS_PER_S": "10000",
            "BILLTALK_TELEGRAM_OUTBOX_POLL_S": "0.5",
            # the stand-in records a getUpdates when it returns: a short long-poll shows the
            # bot polling within a second instead of the default 20 s
            "BILLTALK_TELEGRAM_POLL_TIMEOUT_S": "1",
            "BILLTALK_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    return env


@contextmanager
def webhook_workers(
    standin: BotApiStandIn,
    database_url: str,
    count: int,
    log_dir: Path,
    timeout_s: float = 180,
    processes: list[subprocess.Popen[bytes]] | None = None,
    **extra_env: str,
) -> Iterator[list[str]]:
    """Start ``count`` webhook workers; yields their webhook URLs; stops them after.

    ``extra_env`` is added to each worker's environment (:func:`worker_env`); ``processes``,
    when given, receives each worker's process (in the order of the URLs).
    """
    command = [sys.executable, "-m", "app", "telegram", "run", "--mode", "webhook", "--port"]
    with serving_processes(
        command,
        worker_env(standin, database_url, **extra_env),
        count,
        log_dir,
        "worker",
        timeout_s,
        processes,
    ) as urls:
        yield urls


@contextmanager
def serving_processes(
    command: list[str],
    env: dict[str, str],
    count: int,
    log_dir: Path,
    name: str,
    timeout_s: float,
    processes: list[subprocess.Popen[bytes]] | None = None,
) -> Iterator[list[str]]:
    """Start ``count`` processes of ``command`` + a free port each, wait until each answers
    ``/healthz``, and yield their webhook URLs; stop them (SIGTERM, then kill) after.

    Each process logs to ``log_dir/<name>-<i>.log``. ``processes`` (when given) is the list
    the processes are kept in, for a caller that kills one.
    """
    procs: list[subprocess.Popen[bytes]] = [] if processes is None else processes
    urls: list[str] = []
    try:
        for i in range(count):
            port = free_port()
            log = (log_dir / f"{name}-{i}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [*command, str(port)],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            )
            urls.append(f"http://127.0.0.1:{port}/telegram/webhook")
        deadline = time.monotonic() + timeout_s
        for proc, url in zip(procs, urls, strict=True):
            health = url.replace("/telegram/webhook", "/healthz")
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {log_dir}")
                try:
                    if httpx.get(health, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} at {url} did not start; see {log_dir}")
                time.sleep(0.2)
        yield urls
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def prepare_database(url: str, households: int = 6) -> dict[str, object]:
    """Seed the demo community and migrate every package's tables at ``url``."""
    from datetime import date

    from backend.demo import seed
    from bot.store import ensure_schema

    result = seed(url, households=households, seed=7, months=3, today=date(2026, 11, 20))
    ensure_schema(url)
    return dict(result)
