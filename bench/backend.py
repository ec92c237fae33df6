"""Billing backend benchmarks: bulk seed, balance latency, payment throughput, bill generation.

Usage (run from the repository root, with ``nice -n 10`` on a shared machine)::

    createdb -h 127.0.0.1 -U postgres billtalk_bench
    .venv/bin/python bench/backend.py seed --url postgresql+psycopg://postgres@127.0.0.1/billtalk_bench
    .venv/bin/python bench/backend.py seed --url sqlite:///var/bench/billtalk_bench.db
    .venv/bin/python bench/backend.py balance --url URL
    .venv/bin/python bench/backend.py payments --url URL --clients 4 --seconds 30
    .venv/bin/python bench/backend.py generate --url URL [--repeats 3]
    .venv/bin/python bench/backend.py generate-household --url URL [--households 1000]

Every measurement prints one JSON object to stdout (progress bars go to stderr)
and, with ``--record FILE``, appends it as a JSON line to FILE.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

# This script is bench/backend.py: keep the repository root ahead of bench/ on the
# path, or "import backend" would find this file instead of the backend package.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
sys.path.insert(0, str(_BENCH.parent))
sys.path.append(str(_BENCH))

TODAY = date(2026, 11, 22)


def _emit(result: dict[str, Any], record: Path | None) -> None:
    line = json.dumps(result, default=str)
    print(line, flush=True)
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        with record.open("a") as fh:
            fh.write(line + "\n")


def cmd_seed(args: argparse.Namespace) -> dict[str, Any]:
    from backend_seed import seed

    started = time.perf_counter()
    plan = seed(
        args.url, households=args.households, months=args.months, today=TODAY, chunk=args.chunk
    )
    return {
        "bench": "seed",
        "url": _safe(args.url),
        "households": args.households,
        "months": args.months,
        "seconds": round(time.perf_counter() - started, 1),
        "first_period": plan.history[0],
        "last_period": plan.history[-1],
        "next_period": plan.next_period,
    }


def _stats(samples_ms: Sequence[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(samples_ms)
    return {
        "n": int(a.size),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "mean_ms": round(float(a.mean()), 3),
    }


def _summarise(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Median and spread (min-max) of p50/p95 over repeated runs."""
    import statistics

    out: dict[str, Any] = {"runs": runs}
    for key in ("p50_ms", "p95_ms", "cpu_p50_ms", "cpu_p95_ms"):
        if key not in runs[0]:
            continue
        values = [r[key] for r in runs]
        out[key] = statistics.median(values)
        out[key.replace("_ms", "_range_ms")] = [min(values), max(values)]
    return out


def _households(url: str) -> list[str]:
    from sqlalchemy import select

    from backend.adapters import orm
    from billtalk.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        ids = list(conn.execute(select(orm.Household.household_id)).scalars())
    engine.dispose()
    ids.sort()
    return ids


