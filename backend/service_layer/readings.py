"""Submitting, listing and reviewing meter readings."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from backend import schemas
from backend.adapters import orm
from backend.domain.readings import (
    SOURCES,
    PriorReading,
    ReadingError,
    validate_reading,
)
from backend.service_layer.common import (
    aware,
    check_utility,
    get_household,
    log,
    utcnow,
)
from backend.service_layer.errors import (
    Conflict,
    Invalid,
    NotFound,
)
from backend.service_layer.unit_of_work import UnitOfWork


def _monthly_history(uow: UnitOfWork, household_id: str, utility: str) -> list[Decimal]:
    rows = uow.session.scalars(
        select(orm.Bill.usage)
        .where(orm.Bill.household_id == household_id, orm.Bill.utility == utility)
        .order_by(orm.Bill.period_start.desc())
        .limit(12)
    ).all()
    return [r for r in rows if r is not None]


def record_reading(
    uow: UnitOfWork,
    household_id: str,
    utility: str,
    value: Decimal,
    *,
    source: str = "resident",
    taken_at: datetime | None = None,
) -> schemas.ReadingResult:
    """Validate and store a meter reading (see :mod:`backend.domain.readings`).

    Raises:
        NotFound: unknown household or no meter of that utility.
        Invalid: backwards (code ``reading_backwards``), negative, or bad source.
        Conflict: a different value was already recorded at the same time.
    """
    check_utility(utility, metered=True)
    if source not in SOURCES:
        raise Invalid("invalid_source", f"source must be one of {SOURCES}")
    taken_at = aware(taken_at) if taken_at else utcnow()
    if taken_at > utcnow() + timedelta(minutes=5):
        raise Invalid("reading_in_future", "a reading cannot be taken in the future")
    with uow:
        get_household(uow, household_id, lock=True)
        meter = uow.repo.meter(household_id, utility)
        if meter is None:
            raise NotFound("unknown_meter", f"household {household_id} has no {utility} meter")
        same_time = uow.session.scalars(
            select(orm.MeterReading).where(
                orm.MeterReading.meter_id == meter.meter_id, orm.MeterReading.taken_at == taken_at
            )
        ).first()
        if same_time is not None:
            if same_time.value == value:
                return schemas.ReadingResult(
                    reading_id=same_time.reading_id,
                    status="duplicate",
                    message="This reading was already recorded.",
                )
            raise Conflict("reading_conflict", "a different reading was recorded at that time")
        prev = uow.repo.reading_at_or_before(meter.meter_id, taken_at)
        nxt = uow.repo.reading_after(meter.meter_id, taken_at)
        try:
            verdict = validate_reading(
                value,
                taken_at,
                PriorReading(prev.value, aware(prev.taken_at)) if prev else None,
                PriorReading(nxt.value, aware(nxt.taken_at)) if nxt else None,
                _monthly_history(uow, household_id, utility),
                unit=meter.unit,
            )
        except ReadingError as exc:
            raise Invalid(exc.code, str(exc)) from exc
        if verdict.status == "duplicate":
            return schemas.ReadingResult(
                reading_id=prev.reading_id if prev else None,
                status="duplicate",
                message=verdict.message,
            )
        row = orm.MeterReading(
            meter_id=meter.meter_id,
            value=value,
            taken_at=taken_at,
            source=source,
            status="accepted" if verdict.status == "accepted" else "flagged",
            note=verdict.message if verdict.status == "flagged" else "",
            created_at=utcnow(),
        )
        uow.session.add(row)
        uow.session.flush()
        uow.commit()
        if verdict.status == "flagged":
            log.warning(
                "reading_flagged",
                household_id=household_id,
                utility=utility,
                reading_id=row.reading_id,
            )
        return schemas.ReadingResult(
            reading_id=row.reading_id,
            status="accepted" if verdict.status == "accepted" else "flagged",
            message=verdict.message,
            suggested_value=verdict.suggested_value,
        )


def review_reading(uow: UnitOfWork, reading_id: int, *, approve: bool) -> schemas.Reading:
    """Staff: approve (make billable) or reject a flagged reading."""
    with uow:
        row = uow.session.get(orm.MeterReading, reading_id)
        if row is None:
            raise NotFound("unknown_reading", f"no reading {reading_id}")
        meter = uow.session.get(orm.Meter, row.meter_id)
        assert meter is not None
        get_household(uow, meter.household_id, lock=True)
        if row.status != "flagged":
            raise Conflict("not_flagged", f"reading {reading_id} is {row.status}, not flagged")
        row.status = "accepted" if approve else "rejected"
        out = _reading_out(row, meter.utility)
        uow.commit()
        return out


def _reading_out(row: orm.MeterReading, utility: str) -> schemas.Reading:
    return schemas.Reading(
        reading_id=row.reading_id,
        utility=utility,  # type: ignore[arg-type]
        value=row.value,
        taken_at=aware(row.taken_at),
        source=row.source,
        status=row.status,
    )


def list_readings(
    uow: UnitOfWork, household_id: str, *, utility: str | None = None, limit: int = 24
) -> list[schemas.Reading]:
    """The household's readings, newest first."""
    check_utility(utility, metered=True)
    with uow:
        get_household(uow, household_id)
        q = (
            select(orm.MeterReading, orm.Meter.utility)
            .join(orm.Meter, orm.Meter.meter_id == orm.MeterReading.meter_id)
            .where(orm.Meter.household_id == household_id)
        )
        if utility:
            q = q.where(orm.Meter.utility == utility)
        rows = uow.session.execute(q.order_by(orm.MeterReading.taken_at.desc()).limit(limit)).all()
        return [_reading_out(r, u) for r, u in rows]


def flagged_readings(uow: UnitOfWork, limit: int = 100) -> list[dict[str, Any]]:
    """Staff: readings waiting for review."""
    with uow:
        rows = uow.session.execute(
            select(orm.MeterReading, orm.Meter)
            .join(orm.Meter, orm.Meter.meter_id == orm.MeterReading.meter_id)
            .where(orm.MeterReading.status == "flagged")
            .order_by(orm.MeterReading.taken_at)
            .limit(limit)
        ).all()
        return [
            {
                "household_id": m.household_id,
                "note": r.note,
                **_reading_out(r, m.utility).model_dump(mode="json"),
            }
            for r, m in rows
        ]
