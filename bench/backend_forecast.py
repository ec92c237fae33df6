"""Backtest the usage forecast against the naive last-year baseline and seed 001's regression.

Usage::

    .venv/bin/python bench/backend_forecast.py [--households 300] [--months 36] [--seed 1]
        [--database-url URL] [--out bench/results/backend_forecast.png]

Generates realistic seasonal histories (summer air-conditioning peaks for
electricity, winter peaks for gas, a mild summer peak for water; household size,
yearly drift, vacations and noise), replays one-month-ahead forecasts for every
month after the first year, and prints a Markdown table of MAE / MAPE per
utility and method. With ``--database-url`` it also backtests the meter histories
stored in a billtalk database (e.g. the demo community). A bar chart of MAPE goes
to ``--out``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.domain.forecast import BacktestRow, backtest, format_backtest

History = list[tuple[date, Decimal]]

#: Month-of-year shape (Jan..Dec) of each utility, as multiples of the yearly mean.
SHAPES: dict[str, Sequence[float]] = {
    # northern-China-style: AC in Jul-Aug, some electric heating in Jan
    "electricity": (1.15, 1.00, 0.85, 0.75, 0.85, 1.10, 1.55, 1.60, 1.10, 0.80, 0.85, 1.10),
    "gas": (1.90, 1.70, 1.30, 0.90, 0.60, 0.45, 0.40, 0.40, 0.55, 0.85, 1.30, 1.75),
    "water": (0.90, 0.85, 0.90, 0.95, 1.05, 1.15, 1.20, 1.20, 1.05, 0.95, 0.90, 0.90),
}
BASE: dict[str, tuple[float, float]] = {  # typical monthly mean (low, high)
    "electricity": (120.0, 420.0),
    "gas": (15.0, 60.0),
    "water": (6.0, 18.0),
}


def synthetic_history(
    utility: str, months: int, rng: random.Random, start: date = date(2023, 1, 1)
) -> History:
    """One household's monthly usage of ``utility`` (quantities with 3 places)."""
    low, high = BASE[utility]
    mean = rng.uniform(low, high)
    drift = rng.gauss(0.0, 0.06)  # yearly growth or decline of the household's use
    amplitude = rng.uniform(0.7, 1.3)  # how strongly this household follows the season
    noise = rng.uniform(0.04, 0.12)
    history: History = []
    for k in range(months):
        y, m = divmod(start.month - 1 + k, 12)
        period = date(start.year + y, m + 1, 1)
        season = 1.0 + amplitude * (SHAPES[utility][m] - 1.0)
        level = mean * (1.0 + drift) ** (k / 12)
        value = level * season * math.exp(rng.gauss(0.0, noise))
        if rng.random() < 0.03:  # away for part of the month
            value *= rng.uniform(0.2, 0.6)
        history.append((period, Decimal(f"{max(value, 0.0):.3f}")))
    return history


def synthetic_histories(households: int, months: int, seed: int) -> dict[str, list[History]]:
    """``households`` histories per metered utility, deterministic for ``seed``."""
    rng = random.Random(seed)
    return {
        utility: [synthetic_history(utility, months, rng) for _ in range(households)]
        for utility in SHAPES
    }


def database_histories(url: str) -> dict[str, list[History]]:
    """Monthly usage per meter from billed bills in a billtalk database."""
    from sqlalchemy import select

    from backend.adapters import orm
    from billtalk.db import make_engine

    engine = make_engine(url)
    bills = orm.Bill.__table__  # through the ORM's column types: exact decimals on SQLite too
    query = (
        select(bills.c.household_id, bills.c.utility, bills.c.period_start, bills.c.usage)
        .where(bills.c.usage.is_not(None))
        .order_by(bills.c.household_id, bills.c.utility, bills.c.period_start)
    )
    series: dict[tuple[str, str], History] = {}
    with engine.connect() as conn:
        for household_id, utility, period_start, usage in conn.execute(query):
            series.setdefault((str(household_id), utility), []).append((period_start, usage))
    engine.dispose()
    out: dict[str, list[History]] = {}
    for (_, utility), history in series.items():
        out.setdefault(utility, []).append(history)
    return out


def run(
    groups: dict[str, list[History]], label: str, min_history: int
) -> dict[str, list[BacktestRow]]:
    results: dict[str, list[BacktestRow]] = {}
    for utility, histories in tqdm(groups.items(), desc=f"backtest {label}", file=sys.stderr):
        results[utility] = backtest(histories, min_history=min_history)
    return results


def report(results: dict[str, list[BacktestRow]], title: str, households: int) -> str:
    parts = [f"**{title}** ({households} histories per utility)", ""]
    for utility, rows in results.items():
        parts += [f"*{utility}*", "", format_backtest(rows), ""]
    return "\n".join(parts)


def plot(all_results: dict[str, dict[str, list[BacktestRow]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(all_results.items())
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (title, results) in zip(axes[0], panels, strict=True):
        utilities = list(results)
        methods = [r.method for r in results[utilities[0]]]
        width = 0.8 / len(methods)
        for j, method in enumerate(methods):
            values = [
                float(next(r.mape for r in results[u] if r.method == method)) for u in utilities
            ]
            xs = [i + j * width for i in range(len(utilities))]
            ax.bar(xs, values, width=width, label=method)
        ax.set_xticks(
            [i + width * (len(methods) - 1) / 2 for i in range(len(utilities))], utilities
        )
        ax.set_ylabel("MAPE, % (lower is better)")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=300)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-history", type=int, default=12)
    parser.add_argument(
        "--database-url",
        default=None,
        help="also backtest the bills stored in this billtalk database",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/backend_forecast.png"))
    args = parser.parse_args(argv)

    all_results: dict[str, dict[str, list[BacktestRow]]] = {}
    synthetic = synthetic_histories(args.households, args.months, args.seed)
    all_results["synthetic"] = run(synthetic, "synthetic", args.min_history)
    print(
        report(
            all_results["synthetic"],
            f"Synthetic histories, {args.months} months, seed {args.seed}",
            args.households,
        )
    )
    if args.database_url:
        stored = database_histories(args.database_url)
        months = max((len(h) for hs in stored.values() for h in hs), default=0)
        all_results["database"] = run(stored, "database", min(args.min_history, months - 1))
        print(
            report(
                all_results["database"],
                f"Stored bills ({months} months)",
                max((len(h) for h in stored.values()), default=0),
            )
        )
    plot(all_results, args.out)
    print(f"plot: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