def cmd_balance(args: argparse.Namespace) -> dict[str, Any]:
    """Balance latency: raw query, service layer, and the API in-process (ASGI)."""
    import asyncio
    import random

    import httpx
    from sqlalchemy import select
    from tqdm import tqdm

    from backend.adapters import orm
    from backend.api.app import create_app
    from backend.service_layer import services
    from backend.service_layer.unit_of_work import UnitOfWork
    from billtalk.db import make_engine

    ids = _households(args.url)
    rng = random.Random(args.seed)
    engine = make_engine(args.url)
    bills = orm.Bill.__table__
    credits = orm.HouseholdCredit.__table__
    unpaid_q = (
        select(
            bills.c.bill_id,
            bills.c.utility,
            bills.c.period_start,
            bills.c.total,
            bills.c.amount_paid,
        )
        .where(bills.c.household_id == _param("h"), bills.c.status != "paid")
        .order_by(bills.c.period_start, bills.c.utility)
    )
    credit_q = select(credits.c.utility, credits.c.amount).where(
        credits.c.household_id == _param("h"), credits.c.amount > 0
    )

    def raw(hid: str) -> None:
        with engine.connect() as conn:
            conn.execute(unpaid_q, {"h": hid}).all()
            conn.execute(credit_q, {"h": hid}).all()

    def service(hid: str) -> None:
        services.balance(UnitOfWork(engine), hid, today=TODAY)

    token = services.issue_token(UnitOfWork(engine), "service", name="bench").token
    app = create_app(args.url)

    cpu: list[float] = []

    async def api_run(sample: list[str]) -> list[float]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        out = []
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as client:
            for hid in sample:
                t0 = time.perf_counter()
                c0 = time.process_time()
                r = await client.get(f"/api/v1/households/{hid}/balance")
                out.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"balance {hid}: {r.status_code} {r.text[:200]}")
        return out

    def timed(fn: Any, sample: list[str], label: str) -> list[float]:
        out = []
        for hid in tqdm(sample, desc=label, file=sys.stderr, leave=False, mininterval=5):
            t0 = time.perf_counter()
            c0 = time.process_time()
            fn(hid)
            out.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        return out

    result: dict[str, Any] = {
        "bench": "balance",
        "url": _safe(args.url),
        "households": len(ids),
        "queries_per_run": args.n,
        "repeats": args.repeats,
    }
    for label in ("raw", "service", "api"):
        runs = []
        warm = rng.sample(ids, min(args.warmup, len(ids)))
        if label == "api":
            asyncio.run(api_run(warm))
        else:
            timed(raw if label == "raw" else service, warm, f"{label} warm-up")
        for _ in range(args.repeats):
            sample = rng.sample(ids, min(args.n, len(ids)))
            cpu.clear()
            samples = (
                asyncio.run(api_run(sample))
                if label == "api"
                else timed(raw if label == "raw" else service, sample, label)
            )
            stats = _stats(samples)
            cpu_stats = _stats(cpu)
            stats.update({"cpu_p50_ms": cpu_stats["p50_ms"], "cpu_p95_ms": cpu_stats["p95_ms"]})
            runs.append(stats)
        result[label] = _summarise(runs)
    engine.dispose()
    app.state.engine.dispose()
    return result


def _param(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name)


