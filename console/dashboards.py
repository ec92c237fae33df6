"""Supervisor dashboards: the assistant's numbers and billing's, as PNG charts and CSV.

Assistant (from the conversation log, last 30 days, within the staff member's
buildings): conversations per day, containment (conversations that finished
without a person), fallback rate, handoff rate and waiting time, payments made
through the assistant, step-up verification pass/fail, turn latency p95.
Billing (from the backend's report services): revenue by utility and month,
arrears by age bucket, usage trend, next month's forecast.

Charts are drawn on the server with matplotlib (Agg); every chart's numbers
are also served as CSV. Money stays ``Decimal`` until it is drawn.

The assistant's numbers scan 30 days of the log; they are computed once per
staff scope and kept for :data:`CACHE_S` seconds, so the page and its charts
(and several supervisors) share one computation.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.store import ConversationRow, EventRow, TurnRow
from console.models import DailyStatsRow
from console.queries import OUTCOME_SQL, WAITING, Reader, Scope

DAYS = 30
#: Seconds the assistant's numbers are reused before they are computed again.
CACHE_S = 60.0
_cache: dict[tuple[Any, ...], tuple[float, Any]] = {}


def _cached(kind: str, engine: Engine, scope: Scope, compute: Any) -> Any:
    """``compute()``, reused for :data:`CACHE_S` seconds per (kind, database, scope)."""
    key = (kind, str(engine.url), scope.buildings)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now - hit[0] < CACHE_S:
        return hit[1]
    value = compute()
    _cache[key] = (now, value)
    return value


def clear_cache() -> None:
    """Forget the cached numbers (tests, benchmarks)."""
    _cache.clear()


#: name -> (English title, Chinese title)
CHARTS: dict[str, tuple[str, str]] = {
    "conversations": ("Conversations per day", "每日会话数"),
    "rates": ("Containment, fallback and handoff rates", "自助率、未理解率与转人工率"),
    "handoff_wait": ("Handoff waiting time (minutes)", "转人工等待时间（分钟）"),
    "payments": ("Payments through the assistant", "通过助手的付款"),
    "stepup": ("Step-up verification pass / fail", "加强验证通过 / 失败"),
    "latency": ("Turn latency p95 (ms)", "每轮耗时 p95（毫秒）"),
    "revenue": ("Revenue by utility and month", "按费用类型和月份的收入"),
    "arrears": ("Arrears by age", "欠费账龄"),
    "usage": ("Usage trend", "用量趋势"),
    "forecast": ("Next month's forecast", "下月预测"),
}

#: Charts of the assistant's numbers (drawn inline on the dashboard page).
ASSISTANT_CHARTS = ("conversations", "rates", "handoff_wait", "payments", "stepup", "latency")

Table = dict[str, Any]  # {"columns": [...], "rows": [[...], ...]}


def _since(days: int = DAYS) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def _scoped(q: Any, reader: Reader, scope: Scope) -> Any:
    clause = reader._scope_clause(scope)
    return q if clause is None else q.where(clause)


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def _turn_days(engine: Engine, reader: Reader, scope: Scope) -> Any:
    return _cached("_turn_days", engine, scope, lambda: _turn_days_uncached(engine, reader, scope))


#: Turn tests counted per day, exactly the predicates of the console's partial indexes
#: on ``bot_turns (at)`` (migration 0003), so each count reads only its index.
DAY_FLAGS = {
    "fallback": OUTCOME_SQL["fallback"],
    "paid": OUTCOME_SQL["paid"],
    "stepup_pass": 'bot_turns.verification LIKE \'%"decision": "accept"%\'',
    "stepup_fail": OUTCOME_SQL["stepup_failed"],
}


def _utc_day(engine: Engine) -> Any:
    """The UTC calendar day of a turn, as SQL."""
    if engine.dialect.name == "postgresql":
        return func.date(func.timezone("UTC", TurnRow.at))
    return func.date(TurnRow.at)  # SQLite keeps UTC timestamps


def _midnight(days_ago: int = 0) -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=days_ago)


def _turn_days_uncached(
    engine: Engine, reader: Reader, scope: Scope
) -> dict[str, dict[str, float]]:
    """The last 30 days and today, by UTC day.

    Closed days are read from ``console_daily_stats`` (computed once per scope and
    stored: their turns no longer change); only the missing days and today are
    counted from the log.
    """
    today = _midnight()
    first = _midnight(DAYS)
    key = ",".join(scope.buildings) if scope.buildings is not None else "*"
    wanted = [(first + timedelta(days=i)).date().isoformat() for i in range(DAYS)]
    with Session(engine) as s:
        have = {
            r.day: json.loads(r.data)
            for r in s.scalars(
                select(DailyStatsRow).where(
                    DailyStatsRow.scope_key == key, DailyStatsRow.day.in_(wanted)
                )
            )
        }
    missing = [d for d in wanted if d not in have]
    if missing:
        start = datetime.fromisoformat(missing[0]).replace(tzinfo=UTC)
        counted = _count_days(engine, reader, scope, start, today)
        rows = []
        for d in missing:
            have[d] = counted.get(d, _empty_day())
            rows.append(
                DailyStatsRow(
                    scope_key=key, day=d, data=json.dumps(have[d]), computed_at=datetime.now(UTC)
                )
            )
        try:
            with Session(engine) as s, s.begin():
                s.add_all(rows)
        except IntegrityError:  # another request stored them meanwhile: same numbers
            pass
    have.update(_count_days(engine, reader, scope, today, None))
    return {k: v for k, v in sorted(have.items()) if v["turns"]}


def _empty_day() -> dict[str, float]:
    return {k: 0.0 for k in ("turns", "active", "handoff", *DAY_FLAGS)}


def _count_days(
    engine: Engine, reader: Reader, scope: Scope, start: datetime, end: datetime | None
) -> dict[str, dict[str, float]]:
    """The day numbers counted from the log for turns in ``[start, end)``."""
    t = TurnRow
    day = _utc_day(engine).label("day")
    households = reader.scope_households(scope)

    def scoped(q: Any) -> Any:
        q = q.where(t.at >= start).group_by(day)
        if end is not None:
            q = q.where(t.at < end)
        return q if households is None else q.where(t.household_id.in_(households or ["-"]))

    out: dict[str, dict[str, float]] = defaultdict(_empty_day)
    postgres = engine.dialect.name == "postgresql"
    with Session(engine) as s:
        columns = [day, func.count(), func.count(func.distinct(t.conversation_id))]
        if postgres:  # turn latency p95 in the same index-only scan
            columns.append(func.percentile_cont(0.95).within_group(t.latency_ms))
        for row in s.execute(scoped(select(*columns))):
            d = out[_day(row[0])]
            d["turns"], d["active"] = float(row[1]), float(row[2])
            if postgres:
                d["latency_p95"] = float(row[3] or 0)
        for name, predicate in DAY_FLAGS.items():
            for d_, n in s.execute(scoped(select(day, func.count()).where(text(predicate)))):
                out[_day(d_)][name] = float(n)
        handed = select(day, func.count(func.distinct(t.conversation_id))).where(
            text("intent = 'human_handoff'")
        )
        for d_, n in s.execute(scoped(handed)):
            out[_day(d_)]["handoff"] = float(n)
    return dict(out)


def _latency_p95(engine: Engine, reader: Reader, scope: Scope) -> Any:
    return _cached(
        "_latency_p95", engine, scope, lambda: _latency_p95_uncached(engine, reader, scope)
    )


def _latency_p95_uncached(engine: Engine, reader: Reader, scope: Scope) -> dict[str, float]:
    t, c = TurnRow, ConversationRow
    if engine.dialect.name == "postgresql":  # computed in the same scan as the other numbers
        days = _turn_days(engine, reader, scope)
        return {d: float(v.get("latency_p95") or 0) for d, v in days.items()}
    q = (
        select(func.date(t.at), t.latency_ms)
        .join(c, c.id == t.conversation_id)
        .where(t.at >= _since())
    )
    per: dict[str, list[float]] = defaultdict(list)
    with Session(engine) as s:
        for d, ms in s.execute(_scoped(q, reader, scope)):
            per[_day(d)].append(float(ms or 0))
    out = {}
    for d, values in per.items():
        values.sort()
        out[d] = values[max(0, math.ceil(0.95 * len(values)) - 1)]
    return out


def _handoff_waits(engine: Engine, reader: Reader, scope: Scope) -> Any:
    return _cached(
        "_handoff_waits", engine, scope, lambda: _handoff_waits_uncached(engine, reader, scope)
    )


def _handoff_waits_uncached(engine: Engine, reader: Reader, scope: Scope) -> dict[str, list[float]]:
    """Minutes from the resident's handoff request to a staff take-over, by request day."""
    t, e = TurnRow, EventRow
    households = reader.scope_households(scope)
    asked = (
        select(t.conversation_id, func.min(t.at))
        .where(t.at >= _since(), text("intent = 'human_handoff'"))  # a partial index's test
        .group_by(t.conversation_id)
    )
    if households is not None:
        asked = asked.where(t.household_id.in_(households or ["-"]))
    with Session(engine) as s:
        requests = dict(s.execute(asked).all())
        taken = dict(
            s.execute(
                select(e.conversation_id, func.min(e.at))
                .where(e.event == "handoff_taken", e.at >= _since())
                .group_by(e.conversation_id)
            ).all()
        )
    out: dict[str, list[float]] = defaultdict(list)
    for cid, at in requests.items():
        if cid in taken:
            a, b = _aware(at), _aware(taken[cid])
            out[_day(a.date())].append(max(0.0, (b - a).total_seconds() / 60))
    return out


