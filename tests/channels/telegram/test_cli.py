"""``billtalk telegram run`` as the contract runs it: a separate process against the stand-in."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.channels.telegram.botapi_standin import TOKEN, BotApiStandIn
from tests.channels.telegram.workers import REPO, worker_env


def test_without_a_token_it_says_how_to_get_one() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLTALK_TELEGRAM_")}
    env["BILLTALK_TELEGRAM_TOKEN"] = ""
    done = subprocess.run(
        [sys.executable, "-m", "app", "telegram", "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "BILLTALK_TELEGRAM_TOKEN" in done.stderr and "BotFather" in done.stderr


def test_polling_calls_getme_deletewebhook_then_getupdates_and_answers(
    seeded: Any, tmp_path: Path
) -> None:
    db = tmp_path / "billtalk.db"
    shutil.copyfile(seeded.path, db)
    code = seeded.roles["payer"]["link_code"]
    with BotApiStandIn() as standin:
        env = worker_env(standin, f"sqlite:///{db}", BILLTALK_LOG_LEVEL="INFO")
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "telegram", "run", "--mode", "polling"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            standin.wait_for(lambda: standin.calls_of("getUpdates"), timeout=180, what="getUpdates")
            standin.text(9_000_001, f"/start {code}")
            standin.wait_for(lambda: standin.texts(9_000_001), timeout=60, what="link reply")
            standin.text(9_000_001, "how much do I owe?")
            standin.wait_for(
                lambda: len(standin.texts(9_000_001)) == 2, timeout=60, what="balance reply"
            )
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    methods = [c.method for c in standin.calls]
    assert methods.index("getMe") < methods.index("deleteWebhook") < methods.index("getUpdates")
    assert "linked" in standin.texts(9_000_001)[0]
    balance = standin.texts(9_000_001)[1]
    assert "in total" in balance and any(ch.isdigit() for ch in balance)
    assert TOKEN not in out + err and TOKEN.split(":")[1] not in out + err
    assert "<token>" in err  # httpx logged the request URLs, masked


def test_the_product_app_runs_without_a_token(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from app.web import create_product_app
    from bot.channels.telegram.settings import get_telegram_settings

    assert not get_telegram_settings().token
    app = create_product_app(f"sqlite:///{tmp_path / 'billtalk.db'}", migrate=True)
    assert "/telegram/webhook" not in {getattr(r, "path", "") for r in app.routes}
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.post("/telegram/webhook", json={"update_id": 1}).status_code in (404, 405)