def _payment_worker(
    url: str, hids: list[str], seconds: float, warmup: float, tag: str, amount: str, queue: Any
) -> None:
    """One concurrent client: pays small amounts for its own households until time is up."""
    import itertools

    from backend.gateway import get_gateway
    from backend.service_layer import services
    from backend.service_layer.unit_of_work import UnitOfWork
    from billtalk.db import make_engine

    engine = make_engine(url)
    uow = UnitOfWork(engine)
    gateway = get_gateway("sandbox")
    latencies: list[float] = []
    cpu_ms: list[float] = []
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + seconds
    counter = itertools.count()
    for hid in itertools.cycle(hids):
        now = time.perf_counter()
        if now >= stop:
            break
        k = next(counter)
        t0 = time.perf_counter()
        c0 = time.process_time()
        try:
            response, _ = services.create_payment(
                uow,
                gateway,
                hid,
                Decimal(amount),
                "card",
                f"bench-{tag}-{k}",
                payment_token="tok_success",
                source="bench",
            )
            status = str(response["status"])
        except Exception as exc:  # counted and reported, never hidden
            status = "error"
            name = getattr(exc, "code", type(exc).__name__)
            errors[name] = errors.get(name, 0) + 1
        t1 = time.perf_counter()
        if t0 >= measure_from:
            latencies.append((t1 - t0) * 1000)
            cpu_ms.append((time.process_time() - c0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
    engine.dispose()
    queue.put({"latencies": latencies, "cpu_ms": cpu_ms, "statuses": statuses, "errors": errors})


def cmd_payments(args: argparse.Namespace) -> dict[str, Any]:
    """Payment throughput with concurrent clients (one process each), via the service layer."""
    import multiprocessing as mp
    import random

    from sqlalchemy import select

    from backend.adapters import orm
    from billtalk.db import make_engine

    engine = make_engine(args.url)
    with engine.connect() as conn:
        owing = sorted(
            set(
                conn.execute(
                    select(orm.Bill.household_id).where(orm.Bill.status != "paid").limit(200_000)
                ).scalars()
            )
        )
    engine.dispose()
    rng = random.Random(args.seed)
    rng.shuffle(owing)
    results = []
    ctx = mp.get_context("spawn")
    for clients in args.clients:
        runs = []
        for rep in range(args.repeats):
            queue = ctx.Queue()
            tag = f"{int(time.time())}-{clients}-{rep}"
            per = max(1, len(owing) // clients)
            procs = [
                ctx.Process(
                    target=_payment_worker,
                    args=(
                        args.url,
                        owing[i * per : (i + 1) * per][:5000],
                        args.seconds,
                        args.warmup,
                        f"{tag}-{i}",
                        args.amount,
                        queue,
                    ),
                )
                for i in range(clients)
            ]
            for p in procs:
                p.start()
            outs = [queue.get() for _ in procs]
            for p in procs:
                p.join()
            latencies = [x for o in outs for x in o["latencies"]]
            statuses: dict[str, int] = {}
            errors: dict[str, int] = {}
            for o in outs:
                for k, v in o["statuses"].items():
                    statuses[k] = statuses.get(k, 0) + v
                for k, v in o["errors"].items():
                    errors[k] = errors.get(k, 0) + v
            run = {
                "clients": clients,
                "payments_per_s": round(statuses.get("succeeded", 0) / args.seconds, 1),
                "statuses": statuses,
                "errors": errors,
            }
            run.update(_stats(latencies) if latencies else {})
            cpu = [x for o in outs for x in o["cpu_ms"]]
            if cpu:
                run["client_cpu_ms_per_payment"] = round(sum(cpu) / len(cpu), 2)
            print(json.dumps(run), file=sys.stderr)
            runs.append(run)
        import statistics

        rates = [r["payments_per_s"] for r in runs]
        results.append(
            {
                "clients": clients,
                "payments_per_s": statistics.median(rates),
                "range": [min(rates), max(rates)],
                "runs": runs,
            }
        )
    return {
        "bench": "payments",
        "url": _safe(args.url),
        "seconds": args.seconds,
        "households_owing": len(owing),
        "results": results,
    }


def cmd_generate_household(args: argparse.Namespace) -> dict[str, Any]:
    """The per-household path (``generate_household_bills``) on slices of households."""
    from tqdm import tqdm

    from backend.service_layer import services
    from backend.service_layer.unit_of_work import UnitOfWork
    from billtalk.db import make_engine

    ids = _households(args.url)
    engine = make_engine(args.url)
    uow = UnitOfWork(engine)
    period = date.fromisoformat(args.period)
    runs = []
    offset = args.offset
    for rep in range(args.repeats):
        subset = ids[offset + rep * args.households : offset + (rep + 1) * args.households]
        if not subset:
            break
        t0, c0 = time.perf_counter(), time.process_time()
        for hid in tqdm(subset, desc=f"per household {period:%Y-%m} #{rep}", file=sys.stderr):
            services.generate_household_bills(uow, hid, period, today=TODAY)
        seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        runs.append(
            {
                "households": len(subset),
                "seconds": round(seconds, 2),
                "per_household_ms": round(seconds * 1000 / len(subset), 2),
                "client_cpu_ms_per_household": round(cpu_s * 1000 / len(subset), 2),
                "extrapolated_100k_s": round(seconds / len(subset) * 100_000, 1),
            }
        )
        print(json.dumps(runs[-1]), file=sys.stderr)
    _forget_month(engine, period)
    engine.dispose()
    import statistics

    per = [r["per_household_ms"] for r in runs]
    return {
        "bench": "generate-household",
        "url": _safe(args.url),
        "period": args.period,
        "total_households": len(ids),
        "runs": runs,
        "per_household_ms": statistics.median(per),
        "range_ms": [min(per), max(per)],
        "extrapolated_100k_s": round(statistics.median(per) * 100, 1),
    }


def cmd_generate(args: argparse.Namespace) -> dict[str, Any]:
    """The monthly bill run (``services.generate_bills``, set-based) over every household.

    Each repeat bills the whole month, then deletes what it wrote (bills, lines and
    their journal entries) so the next repeat starts from the same state.
    """
    import statistics

    from tqdm import tqdm

    from backend.service_layer import services
    from backend.service_layer.unit_of_work import UnitOfWork
    from billtalk.db import make_engine

    engine = make_engine(args.url)
    uow = UnitOfWork(engine)
    period = date.fromisoformat(args.period)
    households = len(_households(args.url))
    _forget_month(engine, period)
    runs = []
    for rep in range(args.repeats):
        bar = tqdm(
            total=households,
            desc=f"bill run {period:%Y-%m} #{rep}",
            unit="hh",
            file=sys.stderr,
            mininterval=2,
        )
        t0, c0 = time.perf_counter(), time.process_time()
        report = services.generate_bills(
            uow, period, today=TODAY, progress=bar.update, chunk=args.chunk, workers=args.workers
        )
        seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        bar.close()
        runs.append(
            {
                "households": households,
                "seconds": round(seconds, 1),
                "client_cpu_s": round(cpu_s, 1),
                "created": report.created,
                "unchanged": report.unchanged,
                "skipped": report.skipped,
            }
        )
        print(json.dumps(runs[-1]), file=sys.stderr)
        if rep < args.repeats - 1 or not args.keep:
            _forget_month(engine, period)
    engine.dispose()
    secs = [r["seconds"] for r in runs]
    return {
        "bench": "generate",
        "url": _safe(args.url),
        "period": args.period,
        "households": households,
        "chunk": args.chunk,
        "workers": args.workers,
        "runs": runs,
        "seconds": statistics.median(secs),
        "range_s": [min(secs), max(secs)],
    }


def _forget_month(engine: Any, period: date) -> None:
    """Delete a month's bills, lines and bill journal entries (to time the run again)."""
    from sqlalchemy import text

    suffix = f"%-{period:%Y%m}"
    with engine.begin() as conn:
        entries = "SELECT entry_id FROM journal_entries WHERE kind = 'bill' AND reference LIKE :s"
        conn.execute(
            text(f"DELETE FROM journal_lines WHERE entry_id IN ({entries})"), {"s": suffix}
        )
        conn.execute(
            text("DELETE FROM journal_entries WHERE kind = 'bill' AND reference LIKE :s"),
            {"s": suffix},
        )
        conn.execute(text("DELETE FROM bill_lines WHERE bill_id LIKE :s"), {"s": suffix})
        conn.execute(text("DELETE FROM bills WHERE period_start = :p"), {"p": period})


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--record", type=Path, default=None, help="append each result as a JSON line to this file"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seed", help="bulk-load a benchmark community into an empty database")
    p.add_argument("--url", required=True)
    p.add_argument("--households", type=int, default=100_000)
    p.add_argument("--months", type=int, default=24)
    p.add_argument("--chunk", type=int, default=500)
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("balance", help="balance-query latency (raw, service, API)")
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, default=2000, help="queries per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_balance)

    p = sub.add_parser("payments", help="payment throughput with concurrent clients")
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, nargs="+", default=[4])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--amount", default="5.00")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_payments)

    p = sub.add_parser("generate", help="the monthly bill run over every household")
    p.add_argument("--url", required=True)
    p.add_argument("--period", default="2026-11-01")
    p.add_argument("--chunk", type=int, default=1000, help="households per transaction")
    p.add_argument("--workers", type=int, default=1, help="worker processes (PostgreSQL)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the last run's bills")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("generate-household", help="the per-household path, on slices")
    p.add_argument("--url", required=True)
    p.add_argument("--period", default="2026-11-01")
    p.add_argument("--households", type=int, default=1000, help="households per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--offset", type=int, default=0)
    p.set_defaults(func=cmd_generate_household)
    args = parser.parse_args(argv)
    _emit(args.func(args), args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
