"""SQLAlchemy 2 models of the billing database.

Money columns are ``Numeric(12, 2)`` and map to :class:`decimal.Decimal`;
quantities (meter values, usage) are ``Numeric(14, 3)``; unit prices are
``Numeric(12, 4)``. They all use :class:`ScaledDecimal`, which stores scaled
integers on SQLite (exact) - so bulk loaders must insert through these models
or Core tables (``Model.__table__``), never with raw SQL literals.

Identifiers of community objects are readable strings (``hh-A1203``);
payments use random ids (``pay_<hex>``).

The schema is created and upgraded only through the Alembic migrations in
``backend/migrations`` (version table ``alembic_version``).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import BigInteger, TypeDecorator, TypeEngine


class ScaledDecimal(TypeDecorator[Decimal]):
    """An exact decimal column: ``NUMERIC(p, s)`` on PostgreSQL, scaled integer on SQLite.

    SQLite has no exact decimal type (its NUMERIC is a float), so on SQLite the
    value is stored as an integer count of ``10**-scale`` units (fen for money)
    in the same ``NUMERIC(p, s)`` column; integers are exact there. Python sees a
    :class:`~decimal.Decimal` with exactly ``scale`` places on both databases, and
    ``SUM()`` of such a column stays exact. A float is refused on the way in.

    Do arithmetic between columns in Python (or ``type_coerce`` the result to this
    type): a raw ``col_a - col_b`` expression in SQL loses the scaling on SQLite.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision, scale, asdecimal=True)
        self.precision = precision
        self.scale = scale
        self._quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float | bool):
            raise TypeError("exact decimal columns take Decimal or int, never float")
        value = Decimal(value)
        exact = value.quantize(self._quantum)
        if exact != value:
            raise ValueError(f"{value} has more than {self.scale} decimal places")
        if dialect.name == "sqlite":
            return int(exact.scaleb(self.scale))
        return exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            if isinstance(value, float):  # never written by billtalk; refuse silently wrong data
                raise TypeError("float found in an exact decimal column")
            return Decimal(int(value)).scaleb(-self.scale).quantize(self._quantum)
        return Decimal(value).quantize(self._quantum)


MONEY = ScaledDecimal(12, 2)
QUANTITY = ScaledDecimal(14, 3)
PRICE = ScaledDecimal(12, 4)
AREA = ScaledDecimal(8, 2)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of the billing tables."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {Decimal: MONEY, dict[str, Any]: JSON}


# --- community -------------------------------------------------------------------


class Building(Base):
    """A building of the community."""

    __tablename__ = "buildings"

    building_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(200), default="")


class Household(Base):
    """A unit (apartment) and the household living in it; the billing account."""

    __tablename__ = "households"

    household_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.building_id"), index=True)
    unit: Mapped[str] = mapped_column(String(32), unique=True)
    floor: Mapped[int] = mapped_column(Integer, default=1)
    area_m2: Mapped[Decimal] = mapped_column(AREA)
    #: The saved payment method (one of the method names) and its gateway token.
    saved_method: Mapped[str | None] = mapped_column(String(20), default=None)
    saved_method_label: Mapped[str | None] = mapped_column(String(60), default=None)
    saved_method_token: Mapped[str | None] = mapped_column(String(80), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    residents: Mapped[list[Resident]] = relationship(back_populates="household")


class Resident(Base):
    """A person living in a household, who talks to the assistant."""

    __tablename__ = "residents"

    resident_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.household_id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(5), default="en")
    phone: Mapped[str | None] = mapped_column(String(30), default=None)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)

    household: Mapped[Household] = relationship(back_populates="residents")


class Meter(Base):
    """One meter per unit per metered utility (electricity, water, gas)."""

    __tablename__ = "meters"
    __table_args__ = (UniqueConstraint("household_id", "utility"),)

    meter_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.household_id"), index=True)
    utility: Mapped[str] = mapped_column(String(20))
    unit: Mapped[str] = mapped_column(String(10))
    serial: Mapped[str] = mapped_column(String(40), default="")
    installed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MeterReading(Base):
    """A meter reading: a cumulative value at a time, from a source.

    ``status`` is ``accepted`` (billable) or ``flagged`` (an implausible jump that
    staff must review; never billed until approved) or ``rejected``.
    """

    __tablename__ = "meter_readings"
    __table_args__ = (
        UniqueConstraint("meter_id", "taken_at"),
        Index("ix_meter_readings_meter_taken", "meter_id", "taken_at"),
    )

    reading_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.meter_id"))
    value: Mapped[Decimal] = mapped_column(QUANTITY)
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10), default="accepted")
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- tariffs and bills -----------------------------------------------------------


