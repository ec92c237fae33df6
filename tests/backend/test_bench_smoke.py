"""Smoke tests of the backend benchmarks on a tiny community (SQLite).

They check that the bulk seeder writes a consistent database (balanced ledger,
bill totals equal to their lines, the service layer reads it) and that the
benchmark command line runs end to end. (That the monthly bill run writes what
the per-household path writes is ``tests/backend/test_bill_run.py``.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from backend.adapters import orm  # noqa: E402
from backend.service_layer import services  # noqa: E402
from backend.service_layer.unit_of_work import UnitOfWork  # noqa: E402
from bench.backend_seed import household_id, seed  # noqa: E402
from billtalk.db import make_engine  # noqa: E402

TODAY = date(2026, 11, 22)
N = 24


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "seeded.db"
    plan = seed(f"sqlite:///{path}", households=N, months=13, today=TODAY, chunk=10, progress=False)
    assert plan.history[-1] == date(2026, 10, 1) and plan.next_period == date(2026, 11, 1)
    return path


def copy_db(src: Path, dst: Path) -> str:
    shutil.copy(src, dst)
    return f"sqlite:///{dst}"


def test_seeded_database_is_consistent(seeded: Path) -> None:
    engine = make_engine(f"sqlite:///{seeded}")
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(orm.Household)) == N
        assert conn.scalar(select(func.count()).select_from(orm.Bill)) == N * 13 * 4
        debits = conn.scalar(select(func.sum(orm.JournalLine.debit)))
        credits = conn.scalar(select(func.sum(orm.JournalLine.credit)))
        line_sums = dict(
            conn.execute(
                select(orm.BillLine.bill_id, func.sum(orm.BillLine.amount)).group_by(
                    orm.BillLine.bill_id
                )
            ).all()
        )
        totals = dict(conn.execute(select(orm.Bill.bill_id, orm.Bill.total)).all())
    assert debits == credits and debits > 0
    assert line_sums == totals
    trial = services.trial_balance(UnitOfWork(engine))
    assert trial.balanced
    balance = services.balance(UnitOfWork(engine), household_id(0), today=TODAY)
    assert balance.total_due == sum(balance.by_utility.values(), Decimal("0.00"))
    engine.dispose()


def test_bench_command_line_runs(seeded: Path, tmp_path: Path) -> None:
    url = copy_db(seeded, tmp_path / "cli.db")
    record = tmp_path / "results.jsonl"

    def run(*args: str) -> dict[str, object]:
        out = subprocess.run(
            [
                sys.executable,
                str(REPO / "bench" / "backend.py"),
                "--record",
                str(record),
                *args,
                "--url",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            timeout=300,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    balance = run("balance", "--n", "10", "--repeats", "1", "--warmup", "2")
    for layer in ("raw", "service", "api"):
        assert balance[layer]["p95_ms"] > 0  # type: ignore[index]
    payments = run(
        "payments", "--clients", "1", "--seconds", "1", "--warmup", "0", "--repeats", "1"
    )
    run_stats = payments["results"][0]["runs"][0]  # type: ignore[index]
    assert run_stats["statuses"].get("succeeded", 0) > 0 and not run_stats["errors"]
    generated = run("generate", "--repeats", "2", "--chunk", "5")
    assert [r["created"] for r in generated["runs"]] == [N * 4, N * 4]  # type: ignore[index]
    per_household = run("generate-household", "--households", "3", "--repeats", "1")
    assert per_household["runs"][0]["households"] == 3  # type: ignore[index]
    assert len(record.read_text().splitlines()) == 4