def _aware(v: datetime) -> datetime:
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v


def assistant_summary(engine: Engine, reader: Reader, scope: Scope) -> dict[str, str]:
    """Headline numbers of the last 30 days (for the dashboard page)."""
    days = _turn_days(engine, reader, scope)
    turns = sum(d["turns"] for d in days.values())
    active = sum(d["active"] for d in days.values())
    handoff = sum(d["handoff"] for d in days.values())
    fallback = sum(d["fallback"] for d in days.values())
    with Session(engine) as s:
        waiting = s.scalar(
            _scoped(
                select(func.count())
                .select_from(ConversationRow)
                .where(ConversationRow.status == WAITING),
                reader,
                scope,
            )
        )
    return {
        "sum_turns": f"{int(turns)}",
        "sum_containment": f"{(1 - handoff / active) * 100:.1f} %" if active else "-",
        "sum_fallback": f"{fallback / turns * 100:.1f} %" if turns else "-",
        "sum_handoff": f"{handoff / active * 100:.1f} %" if active else "-",
        "sum_waiting": f"{int(waiting or 0)}",
    }


def chart_data(
    name: str, engine: Engine, billing_engine: Engine, reader: Reader, scope: Scope
) -> Table:
    """The numbers behind chart ``name`` as a table (``columns``, ``rows``)."""
    if name in ("conversations", "rates", "payments", "stepup"):
        days = _turn_days(engine, reader, scope)
        c = ConversationRow
        q = (
            select(func.date(c.created_at), func.count())
            .where(c.created_at >= _since())
            .group_by(func.date(c.created_at))
        )

        def count_started() -> dict[str, int]:
            with Session(engine) as s:
                return {_day(d): n for d, n in s.execute(_scoped(q, reader, scope))}

        started = _cached("started", engine, scope, count_started)
        keys = sorted(set(days) | set(started))
        if name == "conversations":
            return {
                "columns": ["day", "conversations_started", "conversations_active"],
                "rows": [
                    [k, started.get(k, 0), int(days.get(k, {}).get("active", 0))] for k in keys
                ],
            }
        if name == "rates":
            rows = []
            for k in keys:
                d = days.get(k)
                if not d or not d["turns"]:
                    continue
                rows.append(
                    [
                        k,
                        round(1 - d["handoff"] / d["active"], 4),
                        round(d["fallback"] / d["turns"], 4),
                        round(d["handoff"] / d["active"], 4),
                    ]
                )
            return {
                "columns": ["day", "containment", "fallback_rate", "handoff_rate"],
                "rows": rows,
            }
        if name == "payments":
            return {
                "columns": ["day", "payments"],
                "rows": [[k, int(days[k]["paid"])] for k in keys if k in days],
            }
        return {
            "columns": ["day", "passed", "failed"],
            "rows": [
                [k, int(days[k]["stepup_pass"]), int(days[k]["stepup_fail"])]
                for k in keys
                if k in days
            ],
        }
    if name == "latency":
        p95 = _latency_p95(engine, reader, scope)
        return {
            "columns": ["day", "latency_p95_ms"],
            "rows": [[k, round(v, 1)] for k, v in sorted(p95.items())],
        }
    if name == "handoff_wait":
        waits = _handoff_waits(engine, reader, scope)
        rows = []
        for k in sorted(waits):
            v = sorted(waits[k])
            rows.append([k, len(v), round(v[len(v) // 2], 1), round(max(v), 1)])
        return {
            "columns": ["day", "handoffs_taken", "median_wait_min", "max_wait_min"],
            "rows": rows,
        }
    return _cached(
        f"billing:{name}", billing_engine, scope, lambda: _billing(name, billing_engine, scope)
    )


def _billing(name: str, engine: Engine, scope: Scope) -> Table:
    from backend.service_layer import reports
    from backend.service_layer.unit_of_work import UnitOfWork

    uow = UnitOfWork(engine)
    allowed = None if scope.buildings is None else set(scope.buildings)
    if name in ("revenue", "usage"):
        rows = [
            r
            for r in reports.report_usage_revenue(uow)
            if allowed is None or r["building_id"] in allowed
        ]
        acc: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for r in rows:
            value = r["revenue"] if name == "revenue" else (r["usage"] or "0")
            acc[(r["month"], r["utility"])] += Decimal(value)
        col = "revenue" if name == "revenue" else "usage"
        return {
            "columns": ["month", "utility", col],
            "rows": [[m, u, str(v)] for (m, u), v in sorted(acc.items())],
        }
    if name == "arrears":
        report = reports.report_arrears(uow)
        buckets: dict[str, Decimal] = defaultdict(Decimal)
        for h in report["households"]:
            if allowed is None or h["building_id"] in allowed:
                for k, v in h["buckets"].items():
                    buckets[k] += Decimal(v)
        order = [name for name, _, _ in reports.AGING_BUCKETS]
        return {
            "columns": ["bucket", "amount"],
            "rows": [[k, str(buckets.get(k, Decimal("0.00")))] for k in order],
        }
    if name == "forecast":
        from backend.adapters.orm import Household

        with Session(engine) as s:
            building = dict(s.execute(select(Household.household_id, Household.building_id)).all())
        acc2: dict[str, Decimal] = defaultdict(Decimal)
        for f in reports.report_forecasts(uow, limit=400):
            if allowed is None or building.get(f["household_id"]) in allowed:
                acc2[f["utility"]] += Decimal(str(f["amount_estimate"]))
        return {
            "columns": ["utility", "amount_estimate"],
            "rows": [[u, str(v)] for u, v in sorted(acc2.items())],
        }
    raise KeyError(name)


def to_csv(table: Table) -> str:
    """A table as CSV text."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(table["columns"])
    w.writerows(table["rows"])
    return buf.getvalue()


def render_png(name: str, table: Table, lang: str = "en") -> bytes:
    """Chart ``name`` as a PNG image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = CHARTS[name][0]  # matplotlib's default fonts have no CJK glyphs
    fig, ax = plt.subplots(figsize=(5.6, 3.0), dpi=100)
    cols, rows = table["columns"], table["rows"]
    try:
        if not rows:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        elif name in ("revenue", "usage"):
            series: dict[str, dict[str, float]] = defaultdict(dict)
            for month, utility, value in rows:
                series[utility][month] = float(value)
            months = sorted({r[0] for r in rows})
            for utility, values in sorted(series.items()):
                ax.plot(months, [values.get(m, 0.0) for m in months], marker="o", label=utility)
            ax.legend(fontsize=7)
            ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        elif name in ("arrears", "forecast"):
            ax.bar([str(r[0]) for r in rows], [float(r[1]) for r in rows], color="#2d6cdf")
        else:
            xs = [r[0][5:] for r in rows]
            for i, col in enumerate(cols[1:], start=1):
                ax.plot(xs, [float(r[i]) for r in rows], marker=".", label=col)
            ax.legend(fontsize=7)
            step = max(1, len(xs) // 10)
            ax.set_xticks(
                range(0, len(xs), step),
                [xs[i] for i in range(0, len(xs), step)],
                fontsize=7,
                rotation=45,
            )
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)
