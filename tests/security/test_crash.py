"""A real ``billtalk serve`` killed with SIGKILL at each step of a payment.

For each step (the payment row committed; the gateway charged but its answer not
recorded; the settlement written but not committed), on SQLite and PostgreSQL:
the server dies mid-request, is restarted, ``billtalk payments reconcile`` runs,
and then the payment happened exactly once (one row, one ledger entry, one
receipt, one notice to the resident), a replay of the request returns it without
charging again, and the ledger balances.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from backend.adapters import orm
from backend.service_layer.faults import POINTS
from tests.conftest import POSTGRES_ADMIN_URL
from tests.security.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
BILLTALK = str(REPO / ".venv" / "bin" / "billtalk")


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of this test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crash.db'}"
        return
    request.getfixturevalue("postgres_url")  # skips (or fails in CI) without PostgreSQL
    name = f"billtalk_crash_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _env(url: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BILLTALK_FAULT_POINT"}
    env.update(
        BILLTALK_DATABASE_URL=url,
        BILLTALK_DATA_DIR=str(tmp / "var"),
        BILLTALK_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


class Server:
    """``billtalk serve`` as a child process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [BILLTALK, "serve", "--port", str(self.port)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("serve did not become healthy")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.mark.parametrize("point", POINTS)
def test_a_payment_survives_sigkill_at_each_step(
    point: str, fresh_url: str, tmp_path: Path
) -> None:
    seed = subprocess.run(
        [BILLTALK, "demo", "seed", "--households", "3", "--months", "2", "--today", "2026-11-20"],
        env=_env(fresh_url, tmp_path),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seed.returncode == 0, seed.stderr[-2000:]
    demo = json.loads(seed.stdout)
    token, household = demo["service_token"], demo["households"][0]["household_id"]
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"crash-{point}"}
    body = {"household_id": household, "amount": "10.00", "method": "card"}

    server = Server(_env(fresh_url, tmp_path, BILLTALK_FAULT_POINT=point))
    try:
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"{server.url}/api/v1/payments", json=body, headers=headers, timeout=60)
        assert server.proc.wait(30) == -signal.SIGKILL
    finally:
        server.stop()

    server = Server(_env(fresh_url, tmp_path))
    try:
        reconcile = subprocess.run(
            [BILLTALK, "payments", "reconcile"],
            env=_env(fresh_url, tmp_path),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert reconcile.returncode == 0, reconcile.stderr[-2000:]
        counts = json.loads(reconcile.stdout)
        assert counts["checked"] == 1 and counts["succeeded"] == 1
        replay = httpx.post(f"{server.url}/api/v1/payments", json=body, headers=headers, timeout=60)
        assert replay.status_code == 201, replay.text
        paid = replay.json()
        assert paid["status"] == "succeeded" and paid["receipt_no"]
        assert replay.headers.get("Idempotent-Replayed") == "true"
        tb = httpx.get(
            f"{server.url}/api/v1/ledger/trial-balance",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert tb["balanced"] is True
        again = subprocess.run(
            [BILLTALK, "payments", "reconcile"],
            env=_env(fresh_url, tmp_path),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert json.loads(again.stdout)["checked"] == 0
    finally:
        server.stop()
    engine = create_engine(fresh_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(orm.Payment.payment_id, orm.Payment.status).where(
                    orm.Payment.idempotency_key == f"crash-{point}"
                )
            ).all()
            assert len(rows) == 1 and rows[0].status == "succeeded"
            pid = rows[0].payment_id
            entries = conn.scalar(
                select(func.count())
                .select_from(orm.JournalEntry)
                .where(orm.JournalEntry.reference == pid)
            )
            notices = conn.scalar(
                select(func.count()).select_from(orm.Notice).where(orm.Notice.payment_id == pid)
            )
            assert entries == 1 and notices == 1  # booked once; the resident told once
    finally:
        engine.dispose()
    verify = subprocess.run(
        [BILLTALK, "audit", "verify"],
        env=_env(fresh_url, tmp_path),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout
