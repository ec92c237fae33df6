"""Money: exact decimal amounts and THE rounding rule.

Every amount in billtalk is a :class:`decimal.Decimal` with two places (CNY
fen). Floats never enter a money path: :func:`parse_amount` refuses them, and
the API refuses JSON numbers for amounts (they must be strings such as
``"12.34"``).

The rounding rule
-----------------
**Each bill line is rounded once, half-up, to 2 places** (:func:`round_line`),
right after its quantity × unit price is computed with full precision. Bill
totals are the exact sum of already-rounded lines, and are never rounded again.
No other module rounds money; they call :func:`round_line` or
:func:`quantize`, which refuses to silently drop precision.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

#: Two decimal places: the precision of every stored amount.
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
#: The largest amount that fits ``Numeric(12, 2)``.
MAX_AMOUNT = Decimal("9999999999.99")

_AMOUNT_RE = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,2})?$")


class InvalidAmount(ValueError):
    """An amount that is not a plain, positive decimal with at most two places.

    Attributes:
        code: a stable machine-readable reason, used as the API error code.
    """

    def __init__(self, message: str, code: str = "invalid_amount") -> None:
        super().__init__(message)
        self.code = code


def parse_amount(value: object, *, allow_zero: bool = False) -> Decimal:
    """Parse a money amount given as a string (or Decimal/int) into a 2-place Decimal.

    Accepted: ``"12"``, ``"12.3"``, ``"12.34"``, ``Decimal("12.34")``, ``12``.
    Refused (:class:`InvalidAmount`): floats, booleans, NaN/Infinity, exponents
    (``"1e3"``), more than two decimal places, signs, negatives, whitespace,
    thousands separators, zero (unless ``allow_zero``), and anything above
    :data:`MAX_AMOUNT`.

    Args:
        value: the raw amount.
        allow_zero: accept ``0.00``.

    Returns:
        The amount quantized to two places.
    """
    if isinstance(value, (bool, float)):
        raise InvalidAmount('amounts must be decimal strings such as "12.34", not numbers')
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidAmount("amount must be a finite number")
        text = format(value, "f")
    elif isinstance(value, str):
        text = value
    else:
        raise InvalidAmount('amount must be a decimal string such as "12.34"')
    if text.startswith("-"):
        raise InvalidAmount("amount must not be negative", "invalid_amount")
    if not _AMOUNT_RE.fullmatch(text):
        raise InvalidAmount(f"amount {text[:40]!r} is not a plain decimal with at most two places")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already excludes it
        raise InvalidAmount(f"amount {text[:40]!r} is not a number") from exc
    if amount > MAX_AMOUNT:
        raise InvalidAmount("amount is too large")
    if amount == 0 and not allow_zero:
        raise InvalidAmount("amount must be greater than zero")
    return amount.quantize(CENT)


def round_line(value: Decimal) -> Decimal:
    """THE rounding rule: round one bill line's exact amount half-up to two places.

    Call it exactly once per line, on the exact product (e.g. usage × price).
    ``round_line(Decimal("0.125")) == Decimal("0.13")``.
    """
    if isinstance(value, float):  # defensive: a float here is a bug upstream
        raise TypeError("round_line takes a Decimal, never a float")
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def quantize(value: Decimal) -> Decimal:
    """Express an amount that already has at most two places with exactly two places.

    Raises:
        ValueError: if ``value`` has more than two places (that would be a hidden
            second rounding, which the rounding rule forbids).
    """
    q = value.quantize(CENT)
    if q != value:
        raise ValueError(f"{value} has more than two decimal places")
    return q


def fmt(value: Decimal) -> str:
    """Format an amount as a string with exactly two places (``"12.30"``)."""
    return format(quantize(value), "f")


def total(values: list[Decimal] | tuple[Decimal, ...]) -> Decimal:
    """The exact sum of already-rounded amounts, with two places."""
    return quantize(sum(values, ZERO))
