"""Tariff arithmetic: the ONE place usage and area are turned into bill lines.

Kinds:

* ``flat`` - ``usage × unit_price``;
* ``tiered`` (阶梯) - monthly blocks, e.g. 0–200 kWh at 0.52, 200–400 at 0.57,
  above 400 at 0.82; each block becomes its own ``tier`` line;
* ``tou`` (time of use) - usage split into named periods (``peak``,
  ``valley``...), each priced separately;
* ``area`` - property fee: ``area_m2 × unit_price`` per month.

Any kind may add a fixed monthly charge (a ``fixed`` line). Tariffs are
versioned: :func:`select_tariff` picks the version in force on a period's first
day. Each line is rounded once with :func:`backend.domain.money.round_line`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from backend.domain.money import ZERO, round_line
from billtalk.vocabulary import UTILITIES as _VOCABULARY_UTILITIES

UTILITIES = _VOCABULARY_UTILITIES
METERED_UTILITIES = ("electricity", "water", "gas")
TARIFF_KINDS = ("flat", "tiered", "tou", "area")


@dataclass(frozen=True)
class Tier:
    """One block of a tiered tariff: usage up to ``upto`` (``None`` = no limit)."""

    upto: Decimal | None
    price: Decimal


@dataclass(frozen=True)
class TariffVersion:
    """A tariff in force from ``effective_from`` (until the next version)."""

    utility: str
    kind: str
    name: str
    effective_from: date
    unit: str
    unit_price: Decimal | None = None
    fixed_monthly: Decimal = ZERO
    tiers: tuple[Tier, ...] = ()
    #: Time of use: period name -> price.
    tou_prices: Mapping[str, Decimal] = field(default_factory=dict)
    tariff_id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in TARIFF_KINDS:
            raise ValueError(f"unknown tariff kind {self.kind!r}")
        if self.kind == "tiered":
            if not self.tiers or self.tiers[-1].upto is not None:
                raise ValueError("a tiered tariff needs blocks ending with an open one")
            bounds = [t.upto for t in self.tiers[:-1]]
            if any(b is None for b in bounds) or bounds != sorted(bounds):  # type: ignore[type-var]
                raise ValueError("tier bounds must increase")
        if self.kind in ("flat", "area") and self.unit_price is None:
            raise ValueError(f"a {self.kind} tariff needs a unit price")
        if self.kind == "tou" and not self.tou_prices:
            raise ValueError("a time-of-use tariff needs period prices")


@dataclass(frozen=True)
class Line:
    """A computed bill line (already rounded once)."""

    kind: str
    description: str
    amount: Decimal
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    tier_from: Decimal | None = None
    tier_to: Decimal | None = None


def select_tariff(versions: Sequence[TariffVersion], utility: str, on: date) -> TariffVersion:
    """Return the version of ``utility``'s tariff in force on ``on``.

    Raises:
        LookupError: when no version is in force yet.
    """
    candidates = [v for v in versions if v.utility == utility and v.effective_from <= on]
    if not candidates:
        raise LookupError(f"no {utility} tariff in force on {on.isoformat()}")
    return max(candidates, key=lambda v: v.effective_from)


def _fmt_qty(q: Decimal) -> str:
    return format(q.normalize(), "f") if q == q.to_integral() else format(q, "f")


def price_usage(
    tariff: TariffVersion,
    usage: Decimal,
    *,
    tou_split: Mapping[str, Decimal] | None = None,
) -> list[Line]:
    """Turn one period's metered ``usage`` into bill lines under ``tariff``.

    Args:
        tariff: a ``flat``, ``tiered`` or ``tou`` tariff.
        usage: the period's consumption (non-negative).
        tou_split: for ``tou`` tariffs, usage per period name (must sum to ``usage``).

    Returns:
        The lines, each rounded once, ending with the fixed charge if any.
    """
    if usage < 0:
        raise ValueError("usage cannot be negative")
    lines: list[Line] = []
    unit = tariff.unit
    if tariff.kind == "flat":
        assert tariff.unit_price is not None
        lines.append(
            Line(
                "tier",
                f"{_fmt_qty(usage)} {unit} × {tariff.unit_price.normalize():f}",
                round_line(usage * tariff.unit_price),
                usage,
                tariff.unit_price,
                ZERO,
                None,
            )
        )
    elif tariff.kind == "tiered":
        lower = Decimal(0)
        for tier in tariff.tiers:
            upper = tier.upto
            in_block = (min(usage, upper) if upper is not None else usage) - lower
            if in_block <= 0:
                break
            label = (
                f"Tier {_fmt_qty(lower)}–{_fmt_qty(upper)} {unit}"
                if upper is not None
                else f"Tier above {_fmt_qty(lower)} {unit}"
            )
            lines.append(
                Line(
                    "tier",
                    f"{label}: {_fmt_qty(in_block)} × {tier.price.normalize():f}",
                    round_line(in_block * tier.price),
                    in_block,
                    tier.price,
                    lower,
                    upper,
                )
            )
            if upper is None:
                break
            lower = upper
        if not lines:
            first = tariff.tiers[0]
            lines.append(
                Line(
                    "tier",
                    f"No usage (0 {unit})",
                    round_line(ZERO),
                    ZERO,
                    first.price,
                    ZERO,
                    first.upto,
                )
            )
    elif tariff.kind == "tou":
        split = dict(tou_split or {})
        if set(split) - set(tariff.tou_prices):
            raise ValueError(
                f"unknown time-of-use periods: {sorted(set(split) - set(tariff.tou_prices))}"
            )
        if sum(split.values(), Decimal(0)) != usage:
            raise ValueError("time-of-use split must add up to the usage")
        for name, price in tariff.tou_prices.items():
            qty = split.get(name, Decimal(0))
            lines.append(
                Line(
                    "tier",
                    f"{name.capitalize()}: {_fmt_qty(qty)} {unit} × {price.normalize():f}",
                    round_line(qty * price),
                    qty,
                    price,
                )
            )
    else:
        raise ValueError(f"{tariff.kind} tariffs are not priced by usage")
    if tariff.fixed_monthly:
        lines.append(Line("fixed", "Fixed monthly charge", round_line(tariff.fixed_monthly)))
    return lines


def price_area(tariff: TariffVersion, area_m2: Decimal) -> list[Line]:
    """The property-fee lines for a unit of ``area_m2`` square metres for one month."""
    if tariff.kind != "area":
        raise ValueError("property fee needs an area tariff")
    assert tariff.unit_price is not None
    lines = [
        Line(
            "area",
            f"Property fee: {_fmt_qty(area_m2)} m² × {tariff.unit_price.normalize():f}",
            round_line(area_m2 * tariff.unit_price),
            area_m2,
            tariff.unit_price,
        )
    ]
    if tariff.fixed_monthly:
        lines.append(Line("fixed", "Fixed monthly charge", round_line(tariff.fixed_monthly)))
    return lines


def tiers_from_json(raw: Sequence[Mapping[str, object]] | None) -> tuple[Tier, ...]:
    """Parse stored tiers (``[{"upto": "200", "price": "0.52"}, ...]``)."""
    out = []
    for item in raw or ():
        upto = item.get("upto")
        out.append(
            Tier(Decimal(str(upto)) if upto is not None else None, Decimal(str(item["price"])))
        )
    return tuple(out)


def tiers_to_json(tiers: Sequence[Tier]) -> list[dict[str, str | None]]:
    """The stored form of tiers (strings, never floats)."""
    return [
        {"upto": format(t.upto, "f") if t.upto is not None else None, "price": format(t.price, "f")}
        for t in tiers
    ]
