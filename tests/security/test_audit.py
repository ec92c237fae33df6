"""The tamper-evident audit log: hash chain, `billtalk audit verify|export`, concurrency."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from backend.adapters import orm
from backend.service_layer import audit
from backend.service_layer.unit_of_work import UnitOfWork
from tests.security.conftest import LiveApi

REPO = Path(__file__).resolve().parents[2]
BILLTALK = str(REPO / ".venv" / "bin" / "billtalk")


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BILLTALK_DATABASE_URL": url}
    return subprocess.run(
        [BILLTALK, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )


def _activity(live: LiveApi) -> None:
    """Payments (one needing step-up), a refused one, a proof, a link, tokens."""
    c = live.community
    assert live.pay(live.resident1, "a-1", amount="20.00").status_code == 201
    assert live.pay(live.resident1, "a-2", amount="300.00").status_code == 403
    proof = live.verify(c.r1, amount="300.00").json()["proof"]
    assert live.pay(live.resident1, "a-2", amount="300.00", step_up_proof=proof).status_code == 201
    code = live.http.post(
        "/api/v1/link-codes", json={"resident_id": c.r1}, headers=live.h(live.service)
    ).json()["code"]
    r = live.http.post(
        "/api/v1/link-codes/redeem",
        json={"code": code, "channel": "telegram", "external_id": "42"},
        headers=live.h(live.service),
    )
    assert r.status_code == 200, r.text
    r = live.http.post(
        "/api/v1/audit/events",
        json={"kind": "face.enrolled", "actor": "biometrics", "subject": c.r1, "data": {"n": 3}},
        headers=live.h(live.service),
    )
    assert r.status_code == 201, r.text


def test_everything_that_matters_is_chained_and_verifies(live: LiveApi) -> None:
    _activity(live)
    url = live.community.url
    result = _cli(url, "audit", "verify")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["entries"] >= 8
    exported = _cli(url, "audit", "export")
    assert exported.returncode == 0
    entries = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    kinds = {e["kind"] for e in entries}
    assert {
        "token.issued",
        "payment.requested",
        "payment.succeeded",
        "risk.decision",
        "step_up.verified",
        "link.created",
        "face.enrolled",
    } <= kinds
    assert entries[-1]["hash"] == report["head"]
    # secrets never reach the log: no tokens, no proofs, no link codes
    blob = exported.stdout
    assert live.resident1 not in blob and "sup_" not in blob


def _tamper(url: str, sql: str, **params: object) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()


def test_any_altered_entry_is_found(live: LiveApi) -> None:
    _activity(live)
    url = live.community.url
    with live.community.uow.reading() as u:
        n = len(u.session.scalars(select(orm.AuditEntry.seq)).all())
    victim = n // 2
    _tamper(
        url,
        "UPDATE audit_log SET data = REPLACE(data, '300.00', '3.00') WHERE seq = :s",
        s=victim,
    )
    payment = _cli(url, "audit", "verify")
    bad = json.loads(payment.stdout)
    if bad["ok"]:  # that entry had no amount: alter its actor instead
        _tamper(url, "UPDATE audit_log SET actor = 'mallory' WHERE seq = :s", s=victim)
        payment = _cli(url, "audit", "verify")
        bad = json.loads(payment.stdout)
    assert payment.returncode != 0
    assert bad["ok"] is False and bad["first_bad"]["seq"] == victim
    assert bad["first_bad"]["problem"] == "hash_mismatch"


def test_a_rehashed_entry_breaks_the_chain_and_a_deleted_one_leaves_a_gap(
    live: LiveApi,
) -> None:
    _activity(live)
    url, u = live.community.url, live.community.uow
    with u.reading():
        e = u.session.scalars(select(orm.AuditEntry).where(orm.AuditEntry.seq == 3)).one()
        forged = audit.entry_hash(e.prev_hash, e.seq, e.at, e.kind, "mallory", e.subject, e.data)
    _tamper(url, "UPDATE audit_log SET actor = 'mallory', hash = :h WHERE seq = 3", h=forged)
    out = json.loads(_cli(url, "audit", "verify").stdout)
    assert out["first_bad"]["seq"] == 4 and out["first_bad"]["problem"] == "chain_broken"
    _tamper(url, "DELETE FROM audit_log WHERE seq = 2")
    out = json.loads(_cli(url, "audit", "verify").stdout)
    assert out["first_bad"]["problem"] == "gap"


def test_concurrent_appends_keep_one_chain(uow: UnitOfWork, db_url: str) -> None:
    """Many threads append at once (PostgreSQL: advisory lock; SQLite: BEGIN IMMEDIATE)."""
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(10):
                audit.append(uow.engine, "test.event", actor=f"t{i}", subject=str(j))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    report = audit.verify(uow)
    assert report["ok"] and report["entries"] == 80


def test_an_entry_is_chained_at_commit_so_a_row_lock_wait_cannot_deadlock(
    uow: UnitOfWork,
) -> None:
    """Recording takes no lock: the chain's lock is taken at commit, after every other lock.

    Two payments under load deadlocked when the chain's lock was taken where the entry
    was recorded: A recorded, then waited for a lock B held; B then recorded and waited
    for the chain's lock A held. Here B holds a second lock (an advisory lock stands in
    for a row lock), A records and waits for it, then B records and commits.
    """
    if uow.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers with BEGIN IMMEDIATE: no lock to order")
    other_lock = text("SELECT pg_advisory_xact_lock(4242)")
    b_holds, a_recorded = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def a() -> None:
        try:
            b_holds.wait(10)
            with UnitOfWork(uow.engine) as work:
                audit.record(work, "test.a", subject="a")
                a_recorded.set()
                work.session.execute(other_lock)  # waits until B commits
                work.commit()
        except BaseException as exc:
            errors.append(exc)
            a_recorded.set()

    def b() -> None:
        try:
            with UnitOfWork(uow.engine) as work:
                work.session.execute(other_lock)
                b_holds.set()
                a_recorded.wait(10)
                time.sleep(0.5)  # A is now waiting for the lock B holds
                audit.record(work, "test.b", subject="b")
                work.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    report = audit.verify(uow)
    assert report["ok"] and report["entries"] == 2
    with uow.reading():
        kinds = list(uow.session.scalars(select(orm.AuditEntry.kind).order_by(orm.AuditEntry.seq)))
    assert kinds == ["test.b", "test.a"]


def test_a_rolled_back_transaction_writes_no_entry(uow: UnitOfWork) -> None:
    with UnitOfWork(uow.engine) as work:
        audit.record(work, "test.rolled_back")
        work.rollback()
    with UnitOfWork(uow.engine) as work:
        pending = audit.record(work, "test.kept")
        work.commit()
    assert pending.seq == 1
    assert audit.verify(uow)["entries"] == 1


def test_audit_verify_over_the_api_is_for_staff(live: LiveApi) -> None:
    assert live.http.get("/api/v1/audit/verify", headers=live.h(live.resident1)).status_code == 403
    r = live.http.get("/api/v1/audit/verify", headers=live.h(live.staff))
    assert r.status_code == 200 and r.json()["ok"] is True


def test_an_anchored_head_catches_a_deleted_or_rewritten_tail(
    live: LiveApi, tmp_path: Path
) -> None:
    _activity(live)
    url = live.community.url
    anchor_file = tmp_path / "audit-head.json"
    written = _cli(url, "audit", "anchor", "--out", str(anchor_file))
    assert written.returncode == 0, written.stdout + written.stderr
    anchor = json.loads(anchor_file.read_text())
    n = anchor["seq"]
    assert n > 3 and len(anchor["hash"]) == 64
    intact = _cli(url, "audit", "verify", "--head", str(anchor_file))
    assert intact.returncode == 0 and json.loads(intact.stdout)["ok"] is True

    # newer entries after the anchor are fine: the chain still passes through the head
    live.pay(live.resident1, "after-anchor", amount="1.00")
    assert _cli(url, "audit", "verify", "--head", str(anchor_file)).returncode == 0

    # delete the newest entries back to before the anchor: the chain alone still verifies...
    _tamper(url, "DELETE FROM audit_log WHERE seq >= :s", s=n - 1)
    alone = _cli(url, "audit", "verify")
    assert alone.returncode == 0 and json.loads(alone.stdout)["ok"] is True
    # ...but not against its anchored head
    cut = _cli(url, "audit", "verify", "--head", str(anchor_file))
    out = json.loads(cut.stdout)
    assert cut.returncode != 0 and out["ok"] is False
    assert out["first_bad"] == {"seq": n, "problem": "truncated", "entry": None}

    # new entries written over the deleted tail: the entry at the anchored seq differs
    for i in range(3):
        live.pay(live.resident1, f"rewrite-{i}", amount="1.00")
    rewritten = _cli(url, "audit", "verify", "--head", str(anchor_file))
    out = json.loads(rewritten.stdout)
    assert rewritten.returncode != 0 and out["first_bad"]["problem"] == "diverged"
    assert out["first_bad"]["seq"] == n


def test_an_unreadable_anchor_is_an_error_not_a_pass(live: LiveApi, tmp_path: Path) -> None:
    bad = tmp_path / "head.json"
    bad.write_text("not json")
    r = _cli(live.community.url, "audit", "verify", "--head", str(bad))
    assert r.returncode == 2 and json.loads(r.stdout)["ok"] is False
