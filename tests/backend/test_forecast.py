"""Tests of the usage forecast and its backtest."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import pytest

from backend.domain.forecast import (
    COMMUNITY_METHOD,
    METHODS,
    backtest,
    community_factors,
    forecast_next,
    format_backtest,
    seasonal_factors,
)

#: A clean seasonal shape (Jan..Dec), mean exactly 1.
SHAPE = [
    Decimal(x)
    for x in ("1.2", "1.0", "0.8", "0.7", "0.8", "1.1", "1.6", "1.6", "1.1", "0.7", "0.6", "0.8")
]


def months(start: date, n: int) -> list[date]:
    out = []
    for k in range(n):
        y, m = divmod(start.month - 1 + k, 12)
        out.append(date(start.year + y, m + 1, 1))
    return out


def seasonal(
    n: int,
    *,
    base: str = "200",
    growth: str = "0",
    start: date = date(2023, 1, 1),
    noise: float = 0.0,
    seed: int = 0,
) -> list[tuple[date, Decimal]]:
    rng = random.Random(seed)
    out = []
    for k, d in enumerate(months(start, n)):
        level = Decimal(base) + Decimal(growth) * k
        jitter = Decimal(f"{rng.gauss(0, noise):.4f}") if noise else Decimal(0)
        out.append((d, (level * SHAPE[d.month - 1] * (1 + jitter)).quantize(Decimal("0.001"))))
    return out


def test_next_period_and_fields() -> None:
    fc = forecast_next(seasonal(24))
    assert fc.period_start == date(2025, 1, 1)
    assert fc.method == "seasonal_trend" and fc.history_months == 24
    assert isinstance(fc.usage, Decimal) and fc.usage.as_tuple().exponent == -3
    assert fc.lower <= fc.usage <= fc.upper


def test_pure_seasonal_series_is_forecast_exactly() -> None:
    history = seasonal(24)
    fc = forecast_next(history)
    assert fc.usage == Decimal("240.000")  # January: 200 × 1.2
    july = forecast_next(history[:18])  # Jan 2023 .. Jun 2024 -> Jul 2024
    assert july.period_start == date(2024, 7, 1)
    assert july.usage == Decimal("320.000")


def test_trend_is_followed_with_damping() -> None:
    history = seasonal(36, base="100", growth="2")  # level grows by 2 per month
    fc = forecast_next(history)
    # the true value is 172 × 1.2 = 206.4; the naive method says 148 × 1.2 = 177.6.
    # Seasonal factors measured against year means lag the trend a little at the end.
    assert Decimal("190") <= fc.usage <= Decimal("206.4")
    flat_naive = forecast_next(history, method="last_year").usage
    assert flat_naive == history[24][1]  # January a year earlier
    assert fc.usage > flat_naive  # follows the growth the naive method misses


def test_seasonal_trend_beats_linear_regression_on_seasonal_data() -> None:
    histories = [seasonal(36, base=str(150 + 10 * i), noise=0.05, seed=i) for i in range(8)]
    rows = {r.method: r for r in backtest(histories)}
    assert set(rows) == {*METHODS, COMMUNITY_METHOD}
    assert rows["seasonal_trend"].mae < rows["linear"].mae / 2
    assert rows[COMMUNITY_METHOD].mae <= rows["last_year"].mae
    assert all(r.forecasts == 8 * 24 for r in rows.values())
    assert rows[COMMUNITY_METHOD].coverage > Decimal(70)


def test_last_year_and_linear_methods() -> None:
    history = seasonal(14)  # Jan 2023 .. Feb 2024
    last_year = forecast_next(history, method="last_year")
    assert last_year.period_start == date(2024, 3, 1)
    assert last_year.usage == Decimal("160.000")  # March 2023
    linear_hist = [(d, Decimal(10 + 5 * k)) for k, d in enumerate(months(date(2024, 1, 1), 6))]
    linear = forecast_next(linear_hist, method="linear")
    assert linear.usage == Decimal("40.000") and linear.method == "linear"
    assert linear.lower == linear.upper == linear.usage  # a perfect fit has no spread


def test_last_year_without_a_year_falls_back_to_the_last_value() -> None:
    history = seasonal(5)
    assert forecast_next(history, method="last_year").usage == history[-1][1]


def test_short_histories_fall_back() -> None:
    rising = [(d, Decimal(100 + 10 * k)) for k, d in enumerate(months(date(2025, 1, 1), 6))]
    fc = forecast_next(rising)
    assert fc.method == "damped_trend"
    assert fc.usage == Decimal("155.000")  # last 150, slope 10 damped by half
    two = forecast_next(rising[:2])
    assert two.method == "mean" and two.usage == Decimal("105.000")
    one = forecast_next(rising[:1])
    assert one.usage == Decimal("100.000") and one.lower == Decimal(0)


def test_community_prior_gives_a_season_to_short_histories() -> None:
    community = community_factors([seasonal(24, base=str(100 + i)) for i in range(5)])
    assert community is not None
    assert community[7] == pytest.approx(Decimal("1.6"), abs=Decimal("0.0001"))
    short = seasonal(6, start=date(2025, 1, 1))  # Jan..Jun 2025 -> July
    fc = forecast_next(short, seasonal_prior=community)
    assert fc.method == "seasonal_trend"
    assert fc.usage == Decimal("320.000")  # level 200 × July factor 1.6
    assert forecast_next(short).usage < Decimal("250")  # without a season, no July peak


def test_community_factors_respect_the_cutoff() -> None:
    histories = [seasonal(24)]
    assert community_factors(histories, before=date(2023, 6, 1)) is None
    assert community_factors(histories, before=date(2024, 1, 1)) is not None
    assert community_factors([]) is None


def test_seasonal_factors_have_mean_one() -> None:
    factors = seasonal_factors(seasonal(24, noise=0.1, seed=3))
    assert set(factors) == set(range(1, 13))
    assert sum(factors.values()) == pytest.approx(Decimal(12), abs=Decimal("1e-20"))
    assert factors[7] > factors[4]


def test_gaps_and_order_do_not_matter() -> None:
    history = seasonal(30)
    shuffled = history[::-1]
    assert forecast_next(shuffled) == forecast_next(history)
    with_gap = history[:10] + history[11:]
    fc = forecast_next(with_gap)
    assert fc.period_start == date(2025, 7, 1)
    assert fc.usage == Decimal("320.000")


def test_zero_usage_history() -> None:
    zeros = [(d, Decimal(0)) for d in months(date(2023, 1, 1), 24)]
    fc = forecast_next(zeros)
    assert fc.usage == Decimal(0) and fc.lower == Decimal(0)
    vacant_summer = seasonal(24)
    vacant_summer[18] = (vacant_summer[18][0], Decimal(0))
    assert forecast_next(vacant_summer).usage >= 0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        forecast_next([])
    with pytest.raises(TypeError):
        forecast_next([(date(2025, 1, 1), 12.5)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="non-negative"):
        forecast_next([(date(2025, 1, 1), Decimal(-1))])
    with pytest.raises(ValueError, match="non-negative"):
        forecast_next([(date(2025, 1, 1), Decimal("NaN"))])
    with pytest.raises(ValueError, match="two usage"):
        forecast_next([(date(2025, 1, 1), Decimal(1)), (date(2025, 1, 15), Decimal(2))])
    with pytest.raises(ValueError, match="unknown forecast method"):
        forecast_next(seasonal(3), method="prophet")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        forecast_next([("2025-01-01", Decimal(1))])  # type: ignore[list-item]


def test_format_backtest() -> None:
    table = format_backtest(backtest([seasonal(15)], community=False))
    assert table.splitlines()[0].startswith("| method | forecasts | MAE | MAPE %")
    assert "| seasonal_trend | 3 |" in table and COMMUNITY_METHOD not in table
