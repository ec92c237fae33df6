"""The tamper-evident audit log: an append-only, hash-chained table.

Every entry's ``hash`` is SHA-256 over the previous entry's hash and the entry's
own canonical content (``seq``, ``at``, ``kind``, ``actor``, ``subject``,
``data``), so altering, inserting or deleting a stored entry breaks the chain
from that entry on; :func:`verify` (``billtalk audit verify``) finds the first
bad entry. The first entry's previous hash is :data:`GENESIS`.

A chain cannot show that its newest entries were deleted (what is left still
verifies). So the head (``seq`` + ``hash``) is anchored outside the database
(``billtalk audit anchor --out FILE``: a file that a cron job can copy
elsewhere); :func:`verify` given that anchor also fails when the chain is shorter
than the anchored head (``truncated``) or holds another entry at its ``seq``
(``diverged``: the tail was deleted and rewritten).

What is recorded (``kind``): ``payment.requested`` / ``payment.succeeded`` /
``payment.failed`` / ``payment.held`` / ``payment.approved`` /
``payment.declined`` / ``payment.refunded`` / ``payment.reversed``,
``risk.decision``, ``step_up.verified`` / ``step_up.failed`` /
``step_up.proof_used``, ``link.created`` / ``link.unlinked``, ``token.issued``,
and whatever other packages send through :func:`append` or
``POST /api/v1/audit/events`` (staff actions, biometric enrolment and deletion).
Entries never hold secrets or biometric data: ids, kinds, amounts and outcomes.

Concurrency: appending takes a lock for the rest of the transaction
(``pg_advisory_xact_lock`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already
serialises writers), reads the last entry and writes the next one, so two
transactions never chain onto the same predecessor. :func:`record` appends in the
caller's transaction, so the entry commits (or rolls back) with the change it
describes, but it only notes the entry: the entries are chained and written just
before the transaction commits, after every other statement of it. Taking the
chain's lock mid-transaction deadlocked under load: a payment that had recorded
``payment.requested`` held the lock while it waited for a row another payment had
locked, and that payment waited for the lock to record its own entry. Now the
holder of the lock never waits for anything else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session

from backend.adapters import orm
from backend.service_layer.common import utcnow
from backend.service_layer.unit_of_work import UnitOfWork

#: The previous hash of the first entry.
GENESIS = "0" * 64
#: The PostgreSQL advisory lock key that serialises appends ("audi").
_LOCK_KEY = 0x61756469


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def entry_hash(
    prev_hash: str, seq: int, at: str, kind: str, actor: str, subject: str, data: str
) -> str:
    """The hash of one entry: SHA-256 over the previous hash and its canonical content."""
    body = _canonical(
        {"seq": seq, "at": at, "kind": kind, "actor": actor, "subject": subject, "data": data}
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


@dataclass
class Pending:
    """An entry :func:`record` noted; ``entry`` is set when its transaction commits."""

    kind: str
    actor: str
    subject: str
    data: str
    at: str
    entry: orm.AuditEntry | None = None

    @property
    def seq(self) -> int:
        """The entry's place in the chain (known once its transaction has committed)."""
        if self.entry is None:
            raise RuntimeError("the audit entry is written when its transaction commits")
        return self.entry.seq


_PENDING = "billtalk_audit_pending"


