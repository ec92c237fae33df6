"""Arrears reminders (the notice outbox) and late fees."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import select

from backend import schemas
from backend.adapters import orm
from backend.domain import ledger
from backend.domain import reminders as reminder_rules
from backend.domain.money import ZERO
from backend.service_layer.common import (
    aware,
    get_household,
    post,
    refresh_status,
    utcnow,
)
from backend.service_layer.errors import (
    NotFound,
)
from backend.service_layer.unit_of_work import UnitOfWork
from backend.settings import BillingSettings, get_billing_settings
from billtalk.settings import get_settings


def run_reminders(
    uow: UnitOfWork, *, today: date | None = None, settings: BillingSettings | None = None
) -> dict[str, int]:
    """Refresh bill statuses, charge late fees (if enabled) and queue due notices."""
    today = today or utcnow().date()
    settings = settings or get_billing_settings()
    policy = settings.late_fee_policy()
    currency = get_settings().currency
    counts = {"notices": 0, "late_fees": 0, "overdue": 0}
    with uow:
        rows = uow.session.execute(
            select(orm.Bill.bill_id, orm.Bill.household_id).where(
                orm.Bill.status != "paid", orm.Bill.due_date <= today + timedelta(days=3)
            )
        ).all()
    by_household: dict[str, list[str]] = defaultdict(list)
    for bid, hid in rows:
        by_household[hid].append(bid)
    now = utcnow()
    for hid, bids in by_household.items():
        with uow:
            get_household(uow, hid, lock=True)
            for bid in bids:
                bill = uow.repo.bill(bid)
                assert bill is not None
                if bill.total <= bill.amount_paid:
                    continue
                fee_line = next((ln for ln in bill.lines if ln.kind == "late_fee"), None)
                existing_fee = fee_line.amount if fee_line else ZERO
                target = policy.fee(
                    bill.total - existing_fee - bill.amount_paid, bill.due_date, today
                )
                if target > existing_fee:
                    delta = target - existing_fee
                    if fee_line is None:
                        fee_line = orm.BillLine(
                            position=len(bill.lines),
                            kind="late_fee",
                            description="Late fee",
                            amount=ZERO,
                        )
                        bill.lines.append(fee_line)
                    fee_line.amount = target
                    fee_line.description = f"Late fee ({policy.description})"[:200]
                    bill.total += delta
                    post(
                        uow,
                        ledger.bill_entry(
                            f"{bid}/late-{today:%Y%m%d}", hid, bill.utility, ZERO, delta
                        ),
                        now,
                    )
                    counts["late_fees"] += 1
                before = bill.status
                refresh_status(bill, today)
                counts["overdue"] += before != "overdue" and bill.status == "overdue"
                sent = set(
                    uow.session.scalars(
                        select(orm.Notice.kind).where(orm.Notice.bill_id == bid)
                    ).all()
                )
                kind = reminder_rules.notice_due(bill.due_date, today, sent)
                if kind is None:
                    continue
                due = bill.total - bill.amount_paid
                uow.session.add(
                    orm.Notice(
                        household_id=hid,
                        bill_id=bid,
                        kind=kind,
                        message=reminder_rules.notice_text(
                            kind, bill.utility, due, bill.due_date, currency
                        ),
                        amount_due=due,
                        due_date=bill.due_date,
                        status="pending",
                        created_at=now,
                    )
                )
                counts["notices"] += 1
            uow.commit()
    return counts


def _notice_out(n: orm.Notice, residents: list[str]) -> schemas.Notice:
    return schemas.Notice(
        notice_id=n.notice_id,
        household_id=n.household_id,
        resident_ids=residents,
        bill_id=n.bill_id,
        payment_id=n.payment_id,
        kind=n.kind,
        message=n.message,
        amount_due=n.amount_due,
        due_date=n.due_date,
        status=n.status,  # type: ignore[arg-type]
        created_at=aware(n.created_at),
        delivered_at=aware(n.delivered_at) if n.delivered_at else None,
        channel=n.channel,
    )


def pending_notices(
    uow: UnitOfWork, *, limit: int = 50, household_id: str | None = None
) -> list[schemas.Notice]:
    """Notices waiting for delivery, oldest first."""
    with uow:
        q = select(orm.Notice).where(orm.Notice.status == "pending")
        if household_id is not None:
            q = q.where(orm.Notice.household_id == household_id)
        rows = uow.session.scalars(q.order_by(orm.Notice.notice_id).limit(limit)).all()
        out = []
        for n in rows:
            residents = list(
                uow.session.scalars(
                    select(orm.Resident.resident_id).where(
                        orm.Resident.household_id == n.household_id
                    )
                )
            )
            out.append(_notice_out(n, residents))
        return out


def notice_household(uow: UnitOfWork, notice_id: int) -> str:
    """The household a notice belongs to (for access checks)."""
    with uow:
        n = uow.session.get(orm.Notice, notice_id)
        if n is None:
            raise NotFound("unknown_notice", f"no notice {notice_id}")
        return n.household_id


def mark_notice_delivered(
    uow: UnitOfWork, notice_id: int, channel: str
) -> tuple[schemas.Notice, bool]:
    """Mark a notice delivered exactly once.

    Returns:
        ``(notice, newly_delivered)``; a second call returns ``False`` and changes nothing.
    """
    with uow:
        n = uow.session.scalars(
            select(orm.Notice).where(orm.Notice.notice_id == notice_id).with_for_update()
        ).first()
        if n is None:
            raise NotFound("unknown_notice", f"no notice {notice_id}")
        fresh = n.status == "pending"
        if fresh:
            n.status = "delivered"
            n.delivered_at = utcnow()
            n.channel = channel
        out = _notice_out(n, [])
        uow.commit()
        return out, fresh