class Tariff(Base):
    """A tariff version: applies to bills whose period starts on/after ``effective_from``.

    ``kind`` is ``flat`` (``unit_price``), ``tiered`` (``tiers``: a list of
    ``{"upto": "200" | null, "price": "0.52"}``), ``tou`` (``tou``: period
    prices and shares) or ``area`` (property fee: ``unit_price`` per m²).
    """

    __tablename__ = "tariffs"
    __table_args__ = (UniqueConstraint("utility", "effective_from"),)

    tariff_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    utility: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100))
    effective_from: Mapped[date] = mapped_column(Date)
    unit: Mapped[str] = mapped_column(String(10))
    unit_price: Mapped[Decimal | None] = mapped_column(PRICE, default=None)
    fixed_monthly: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    tiers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    tou: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class Bill(Base):
    """A bill for one household, utility and period (unique together)."""

    __tablename__ = "bills"
    __table_args__ = (
        UniqueConstraint("household_id", "utility", "period_start"),
        Index("ix_bills_household_status", "household_id", "status"),
    )

    bill_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.household_id"))
    utility: Mapped[str] = mapped_column(String(20))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    issued_on: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date, index=True)
    tariff_id: Mapped[int | None] = mapped_column(ForeignKey("tariffs.tariff_id"), default=None)
    usage: Mapped[Decimal | None] = mapped_column(QUANTITY, default=None)
    unit: Mapped[str | None] = mapped_column(String(10), default=None)
    start_reading: Mapped[Decimal | None] = mapped_column(QUANTITY, default=None)
    end_reading: Mapped[Decimal | None] = mapped_column(QUANTITY, default=None)
    total: Mapped[Decimal] = mapped_column(MONEY)
    amount_paid: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    version: Mapped[int] = mapped_column(Integer, default=1)

    lines: Mapped[list[BillLine]] = relationship(
        back_populates="bill", order_by="BillLine.position", cascade="all, delete-orphan"
    )


class BillLine(Base):
    """One itemised line of a bill (``tier``, ``fixed``, ``area``, ``late_fee``, ``credit``)."""

    __tablename__ = "bill_lines"

    line_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bill_id: Mapped[str] = mapped_column(
        ForeignKey("bills.bill_id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(12))
    description: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[Decimal | None] = mapped_column(QUANTITY, default=None)
    unit_price: Mapped[Decimal | None] = mapped_column(PRICE, default=None)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    tier_from: Mapped[Decimal | None] = mapped_column(QUANTITY, default=None)
    tier_to: Mapped[Decimal | None] = mapped_column(QUANTITY, default=None)

    bill: Mapped[Bill] = relationship(back_populates="lines")


# --- payments, credits, receipts -------------------------------------------------


class Payment(Base):
    """A payment attempt and its life cycle (see :mod:`backend.domain.payments`)."""

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_household_created", "household_id", "created_at"),)

    payment_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.household_id"))
    utility: Mapped[str | None] = mapped_column(String(20), default=None)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    method: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(20), default="sandbox")
    gateway_reference: Mapped[str | None] = mapped_column(String(80), default=None, index=True)
    #: The tokenised instrument sent to the gateway (needed to resume a charge
    #: after a crash; a token, never a card number in production).
    payment_token: Mapped[str | None] = mapped_column(String(80), default=None)
    failure_code: Mapped[str | None] = mapped_column(String(40), default=None)
    receipt_no: Mapped[str | None] = mapped_column(String(20), default=None, unique=True)
    credited: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    refunded: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    source: Mapped[str] = mapped_column(String(20), default="api")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    #: The first response returned for this idempotency key (replayed verbatim).
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: The risk assessment made when the payment was requested (``backend.domain.risk``).
    risk: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: The channel the payment came from (terminal, telegram, speaker, api...).
    channel: Mapped[str | None] = mapped_column(String(20), default=None)
    #: Staff who approved or declined a payment held for review, and when.
    reviewed_by: Mapped[str | None] = mapped_column(String(80), default=None)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    allocations: Mapped[list[PaymentAllocation]] = relationship(
        back_populates="payment", cascade="all, delete-orphan"
    )


class PaymentAllocation(Base):
    """The part of a payment applied to one bill (negative rows undo it on refund)."""

    __tablename__ = "payment_allocations"

    allocation_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.payment_id"), index=True)
    bill_id: Mapped[str] = mapped_column(ForeignKey("bills.bill_id"), index=True)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    payment: Mapped[Payment] = relationship(back_populates="allocations")


class HouseholdCredit(Base):
    """Prepaid credit of a household on one utility (``general`` = any utility)."""

    __tablename__ = "household_credits"

    household_id: Mapped[str] = mapped_column(
        ForeignKey("households.household_id"), primary_key=True
    )
    utility: Mapped[str] = mapped_column(String(20), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))