def record(
    session: Session | UnitOfWork,
    kind: str,
    *,
    actor: str = "",
    subject: str = "",
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Pending:
    """Note one entry for the caller's open transaction (written when it commits).

    Args:
        session: the transaction (a SQLAlchemy session or a unit of work inside ``with``).
        kind: what happened (``payment.succeeded``, ``staff.login``, ``face.enrolled``...).
        actor: who did it (``resident:r-A0101-1``, ``staff:alice``, ``service``...).
        subject: what it concerns (a payment id, household id, resident id...).
        data: JSON-able details: ids, amounts as strings, outcomes. Never secrets.
        at: when (default: now).
    """
    if isinstance(session, UnitOfWork):
        session = session.session
    pending = Pending(
        kind=kind[:40],
        actor=actor[:80],
        subject=subject[:120],
        data=_canonical(data or {}),
        at=(at or utcnow()).isoformat(),
    )
    session.info.setdefault(_PENDING, []).append(pending)
    return pending


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """Chain and write the transaction's noted entries, its last statements."""
    pending: list[Pending] = session.info.pop(_PENDING, [])
    if not pending:
        return
    _lock(session)
    last = session.execute(
        select(orm.AuditEntry.seq, orm.AuditEntry.hash).order_by(orm.AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    for note in pending:
        note.entry = orm.AuditEntry(
            seq=seq,
            at=note.at,
            kind=note.kind,
            actor=note.actor,
            subject=note.subject,
            data=note.data,
            prev_hash=prev,
            hash=entry_hash(prev, seq, note.at, note.kind, note.actor, note.subject, note.data),
        )
        session.add(note.entry)
        seq, prev = seq + 1, note.entry.hash
    session.flush()


@event.listens_for(Session, "after_transaction_end")
def _forget_pending(session: Session, transaction: Any) -> None:
    """A transaction that ended without committing (rolled back, closed) writes nothing."""
    if transaction.parent is None:  # the session's outermost transaction, not a savepoint
        session.info.pop(_PENDING, None)


def append(
    target: UnitOfWork | Engine,
    kind: str,
    *,
    actor: str = "",
    subject: str = "",
    data: dict[str, Any] | None = None,
) -> int:
    """Append one entry in its own transaction (for other packages); returns its ``seq``."""
    uow = target if isinstance(target, UnitOfWork) else UnitOfWork(target)
    with uow:
        entry = record(uow, kind, actor=actor, subject=subject, data=data)
        uow.commit()
    return entry.seq


def _entries(uow: UnitOfWork, batch: int = 1000) -> Iterator[orm.AuditEntry]:
    after = 0
    while True:
        with uow.reading():
            rows = list(
                uow.session.scalars(
                    select(orm.AuditEntry)
                    .where(orm.AuditEntry.seq > after)
                    .order_by(orm.AuditEntry.seq)
                    .limit(batch)
                )
            )
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def entry_json(e: orm.AuditEntry) -> dict[str, Any]:
    """One entry as JSON (``data`` parsed back when it is valid JSON)."""
    try:
        data: Any = json.loads(e.data)
    except ValueError:
        data = e.data
    return {
        "seq": e.seq,
        "at": e.at,
        "kind": e.kind,
        "actor": e.actor,
        "subject": e.subject,
        "data": data,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


def verify(uow: UnitOfWork, anchor: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check the whole chain, and that it still reaches ``anchor`` when one is given.

    Args:
        uow: The billing database.
        anchor: A head written earlier (``billtalk audit anchor``): ``{"seq", "hash"}``.

    Returns:
        ``{"ok": True, "entries": n, "head": hash}`` when intact, else ``{"ok": False,
        "entries": n checked, "first_bad": {"seq", "problem", "entry"}}``, where
        ``problem`` is ``hash_mismatch`` (the entry was altered), ``chain_broken``
        (its previous hash is not its predecessor's hash: an entry was inserted,
        removed or re-hashed) or ``gap`` (a sequence number is missing). With an
        anchor, an intact chain can still fail: ``truncated`` (it ends before the
        anchored ``seq``: newest entries were deleted) or ``diverged`` (the entry at
        the anchored ``seq`` has another hash); the result then has ``"anchor"``.
    """
    prev, expected_seq, count = GENESIS, 1, 0
    anchor_seq = int(anchor["seq"]) if anchor is not None else 0
    anchored_hash = GENESIS if anchor_seq == 0 else None
    for e in _entries(uow):
        problem = None
        if e.seq != expected_seq:
            problem = "gap"
        elif e.prev_hash != prev:
            problem = "chain_broken"
        elif e.hash != entry_hash(e.prev_hash, e.seq, e.at, e.kind, e.actor, e.subject, e.data):
            problem = "hash_mismatch"
        if problem is not None:
            return {
                "ok": False,
                "entries": count,
                "first_bad": {"seq": e.seq, "problem": problem, "entry": entry_json(e)},
            }
        prev, expected_seq, count = e.hash, e.seq + 1, count + 1
        if e.seq == anchor_seq:
            anchored_hash = e.hash
    result: dict[str, Any] = {"ok": True, "entries": count, "head": prev}
    if anchor is None:
        return result
    result["anchor"] = {"seq": anchor_seq, "hash": anchor["hash"]}
    if anchored_hash is None:
        result["ok"] = False
        result["first_bad"] = {"seq": anchor_seq, "problem": "truncated", "entry": None}
    elif anchored_hash != anchor["hash"]:
        result["ok"] = False
        result["first_bad"] = {"seq": anchor_seq, "problem": "diverged", "entry": None}
    return result


def export(uow: UnitOfWork) -> Iterator[dict[str, Any]]:
    """Every entry, oldest first, as JSON-ready dicts (``billtalk audit export``)."""
    for e in _entries(uow):
        yield entry_json(e)
