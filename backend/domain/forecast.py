"""Next month's usage forecast per meter, from its monthly history.

Pure functions, exact :class:`~decimal.Decimal` arithmetic, no database.

Methods
-------
``seasonal_trend`` (the default)
    Linear trend on the deseasonalised series, times a monthly seasonal factor:

    1. **Seasonal factors.** Each month's usage is divided by the mean of a
       12-month window around it (the most centred full window the history has),
       and the ratios are averaged per calendar month, then normalised to mean 1.
       Two or more years average out one year's noise; one year is used as is.
    2. **Trend.** The deseasonalised series (usage / factor) of the last 24 months
       at most is fitted with least squares. The slope is damped
       (:data:`TREND_DAMPING`) so one odd month does not swing next month's figure.
    3. **Forecast** = (level + damped slope) × next month's factor, with a 95 %
       band from the fit's residuals (never below zero).

    With fewer than 12 months there is no season to learn: it falls back to a
    damped linear trend on the last 6 months (``damped_trend``) and, under 3
    months, to their mean (``mean``). The result's ``method`` names what was used.

``last_year``
    The naive seasonal baseline: the same month one year earlier (the last value
    when there is none).

``linear``
    Seed 001's method: ordinary least squares of usage on the month index over
    the whole history.

:func:`backtest` replays a set of histories month by month and reports each
method's MAE and MAPE (``bench/backend_forecast.py`` prints it; the numbers are in
``bench/RESULTS.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from itertools import pairwise
from typing import Final, Literal

Method = Literal["seasonal_trend", "last_year", "linear"]

#: Backtest name of ``seasonal_trend`` run with :func:`community_factors` as its prior.
COMMUNITY_METHOD: Final = "seasonal_trend+community"

#: The methods :func:`forecast_next` accepts.
METHODS: Final[tuple[Method, ...]] = ("seasonal_trend", "last_year", "linear")

#: Share of the fitted monthly slope carried into the forecast (0 = flat, 1 = full).
TREND_DAMPING: Final = Decimal("0.5")
#: At most this many recent months are used to fit the trend.
TREND_WINDOW: Final = 24
#: How many years of a meter's own history the community prior counts as.
PRIOR_WEIGHT_YEARS: Final = 2
#: z-score of the two-sided 95 % band.
Z95: Final = Decimal("1.96")
#: Usage is reported with three places, like meter values (``Numeric(14, 3)``).
QUANTUM: Final = Decimal("0.001")

_ZERO = Decimal(0)
_ONE = Decimal(1)
_CONTEXT: Final = Context(prec=28, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class ForecastResult:
    """A forecast of one period's usage.

    Attributes:
        period_start: First day of the forecast month.
        usage: Expected usage (never negative), three places.
        method: The method actually used: ``seasonal_trend``, ``damped_trend``,
            ``mean``, ``last_year`` or ``linear``.
        lower: Lower end of the 95 % band (never negative).
        upper: Upper end of the 95 % band.
        history_months: How many months of history it was computed from.
    """

    period_start: date
    usage: Decimal
    method: str
    lower: Decimal
    upper: Decimal
    history_months: int


@dataclass(frozen=True, slots=True)
class BacktestRow:
    """One method's error over a backtest.

    Attributes:
        method: The method name.
        forecasts: How many one-month-ahead forecasts were scored.
        mae: Mean absolute error, in usage units.
        mape: Mean absolute percentage error (months with zero actual usage are
            left out of it), in percent.
        coverage: Share of actual values inside the forecast's 95 % band, in percent.
    """

    method: str
    forecasts: int
    mae: Decimal
    mape: Decimal
    coverage: Decimal


def _month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


def _from_index(i: int) -> date:
    return date(i // 12, i % 12 + 1, 1)


def _q(value: Decimal) -> Decimal:
    return max(value, _ZERO).quantize(QUANTUM, rounding=ROUND_HALF_UP)


def _normalise(history: Iterable[tuple[date, Decimal]]) -> list[tuple[int, Decimal]]:
    points: list[tuple[int, Decimal]] = []
    for period_start, usage in history:
        if not isinstance(period_start, date):
            raise TypeError("history periods must be dates")
        if isinstance(usage, bool) or not isinstance(usage, Decimal | int):
            raise TypeError(f"usage must be a Decimal, not {type(usage).__name__}")
        value = Decimal(usage)
        if not value.is_finite() or value < 0:
            raise ValueError(f"usage must be a finite, non-negative number, got {usage}")
        points.append((_month_index(period_start), value))
    points.sort(key=lambda p: p[0])
    for (a, _), (b, _) in pairwise(points):
        if a == b:
            raise ValueError(f"two usage values for {_from_index(a):%Y-%m}")
    return points


def _ols(xs: Sequence[Decimal], ys: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """Least-squares intercept and slope of ``ys`` on ``xs`` (slope 0 for one point)."""
    n = Decimal(len(xs))
    mx = sum(xs, _ZERO) / n
    my = sum(ys, _ZERO) / n
    sxx = sum(((x - mx) ** 2 for x in xs), _ZERO)
    if sxx == 0:
        return my, _ZERO
    sxy = sum(((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)), _ZERO)
    slope = sxy / sxx
    return my - slope * mx, slope


def _band(residuals: Sequence[Decimal], dof: int) -> Decimal:
    if dof <= 0 or not residuals:
        return _ZERO
    variance = sum((r * r for r in residuals), _ZERO) / Decimal(dof)
    return Z95 * variance.sqrt()


def _result(start: date, usage: Decimal, method: str, band: Decimal, n: int) -> ForecastResult:
    return ForecastResult(
        period_start=start,
        usage=_q(usage),
        method=method,
        lower=_q(usage - band),
        upper=_q(usage + band),
        history_months=n,
    )


def _mean_forecast(points: list[tuple[int, Decimal]], target: int) -> ForecastResult:
    recent = [v for _, v in points[-3:]]
    mean = sum(recent, _ZERO) / Decimal(len(recent))
    band = _band([v - mean for v in recent], len(recent) - 1) if len(recent) > 1 else mean
    return _result(_from_index(target), mean, "mean", band, len(points))


def _damped_trend(points: list[tuple[int, Decimal]], target: int) -> ForecastResult:
    recent = points[-6:]
    xs = [Decimal(i) for i, _ in recent]
    ys = [v for _, v in recent]
    intercept, slope = _ols(xs, ys)
    last_x = xs[-1]
    level = intercept + slope * last_x
    steps = Decimal(target) - last_x
    usage = level + TREND_DAMPING * slope * steps
    residuals = [y - (intercept + slope * x) for x, y in zip(xs, ys, strict=True)]
    return _result(
        _from_index(target), usage, "damped_trend", _band(residuals, len(recent) - 2), len(points)
    )


def _linear(points: list[tuple[int, Decimal]], target: int) -> ForecastResult:
    xs = [Decimal(i) for i, _ in points]
    ys = [v for _, v in points]
    intercept, slope = _ols(xs, ys)
    residuals = [y - (intercept + slope * x) for x, y in zip(xs, ys, strict=True)]
    usage = intercept + slope * Decimal(target)
    return _result(
        _from_index(target), usage, "linear", _band(residuals, len(points) - 2), len(points)
    )


def _last_year(points: list[tuple[int, Decimal]], target: int) -> ForecastResult:
    by_index = dict(points)
    same_month = by_index.get(target - 12)
    usage = same_month if same_month is not None else points[-1][1]
    # the naive method has no model of its own error: use the year-on-year changes seen
    changes = [v - by_index[i - 12] for i, v in points if i - 12 in by_index]
    return _result(
        _from_index(target), usage, "last_year", _band(changes, len(changes)), len(points)
    )


def seasonal_factors(history: Sequence[tuple[date, Decimal]]) -> dict[int, Decimal]:
    """Multiplicative seasonal factor per calendar month, mean 1, from ≥ 12 months.

    Args:
        history: ``(period_start, usage)`` per month.

    Returns:
        ``{month: factor}`` with months 1-12; a month never seen gets 1.
    """
    with localcontext(_CONTEXT):
        factors, _ = _factors_and_counts(_normalise(history))
    return {m + 1: f for m, f in factors.items()}


def community_factors(
    histories: Iterable[Sequence[tuple[date, Decimal]]], *, before: date | None = None
) -> dict[int, Decimal] | None:
    """Pooled seasonal factors of many meters of one utility (month 1-12 -> factor).

    One household's single year of history is a noisy estimate of its season; the
    community's meters together give a steady one. Pass the result to
    :func:`forecast_next` as ``seasonal_prior``.

    Args:
        histories: Monthly histories of meters of the same utility.
        before: Only use months before this date (for honest backtests).

    Returns:
        The mean of the meters' factors, normalised to mean 1; ``None`` when no
        meter has 12 months of history.
    """
    limit = _month_index(before) if before is not None else None
    sums = dict.fromkeys(range(12), _ZERO)
    meters = 0
    with localcontext(_CONTEXT):
        for history in histories:
            points = _normalise(history)
            if limit is not None:
                points = [p for p in points if p[0] < limit]
            if len(points) < 12 or points[-1][0] - points[0][0] < 11:
                continue
            factors, _ = _factors_and_counts(points)
            for m, f in factors.items():
                sums[m] += f
            meters += 1
        if meters == 0:
            return None
        total = sum(sums.values(), _ZERO)
        return {m + 1: sums[m] * 12 / total for m in range(12)}


def _factors_and_counts(
    points: Sequence[tuple[int, Decimal]],
) -> tuple[dict[int, Decimal], dict[int, int]]:
    """Own factors per month of year (0-11, mean 1) and how many years back each."""
    by_index = dict(points)
    first, last = points[0][0], points[-1][0]
    # every full run of 12 consecutive months, with its mean
    windows: list[tuple[int, Decimal]] = []
    for start in range(first, last - 10):
        values = [by_index.get(i) for i in range(start, start + 12)]
        if all(v is not None for v in values):
            windows.append((start, sum((v for v in values if v is not None), _ZERO) / 12))
    # Each month is compared with the mean of the most centred full year around it.
    # (Moving that mean along the trend of successive window means was tried: it
    # removes a small end-of-history bias under steady growth but adds more noise
    # than it removes on realistic histories, see bench/backend_forecast.py.)
    half = Decimal("5.5")
    ratios: dict[int, list[Decimal]] = {}
    for i, value in points:
        # the most centred window containing month i
        best: tuple[int, Decimal] | None = None
        for start, mean in windows:
            if start <= i < start + 12 and (
                best is None or abs(i - start - half) < abs(i - best[0] - half)
            ):
                best = (start, mean)
        if best is None:
            continue
        level = best[1]
        if level > 0:
            ratios.setdefault(i % 12, []).append(value / level)
    raw = {m: sum(r, _ZERO) / Decimal(len(r)) for m, r in ratios.items()}
    counts = {m: len(r) for m, r in ratios.items()}
    for m in range(12):
        raw.setdefault(m, _ONE)
    total = sum(raw.values(), _ZERO)
    if total == 0:
        return dict.fromkeys(range(12), _ONE), counts
    scale = Decimal(12) / total
    return {m: f * scale for m, f in raw.items()}, counts


def _blend(
    own: Mapping[int, Decimal], years: Mapping[int, int], prior: Mapping[int, Decimal] | None
) -> dict[int, Decimal]:
    if prior is None:
        return dict(own)
    weight = PRIOR_WEIGHT_YEARS
    mixed = {
        m: (own[m] * years.get(m, 0) + Decimal(prior.get(m, _ONE)) * weight)
        / (years.get(m, 0) + weight)
        for m in range(12)
    }
    scale = Decimal(12) / sum(mixed.values(), _ZERO)
    return {m: f * scale for m, f in mixed.items()}


def _seasonal_trend(
    points: list[tuple[int, Decimal]], target: int, prior: Mapping[int, Decimal] | None
) -> ForecastResult:
    own, years = _factors_and_counts(points)
    factors = _blend(own, years, prior)
    fit = [(i, v, factors[i % 12]) for i, v in points[-TREND_WINDOW:]]
    usable = [(Decimal(i), v / f, f, v) for i, v, f in fit if f > 0]
    if not usable:
        return _result(_from_index(target), _ZERO, "seasonal_trend", _ZERO, len(points))
    xs = [x for x, _, _, _ in usable]
    ds = [d for _, d, _, _ in usable]
    intercept, slope = _ols(xs, ds)
    last_x = xs[-1]
    level = intercept + slope * last_x
    deseasonalised = level + TREND_DAMPING * slope * (Decimal(target) - last_x)
    factor = factors[target % 12]
    usage = deseasonalised * factor
    # Residuals in deseasonalised units, scaled back by the target month's factor.
    # The factors were fitted on the same months, which hides part of the noise:
    # count each factor estimated from the meter alone as a spent degree of freedom,
    # and widen by the uncertainty of the target month's factor itself.
    residuals = [d - (intercept + slope * x) for x, d, _, _ in usable]
    own_share = 1 if prior is None else Decimal(1) / (1 + PRIOR_WEIGHT_YEARS)
    dof = len(usable) - 2 - int(11 * own_share)
    sd = _band(residuals, dof) if dof > 0 else _band(residuals, 1)
    effective_years = Decimal(years.get(target % 12, 0)) + (
        PRIOR_WEIGHT_YEARS if prior is not None else 0
    )
    widen = (1 + 1 / max(effective_years, _ONE)).sqrt()
    band = sd * widen * factor
    return _result(_from_index(target), usage, "seasonal_trend", band, len(points))


def forecast_next(
    history: Sequence[tuple[date, Decimal]],
    *,
    method: Method = "seasonal_trend",
    seasonal_prior: Mapping[int, Decimal] | None = None,
) -> ForecastResult:
    """Forecast the usage of the month after the last one in ``history``.

    Args:
        history: ``(period_start, usage)`` per month, in any order; months may be
            missing, but each month appears at most once. ``period_start`` is any
            day of the month (the month is what counts).
        method: ``seasonal_trend`` (default), ``last_year`` or ``linear``; see
            the module docstring.
        seasonal_prior: Community seasonal factors (month 1-12 -> factor, from
            :func:`community_factors`), blended with the meter's own. Used by
            ``seasonal_trend`` only; it also gives a season to histories shorter
            than a year.

    Returns:
        The forecast for the month after the latest in ``history``.

    Raises:
        ValueError: ``history`` is empty, has a month twice, a negative or
            non-finite usage, or ``method`` is unknown.
        TypeError: a usage is a ``float`` (use ``Decimal``).

    Example::

        >>> from datetime import date
        >>> from decimal import Decimal
        >>> h = [(date(2025, m, 1), Decimal(100 + m)) for m in range(1, 13)]
        >>> forecast_next(h).period_start
        datetime.date(2026, 1, 1)
    """
    if method not in METHODS:
        raise ValueError(f"unknown forecast method {method!r}; expected one of {METHODS}")
    points = _normalise(history)
    if not points:
        raise ValueError("cannot forecast from an empty history")
    target = points[-1][0] + 1
    with localcontext(_CONTEXT):
        if method == "last_year":
            return _last_year(points, target)
        if method == "linear":
            return _linear(points, target)
        prior = (
            {m - 1: Decimal(f) for m, f in seasonal_prior.items()}
            if seasonal_prior is not None
            else None
        )
        span = points[-1][0] - points[0][0] + 1
        if (span >= 12 and len(points) >= 12) or (prior is not None and len(points) >= 3):
            return _seasonal_trend(points, target, prior)
        if len(points) >= 3:
            return _damped_trend(points, target)
        return _mean_forecast(points, target)


History = Sequence[tuple[date, Decimal]]


def backtest(
    histories: Iterable[History] | Mapping[str, History],
    *,
    methods: Sequence[Method] = METHODS,
    min_history: int = 12,
    community: bool = True,
) -> list[BacktestRow]:
    """Score each method on one-month-ahead forecasts replayed through the histories.

    For every history and every month ``t`` after the first ``min_history``, each
    method forecasts month ``t`` from the months before it; the errors against the
    actual usage are pooled per method.

    Args:
        histories: Monthly histories (a mapping's values are used).
        methods: The methods to compare.
        min_history: Months of history required before the first scored forecast.
        community: Also score ``seasonal_trend`` with community factors
            (:data:`COMMUNITY_METHOD`), pooled from all ``histories`` using only
            months before each forecast month.

    Returns:
        One :class:`BacktestRow` per method, in the order of ``methods``, then the
        community variant.
    """
    if isinstance(histories, Mapping):
        histories = histories.values()
    pool = [sorted(h, key=lambda p: p[0]) for h in histories]
    names: list[str] = list(methods)
    if community and "seasonal_trend" in methods:
        names.append(COMMUNITY_METHOD)
    abs_errors: dict[str, list[Decimal]] = {m: [] for m in names}
    pct_errors: dict[str, list[Decimal]] = {m: [] for m in names}
    inside: dict[str, int] = dict.fromkeys(names, 0)
    priors: dict[date, dict[int, Decimal] | None] = {}
    with localcontext(_CONTEXT):
        for points in pool:
            for t in range(min_history, len(points)):
                actual = Decimal(points[t][1])
                for m in names:
                    if m == COMMUNITY_METHOD:
                        cutoff = points[t][0]
                        if cutoff not in priors:
                            priors[cutoff] = community_factors(pool, before=cutoff)
                        fc = forecast_next(points[:t], seasonal_prior=priors[cutoff])
                    else:
                        fc = forecast_next(points[:t], method=m)  # type: ignore[arg-type]
                    error = abs(fc.usage - actual)
                    abs_errors[m].append(error)
                    if actual > 0:
                        pct_errors[m].append(error / actual * 100)
                    inside[m] += fc.lower <= actual <= fc.upper
        rows = []
        for m in names:
            n = len(abs_errors[m])
            rows.append(
                BacktestRow(
                    method=m,
                    forecasts=n,
                    mae=(sum(abs_errors[m], _ZERO) / n).quantize(QUANTUM) if n else _ZERO,
                    mape=(sum(pct_errors[m], _ZERO) / len(pct_errors[m])).quantize(Decimal("0.01"))
                    if pct_errors[m]
                    else _ZERO,
                    coverage=(Decimal(inside[m]) * 100 / n).quantize(Decimal("0.1"))
                    if n
                    else _ZERO,
                )
            )
    return rows


def format_backtest(rows: Sequence[BacktestRow]) -> str:
    """Render backtest rows as a Markdown table."""
    lines = [
        "| method | forecasts | MAE | MAPE % | 95 % band coverage % |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {r.method} | {r.forecasts} | {r.mae} | {r.mape} | {r.coverage} |" for r in rows]
    return "\n".join(lines)
