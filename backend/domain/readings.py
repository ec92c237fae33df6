"""Meter-reading validation.

Rules (one place):

* a reading never goes backwards: a value below the latest earlier reading is
  refused (:class:`ReadingBackwards`), and so is one above a later reading;
* an exact duplicate (same value as the latest reading, or the same time and
  value as an existing reading) is idempotent: it is reported as ``duplicate``
  and nothing new is stored;
* an implausible jump - usage since the previous reading, scaled to a month,
  above :data:`JUMP_FACTOR` × the household's median monthly use - is stored as
  ``flagged`` for staff to review and is not billed until approved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from statistics import median

#: A monthly usage above this multiple of the median monthly usage is flagged.
JUMP_FACTOR = Decimal(5)
#: Below this many past months there is no median to compare with.
MIN_HISTORY_MONTHS = 3
SOURCES = ("smart_meter", "meter_reader", "resident")
_MONTH_DAYS = Decimal("30.4375")


class ReadingError(ValueError):
    """A reading that cannot be accepted (``code`` is the API error code)."""

    code = "invalid_reading"


class ReadingBackwards(ReadingError):
    """The reading is lower than an earlier one (meters only count up)."""

    code = "reading_backwards"


@dataclass(frozen=True)
class PriorReading:
    """An already stored reading of the same meter."""

    value: Decimal
    taken_at: datetime


@dataclass(frozen=True)
class Verdict:
    """The outcome of validating a new reading.

    ``status`` is ``accepted``, ``duplicate`` or ``flagged``; ``message`` explains
    it to the resident; ``suggested_value`` is the latest plausible value when the
    reading was flagged.
    """

    status: str
    message: str
    suggested_value: Decimal | None = None


def validate_reading(
    value: Decimal,
    taken_at: datetime,
    previous: PriorReading | None,
    following: PriorReading | None,
    monthly_usage_history: list[Decimal],
    *,
    unit: str = "",
) -> Verdict:
    """Decide what happens to a new reading.

    Args:
        value: the cumulative meter value.
        taken_at: when it was read.
        previous: the latest accepted reading at or before ``taken_at``.
        following: the earliest accepted reading after ``taken_at``.
        monthly_usage_history: the household's past monthly usages on this meter.
        unit: the meter unit, for messages.

    Raises:
        ReadingBackwards: if the value is below ``previous`` or above ``following``.
        ReadingError: if the value is negative.
    """
    if value < 0:
        raise ReadingError("a meter reading cannot be negative")
    if previous is not None:
        if previous.taken_at == taken_at and previous.value == value:
            return Verdict("duplicate", "This reading was already recorded.")
        if value < previous.value:
            raise ReadingBackwards(
                f"the reading {value:f} is lower than the previous reading "
                f"{previous.value:f} {unit}".rstrip()
            )
        if value == previous.value and taken_at >= previous.taken_at:
            return Verdict("duplicate", "This reading matches the latest recorded reading.")
    if following is not None and value > following.value:
        raise ReadingBackwards(
            f"the reading {value:f} is higher than a later reading {following.value:f}"
        )
    if previous is not None and len(monthly_usage_history) >= MIN_HISTORY_MONTHS:
        med = Decimal(median(monthly_usage_history))
        seconds = Decimal((taken_at - previous.taken_at).total_seconds())
        days = max(seconds / Decimal(86400), Decimal(1))
        usage = value - previous.value
        monthly_rate = usage * _MONTH_DAYS / days if days > _MONTH_DAYS else usage
        if med > 0 and monthly_rate > JUMP_FACTOR * med:
            return Verdict(
                "flagged",
                f"This reading implies about {monthly_rate:.0f} {unit} a month, more than "
                f"{JUMP_FACTOR}× your usual {med:.0f}. Staff will check it before billing.".replace(
                    "  ", " "
                ),
                previous.value + (med * days / _MONTH_DAYS).quantize(Decimal("0.001")),
            )
    return Verdict("accepted", "Reading recorded.")