class ReceiptCounter(Base):
    """The last receipt number issued in a year (row-locked while allocating)."""

    __tablename__ = "receipt_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class AutopaySetting(Base):
    """Autopay for one household and utility."""

    __tablename__ = "autopay_settings"

    household_id: Mapped[str] = mapped_column(
        ForeignKey("households.household_id"), primary_key=True
    )
    utility: Mapped[str] = mapped_column(String(20), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    method: Mapped[str | None] = mapped_column(String(20), default=None)
    max_amount: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("2000.00"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- ledger ----------------------------------------------------------------------


class JournalEntry(Base):
    """A balanced double-entry journal entry (see :mod:`backend.domain.ledger`)."""

    __tablename__ = "journal_entries"

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(80), index=True)
    household_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    memo: Mapped[str] = mapped_column(String(200), default="")
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    lines: Mapped[list[JournalLine]] = relationship(
        back_populates="entry", cascade="all, delete-orphan"
    )


class JournalLine(Base):
    """One debit or credit of a journal entry (exactly one of them is non-zero)."""

    __tablename__ = "journal_lines"
    __table_args__ = (Index("ix_journal_lines_account_household", "account", "household_id"),)

    line_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("journal_entries.entry_id", ondelete="CASCADE"), index=True
    )
    account: Mapped[str] = mapped_column(String(40))
    household_id: Mapped[str | None] = mapped_column(String(32), default=None)
    debit: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    credit: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))

    entry: Mapped[JournalEntry] = relationship(back_populates="lines")


# --- access, linking, notices ----------------------------------------------------


class ApiToken(Base):
    """A bearer token, stored as its SHA-256 hash. ``scope``: service, resident, staff."""

    __tablename__ = "api_tokens"

    token_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100), default="")
    household_id: Mapped[str | None] = mapped_column(
        ForeignKey("households.household_id"), default=None
    )
    resident_id: Mapped[str | None] = mapped_column(
        ForeignKey("residents.resident_id"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class LinkCode(Base):
    """A one-time code binding a chat account to a resident (stored hashed)."""

    __tablename__ = "link_codes"

    link_code_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    used_channel: Mapped[str | None] = mapped_column(String(20), default=None)
    used_external_id: Mapped[str | None] = mapped_column(String(80), default=None)


class LinkAttempt(Base):
    """A failed link-code attempt from a chat account (for attempt limiting)."""

    __tablename__ = "link_attempts"
    __table_args__ = (Index("ix_link_attempts_who", "channel", "external_id", "attempted_at"),)

    attempt_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(80))
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChannelLink(Base):
    """A chat account (channel + external id) bound to a resident."""

    __tablename__ = "channel_links"

    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"), index=True)
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Notice(Base):
    """A notice in the channel-agnostic outbox.

    Either an arrears reminder (``bill_id`` set; one per bill and kind) or the
    outcome of a payment that was left pending and settled later (``payment_id``
    set, kind ``payment_succeeded`` / ``payment_failed``; one per payment).
    """

    __tablename__ = "notices"
    __table_args__ = (
        UniqueConstraint("bill_id", "kind"),
        Index("ix_notices_status_created", "status", "created_at"),
    )

    notice_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.household_id"), index=True)
    bill_id: Mapped[str | None] = mapped_column(ForeignKey("bills.bill_id"), default=None)
    payment_id: Mapped[str | None] = mapped_column(
        ForeignKey("payments.payment_id"), default=None, unique=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    amount_due: Mapped[Decimal] = mapped_column(MONEY)
    due_date: Mapped[date | None] = mapped_column(Date, default=None)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    channel: Mapped[str | None] = mapped_column(String(20), default=None)


class WebhookEvent(Base):
    """A processed gateway webhook event (its id makes delivery idempotent)."""

    __tablename__ = "webhook_events"

    event_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    gateway_reference: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(10))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- trust and safety -----------------------------------------------------------


class StepUpAttempt(Base):
    """One step-up verification outcome (PIN, face, voice) from any channel.

    Failures of every kind and channel count together toward the lockout; the
    risk rules count recent failures too. Only kind and outcome are stored.
    """

    __tablename__ = "step_up_attempts"
    __table_args__ = (Index("ix_step_up_attempts_resident_at", "resident_id", "attempted_at"),)

    attempt_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"))
    household_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(20), default="")
    passed: Mapped[bool] = mapped_column(Boolean)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StepUpProof(Base):
    """A single-use step-up proof bound to one exact payment (stored hashed)."""

    __tablename__ = "step_up_proofs"

    proof_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"))
    household_id: Mapped[str] = mapped_column(String(32), index=True)
    utility: Mapped[str | None] = mapped_column(String(20), default=None)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    method: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    payment_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: ``payment`` or ``autopay`` (backend.domain.stepup.PROOF_PURPOSES).
    purpose: Mapped[str] = mapped_column(String(10), default="payment", server_default="payment")


class AuditEntry(Base):
    """One entry of the append-only, hash-chained audit log.

    ``hash`` = SHA-256 over the previous entry's hash and this entry's canonical
    content (seq, at, kind, actor, subject, data); ``at`` and ``data`` are stored
    as the exact strings hashed. See :mod:`backend.service_layer.audit`.
    """

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40), index=True)
    actor: Mapped[str] = mapped_column(String(80), default="")
    subject: Mapped[str] = mapped_column(String(120), default="")
    data: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


metadata = Base.metadata
