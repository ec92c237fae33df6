"""The repository: how the service layer finds and locks billing objects.

Locking rule (one place): every use case that changes a household's bills,
payments or credits first calls :meth:`Repository.lock_household`. On
PostgreSQL that is ``SELECT ... FOR UPDATE`` on the household row, so two
payments, or a payment and a bill regeneration, of the same household run one
after the other; on SQLite every write transaction already starts with
``BEGIN IMMEDIATE`` (see :func:`billtalk.db.make_engine`), which serialises
writers database-wide.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, type_coerce, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, selectinload

from backend.adapters import orm


class Repository:
    """Queries over one SQLAlchemy session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- community --------------------------------------------------------------

    def household(self, household_id: str) -> orm.Household | None:
        """The household, or ``None``."""
        return self.session.get(orm.Household, household_id)

    def lock_household(self, household_id: str) -> orm.Household | None:
        """Load the household with a row lock (``FOR UPDATE`` on PostgreSQL)."""
        return self.session.scalars(
            select(orm.Household)
            .where(orm.Household.household_id == household_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    def resident(self, resident_id: str) -> orm.Resident | None:
        """The resident, or ``None``."""
        return self.session.get(orm.Resident, resident_id)

    def meter(self, household_id: str, utility: str) -> orm.Meter | None:
        """The household's meter of ``utility``, or ``None``."""
        return self.session.scalars(
            select(orm.Meter).where(
                orm.Meter.household_id == household_id, orm.Meter.utility == utility
            )
        ).first()

    # -- readings ---------------------------------------------------------------

    def reading_at_or_before(
        self, meter_id: str, when: datetime, *, accepted_only: bool = True
    ) -> orm.MeterReading | None:
        """The latest reading taken at or before ``when``."""
        q = select(orm.MeterReading).where(
            orm.MeterReading.meter_id == meter_id, orm.MeterReading.taken_at <= when
        )
        if accepted_only:
            q = q.where(orm.MeterReading.status == "accepted")
        return self.session.scalars(q.order_by(orm.MeterReading.taken_at.desc()).limit(1)).first()

    def reading_after(self, meter_id: str, when: datetime) -> orm.MeterReading | None:
        """The earliest accepted reading taken after ``when``."""
        return self.session.scalars(
            select(orm.MeterReading)
            .where(
                orm.MeterReading.meter_id == meter_id,
                orm.MeterReading.taken_at > when,
                orm.MeterReading.status == "accepted",
            )
            .order_by(orm.MeterReading.taken_at)
            .limit(1)
        ).first()

    # -- tariffs and bills ------------------------------------------------------

    def tariffs(self) -> Sequence[orm.Tariff]:
        """Every tariff version."""
        return self.session.scalars(select(orm.Tariff).order_by(orm.Tariff.effective_from)).all()

    def bill(self, bill_id: str) -> orm.Bill | None:
        """The bill with its lines, or ``None``."""
        return self.session.scalars(
            select(orm.Bill)
            .where(orm.Bill.bill_id == bill_id)
            .options(selectinload(orm.Bill.lines))
        ).first()

    def bill_for(self, household_id: str, utility: str, period_start: date) -> orm.Bill | None:
        """The household's bill of ``utility`` for the period starting ``period_start``."""
        return self.session.scalars(
            select(orm.Bill)
            .where(
                orm.Bill.household_id == household_id,
                orm.Bill.utility == utility,
                orm.Bill.period_start == period_start,
            )
            .options(selectinload(orm.Bill.lines))
        ).first()

    def bill_detail_rows(self, bill_ids: Sequence[str]) -> Sequence[Any]:
        """Bills' columns and their tariffs' ``tariff_name``, as plain rows (no ORM objects),
        in one query (an unknown id: no row)."""
        b, t = orm.Bill, orm.Tariff
        return self.session.execute(
            select(*b.__table__.columns, t.name.label("tariff_name"))
            .outerjoin(t, t.tariff_id == b.tariff_id)
            .where(b.bill_id.in_(list(bill_ids)))
        ).all()

    def bill_line_rows_of(self, bill_ids: Sequence[str]) -> dict[str, list[Any]]:
        """The lines of several bills in one query, in order, by bill id."""
        ln = orm.BillLine
        rows = self.session.execute(
            select(
                ln.bill_id,
                ln.kind,
                ln.description,
                ln.quantity,
                ln.unit_price,
                ln.amount,
                ln.tier_from,
                ln.tier_to,
            )
            .where(ln.bill_id.in_(list(bill_ids)))
            .order_by(ln.bill_id, ln.position)
        ).all()
        out: dict[str, list[Any]] = {bill_id: [] for bill_id in bill_ids}
        for row in rows:
            out[row.bill_id].append(row)
        return out

    def usages_for(
        self, household_id: str, utility: str, period_starts: Sequence[date]
    ) -> dict[date, Decimal | None]:
        """The billed usage of the household's ``utility`` bills starting on any of
        ``period_starts``, by period start (one query, no ORM objects or lines)."""
        b = orm.Bill
        rows = self.session.execute(
            select(b.period_start, b.usage).where(
                b.household_id == household_id,
                b.utility == utility,
                b.period_start.in_(list(period_starts)),
            )
        ).all()
        return {start: usage for start, usage in rows}

    def unpaid_bills(self, household_id: str, utility: str | None = None) -> list[orm.Bill]:
        """Bills with something left to pay, oldest first."""
        q = select(orm.Bill).where(orm.Bill.household_id == household_id, orm.Bill.status != "paid")
        if utility is not None:
            q = q.where(orm.Bill.utility == utility)
        bills = self.session.scalars(q.order_by(orm.Bill.period_start, orm.Bill.utility)).all()
        return [b for b in bills if b.total > b.amount_paid]

    def open_bill_rows(self, household_id: str) -> Sequence[Any]:
        """What a balance shows of the household's unpaid bills, oldest first, as plain
        rows (no ORM objects: this is the hottest read)."""
        b = orm.Bill
        return self.session.execute(
            select(
                b.bill_id,
                b.household_id,
                b.utility,
                b.period_start,
                b.period_end,
                b.due_date,
                b.total,
                b.amount_paid,
                b.usage,
                b.unit,
            )
            .where(b.household_id == household_id, b.status != "paid", b.total > b.amount_paid)
            .order_by(b.period_start, b.utility)
        ).all()

    def positive_credits(self, household_id: str) -> dict[str, Decimal]:
        """The household's credit per bucket, where it holds any."""
        c = orm.HouseholdCredit
        rows = self.session.execute(
            select(c.utility, c.amount).where(c.household_id == household_id, c.amount > 0)
        ).all()
        return {r.utility: r.amount for r in rows}

    def amount_due_and_credit(
        self, household_id: str, utility: str | None, bucket: str
    ) -> tuple[Decimal, Decimal]:
        """In one query: what the household owes (on ``utility``, or on every
        utility) and the credit it holds in ``bucket``."""
        owed = func.coalesce(func.sum(orm.Bill.total - orm.Bill.amount_paid), 0)
        due = select(type_coerce(owed, orm.MONEY)).where(
            orm.Bill.household_id == household_id,
            orm.Bill.status != "paid",
            orm.Bill.total > orm.Bill.amount_paid,
        )
        if utility is not None:
            due = due.where(orm.Bill.utility == utility)
        credit = select(orm.HouseholdCredit.amount).where(
            orm.HouseholdCredit.household_id == household_id,
            orm.HouseholdCredit.utility == bucket,
        )
        row = self.session.execute(
            select(
                type_coerce(due.scalar_subquery(), orm.MONEY),
                type_coerce(credit.scalar_subquery(), orm.MONEY),
            )
        ).one()
        return row[0], row[1] if row[1] is not None else Decimal("0.00")

    def bills(
        self,
        household_id: str,
        *,
        utility: str | None = None,
        status: str | None = None,
        limit: int = 12,
    ) -> Sequence[orm.Bill]:
        """The household's bills, newest period first."""
        q = select(orm.Bill).where(orm.Bill.household_id == household_id)
        if utility:
            q = q.where(orm.Bill.utility == utility)
        if status:
            q = q.where(orm.Bill.status == status)
        q = q.order_by(orm.Bill.period_start.desc(), orm.Bill.utility).limit(limit)
        return self.session.scalars(q).all()

    # -- payments ---------------------------------------------------------------

    def payment(self, payment_id: str, *, lock: bool = False) -> orm.Payment | None:
        """The payment (optionally row-locked), or ``None``."""
        q = select(orm.Payment).where(orm.Payment.payment_id == payment_id)
        if lock:
            q = q.with_for_update().execution_options(populate_existing=True)
        return self.session.scalars(q).first()

    def payment_by_key(self, key: str) -> orm.Payment | None:
        """The payment created with idempotency key ``key``, or ``None``."""
        return self.session.scalars(
            select(orm.Payment)
            .where(orm.Payment.idempotency_key == key)
            .execution_options(populate_existing=True)
        ).first()

    def held_for_review(self, limit: int) -> Sequence[orm.Payment]:
        """Payments held for review by the risk rules, oldest first."""
        return self.session.scalars(
            select(orm.Payment)
            .where(orm.Payment.status == "review")
            .order_by(orm.Payment.created_at)
            .limit(limit)
        ).all()

    def bill_periods(self, bill_ids: Sequence[str]) -> Sequence[Any]:
        """``(bill_id, utility, period_start, period_end)`` of these bills."""
        return self.session.execute(
            select(
                orm.Bill.bill_id, orm.Bill.utility, orm.Bill.period_start, orm.Bill.period_end
            ).where(orm.Bill.bill_id.in_(bill_ids))
        ).all()

    def bill_row(self, bill_id: str) -> orm.Bill | None:
        """The bill without its lines (from the session if already loaded), or ``None``."""
        return self.session.get(orm.Bill, bill_id)

    def has_payment_notice(self, payment_id: str) -> bool:
        """Whether a notice about this payment's outcome was already queued."""
        return (
            self.session.scalar(
                select(orm.Notice.notice_id).where(orm.Notice.payment_id == payment_id)
            )
            is not None
        )

    def payment_household(self, payment_id: str) -> str | None:
        """The household a payment belongs to, or ``None`` for an unknown payment."""
        return self.session.scalar(
            select(orm.Payment.household_id).where(orm.Payment.payment_id == payment_id)
        )

    def recent_payments(self, household_id: str, limit: int) -> Sequence[orm.Payment]:
        """The household's payments, newest first."""
        return self.session.scalars(
            select(orm.Payment)
            .where(orm.Payment.household_id == household_id)
            .order_by(orm.Payment.created_at.desc())
            .limit(limit)
        ).all()

    def pending_payments(self, created_before: datetime) -> Sequence[Any]:
        """``(payment_id, household_id)`` of payments still pending since before a time."""
        return self.session.execute(
            select(orm.Payment.payment_id, orm.Payment.household_id).where(
                orm.Payment.status == "pending", orm.Payment.created_at <= created_before
            )
        ).all()

    def payment_household_by_reference(self, reference: str) -> str | None:
        """The household of the payment with this gateway reference, or ``None``."""
        return self.session.scalar(
            select(orm.Payment.household_id).where(orm.Payment.gateway_reference == reference)
        )

    def lock_payment_by_reference(self, reference: str) -> orm.Payment | None:
        """The payment with this gateway reference, row-locked, or ``None``."""
        return self.session.scalars(
            select(orm.Payment)
            .where(orm.Payment.gateway_reference == reference)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    def webhook_seen(self, event_id: str) -> bool:
        """Whether a gateway webhook event was already applied."""
        return self.session.get(orm.WebhookEvent, event_id) is not None

    def credit_balance(self, household_id: str, bucket: str) -> Decimal:
        """What the household's credit ``bucket`` holds (zero if it has none; nothing created)."""
        row = self.session.get(orm.HouseholdCredit, (household_id, bucket))
        return row.amount if row is not None else Decimal("0.00")

    def autopay_settings(
        self, household_id: str, *, enabled_only: bool = False
    ) -> dict[str, orm.AutopaySetting]:
        """The household's autopay settings by utility (only the enabled ones if asked)."""
        q = select(orm.AutopaySetting).where(orm.AutopaySetting.household_id == household_id)
        if enabled_only:
            q = q.where(orm.AutopaySetting.enabled.is_(True))
        return {row.utility: row for row in self.session.scalars(q)}

    def autopay_setting(self, household_id: str, utility: str) -> orm.AutopaySetting | None:
        """One utility's autopay setting, or ``None``."""
        return self.session.get(orm.AutopaySetting, (household_id, utility))

    def building(self, building_id: str) -> orm.Building | None:
        """The building, or ``None``."""
        return self.session.get(orm.Building, building_id)

    def credit(self, household_id: str, bucket: str) -> orm.HouseholdCredit:
        """The household's credit row for ``bucket`` (created at zero if missing)."""
        row = self.session.get(orm.HouseholdCredit, (household_id, bucket))
        if row is None:
            row = orm.HouseholdCredit(household_id=household_id, utility=bucket, amount=0)
            self.session.add(row)
            self.session.flush()
        return row

    def next_receipt_number(self, year: int) -> int:
        """Allocate the next gap-free receipt number of ``year``.

        One ``UPDATE ... RETURNING`` that locks the year's counter row until the
        commit, so callers issue it after every other write of the transaction:
        the number commits (or rolls back) together with the payment, hence no gaps.
        The year's row is created on first use.
        """
        bump = (
            update(orm.ReceiptCounter)
            .where(orm.ReceiptCounter.year == year)
            .values(last_number=orm.ReceiptCounter.last_number + 1)
            .returning(orm.ReceiptCounter.last_number)
        )
        number = self.session.execute(bump).scalar()
        if number is None:
            dialect = self.session.get_bind().dialect.name
            ins = pg_insert if dialect == "postgresql" else sqlite_insert
            self.session.execute(
                ins(orm.ReceiptCounter)
                .values(year=year, last_number=0)
                .on_conflict_do_nothing(index_elements=["year"])
            )
            number = self.session.execute(bump).scalar_one()
        return int(number)
