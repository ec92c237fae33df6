"""``billtalk demo seed`` exactly as CONTRACTS.md describes, and ``billtalk serve``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from datetime import date
from pathlib import Path

import httpx
import pytest

from backend.demo import seed
from backend.service_layer import services
from backend.service_layer.unit_of_work import UnitOfWork
from billtalk.db import make_engine

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin" / "billtalk"


def _cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BILLTALK_DATABASE_URL": url}
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, env=env, timeout=600, cwd=REPO
    )


def test_seed_command_prints_the_contract_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    args = (
        "demo",
        "seed",
        "--households",
        "6",
        "--seed",
        "3",
        "--months",
        "4",
        "--today",
        "2026-06-10",
    )
    first = _cli(*args, url=url)
    assert first.returncode == 0, first.stderr[-2000:]
    data = json.loads(first.stdout)  # exactly one JSON object on stdout
    assert first.stdout.count("\n") == 1
    assert "seeding" in first.stderr  # the progress bar goes to stderr
    assert len(data["households"]) == 6
    for h in data["households"]:
        assert set(h) >= {"household_id", "unit", "resident_ids", "link_code"}
        assert h["resident_ids"] and h["link_code"].isdigit()
    assert {h["unit"][0] for h in data["households"]} == {"A", "B"}  # two buildings
    assert isinstance(data["service_token"], str)
    # idempotent: the same arguments print the same JSON and write nothing new
    again = _cli(*args, url=url)
    assert again.returncode == 0
    second = json.loads(again.stdout)
    assert second.pop("already_seeded") is True and data.pop("already_seeded") is False
    assert second == data
    # different arguments on the same database: refused clearly
    other = _cli("demo", "seed", "--households", "7", url=url)
    assert other.returncode == 2 and "--reset" in other.stderr
    # the other billing commands work on the seeded database
    engine = make_engine(url)
    with UnitOfWork(engine) as uow:
        from sqlalchemy import select

        from backend.adapters.orm import Payment

        pid = uow.session.scalars(
            select(Payment.payment_id).where(Payment.receipt_no.is_not(None))
        ).first()
    engine.dispose()
    assert pid is not None
    pdf = tmp_path / "receipt.pdf"
    rendered = _cli("receipts", "render", pid, "--pdf", str(pdf), url=url)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    assert pdf.read_bytes().startswith(b"%PDF-")
    regen = _cli("bills", "generate", "2026-05", url=url)
    assert regen.returncode == 0 and json.loads(regen.stdout)["created"] == 0
    assert json.loads(_cli("payments", "reconcile", url=url).stdout)["checked"] == 0
    check = _cli("ledger", "check", url=url)
    assert check.returncode == 0 and json.loads(check.stdout)["consistent"] is True


def test_seed_is_deterministic_and_realistic(tmp_path: Path) -> None:
    kwargs = {
        "households": 4,
        "seed": 11,
        "months": 12,
        "today": date(2026, 9, 5),
    }
    a = seed(f"sqlite:///{tmp_path / 'a.db'}", **kwargs)  # type: ignore[arg-type]
    b = seed(f"sqlite:///{tmp_path / 'b.db'}", **kwargs)  # type: ignore[arg-type]
    assert a == b
    balances = []
    for name in ("a.db", "b.db"):
        engine = make_engine(f"sqlite:///{tmp_path / name}")
        uow = UnitOfWork(engine)
        balances.append(
            [services.balance(uow, h["household_id"]).model_dump() for h in a["households"]]
        )
        assert services.trial_balance(uow).balanced
        assert services.ledger_check(uow)["consistent"]
        statuses = {
            s
            for h in a["households"]
            for s in (b.status for b in services.list_bills(uow, h["household_id"], limit=60))
        }
        assert {"paid", "overdue"} <= statuses
        elec = services.usage_series(
            uow,
            "hh-A0101",
            "electricity",
            date(2025, 1, 1),
            date(2026, 12, 1),
        ).points
        by_month = {p.period_start.month: p.usage for p in elec}
        assert by_month[8] > by_month[4]  # summer air conditioning
        gas = services.usage_series(
            uow,
            "hh-A0101",
            "gas",
            date(2025, 1, 1),
            date(2026, 12, 1),
        ).points
        by_month = {p.period_start.month: p.usage for p in gas}
        assert by_month[1] > by_month[7]  # winter heating
        overdue = [
            len(
                services.list_bills(
                    uow, h["household_id"], status="overdue", limit=60, today=kwargs["today"]
                )
            )
            for h in a["households"]
        ]
        assert 0 in overdue and max(overdue) >= 2  # some pay on time, some are behind
        engine.dispose()
    assert balances[0] == balances[1]
    assert a["service_token"] == b["service_token"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_migrates_and_answers_with_the_seed_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    seeded = _cli("demo", "seed", "--households", "2", "--months", "2", url=url)
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    data = json.loads(seeded.stdout)
    port = _free_port()
    env = {**os.environ, "BILLTALK_DATABASE_URL": url}
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        h = {"Authorization": f"Bearer {data['service_token']}"}
        hid = data["households"][0]["household_id"]
        bal = httpx.get(f"{base}/api/v1/households/{hid}/balance", headers=h, timeout=10)
        assert bal.status_code == 200 and set(bal.json()) >= {
            "household_id",
            "currency",
            "total_due",
            "by_utility",
        }
        pay = httpx.post(
            f"{base}/api/v1/payments",
            headers={**h, "Idempotency-Key": "serve-1"},
            json={"household_id": hid, "utility": None, "amount": "12.34", "method": "card"},
            timeout=10,
        )
        assert pay.status_code == 201 and pay.json()["status"] == "succeeded"
        tb = httpx.get(f"{base}/api/v1/ledger/trial-balance", headers=h, timeout=10).json()
        assert tb["balanced"] is True
        assert httpx.get(f"{base}/api/v1/openapi.json", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
