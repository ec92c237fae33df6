"""Staff console benchmark: the conversation list and the dashboard on PostgreSQL.

Builds (once; ``--rebuild`` to redo) a database with 100,000 conversations and
1,000,000 turns (10 a conversation, 90 days, 20 buildings × 500 households,
skewed intents, 20 % Chinese, 1 % waiting for staff, tags on 5 %, reviewed on
10 %), generated set-based in PostgreSQL. Then serves the console on loopback
(uvicorn in a thread, as ``billtalk serve`` does) and times real HTTP requests:

* the conversation list, first page and 3 following pages by keyset cursor, for
  each filter combination in :data:`COMBOS`, as an admin (every building) and as
  an agent of 2 buildings;
* the supervisor dashboard: the first view of a scope (30 closed days counted
  and stored), then cold (its 60 s cache cleared; closed days read back): the page (the
  assistant's numbers and their 6 inline SVG charts), and as a browser loads it
  (the page, then its 4 billing chart images over 6 connections).

Usage::

    nice -n 5 .venv/bin/python bench/console.py [--url URL] [--rebuild] [--repeats 5]

Writes ``bench/results/console.json`` and ``bench/results/console.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("BILLTALK_SECRET_KEY", "bench-secret-key")

DEFAULT_ADMIN = os.environ.get(
    "BILLTALK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DB_NAME = "billtalk_console_bench"
PASSWORD = "bench-password-1"
CONVERSATIONS, TURNS_EACH, BUILDINGS, HOUSEHOLDS = 100_000, 10, 20, 10_000

#: Filter combinations timed (URL query strings).
COMBOS: dict[str, str] = {
    "none": "",
    "intent": "intent=pay_bill",
    "intent_rare": "intent=request_receipt",
    "intent+language": "intent=check_balance&language=zh",
    "conf_below": "conf_below=0.05",
    "conf_range+intent": "intent=usage&conf_above=0.5&conf_below=0.6",
    "outcome=fallback": "outcome=fallback",
    "outcome=paid+channel": "outcome=paid&channel=telegram",
    "outcome=stepup_failed": "outcome=stepup_failed",
    "outcome=error": "outcome=error",
    "outcome=handoff": "outcome=handoff",
    "date_range": "date_from={d30}&date_to={d20}",
    "date+intent+lang": "date_from={d30}&date_to={d20}&intent=due_date&language=en",
    "tag": "tag=billing-dispute",
    "reviewed=no+fallback": "reviewed=no&outcome=fallback",
    "unit": "unit=U-BB04-0123",
    "status=waiting": "status=waiting",
    "everything": "channel=terminal&language=en&intent=pay_bill&conf_below=0.9&"
    "conf_above=0.1&date_from={d60}&reviewed=no",
}

INTENTS = (
    ["check_balance"] * 8
    + ["pay_bill"] * 6
    + ["due_date"] * 4
    + ["explain_bill"] * 3
    + ["payment_history"] * 2
    + ["usage"] * 2
    + ["greet"] * 4
    + ["thank"] * 2
    + ["goodbye"] * 2
    + ["affirm"] * 3
    + [
        "deny",
        "cancel",
        "help",
        "human_handoff",
        "submit_meter_reading",
        "manage_autopay",
        "report_problem",
        "enroll_biometrics",
        "link_account",
    ]
    + ["nlu_fallback"] * 2
    + ["out_of_scope"] * 2
    + ["request_receipt"]
)


def _admin_url(url: str | None) -> tuple[str, str]:
    from sqlalchemy.engine import make_url

    if url:
        return url, url
    admin = DEFAULT_ADMIN
    return admin, make_url(admin).set(database=DB_NAME).render_as_string(hide_password=False)


def build(admin_url: str, url: str, rebuild: bool) -> dict[str, Any]:
    """Create and fill the bench database (unless it is already full)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from tqdm import tqdm

    from app.bootstrap import migrate_all
    from billtalk.db import make_engine
    from console.accounts import add_staff

    name = make_url(url).database
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).scalar()
        if exists and rebuild:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            exists = None
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = make_engine(url)
    migrate_all(url)
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM bot_turns")).scalar() or 0
    if have >= CONVERSATIONS * TURNS_EACH:
        with engine.begin() as conn:  # the agent's buildings (an earlier build used others)
            conn.execute(
                text(
                    "UPDATE console_staff SET buildings = 'BB01,BB11' "
                    "WHERE username = 'bench_agent'"
                )
            )
        _vacuum(engine)
        engine.dispose()
        return {"built": False, "seconds": 0.0}
    t0 = time.perf_counter()
    intents = "ARRAY[" + ",".join(f"'{i}'" for i in INTENTS) + "]"
    steps = [
        (
            "buildings",
            f"""INSERT INTO buildings (building_id, name, address)
            SELECT 'BB' || lpad(b::text, 2, '0'), 'Building ' || b, ''
            FROM generate_series(1, {BUILDINGS}) b""",
        ),
        (
            "households",
            f"""INSERT INTO households (household_id, building_id, unit, floor, area_m2,
                created_at)
            SELECT 'bh-' || lpad(h::text, 5, '0'),
                'BB' || lpad((h % {BUILDINGS} + 1)::text, 2, '0'),
                'U-BB' || lpad((h % {BUILDINGS} + 1)::text, 2, '0') || '-' || lpad(h::text, 4, '0'),
                1, 80, now()
            FROM generate_series(0, {HOUSEHOLDS - 1}) h""",
        ),
        (
            "conversations",
            f"""INSERT INTO bot_conversations (id, channel, external_user_id,
                resident_id, household_id, status, flagged, flag_reason, state, version, turns,
                created_at, updated_at)
            SELECT md5('c' || i)::uuid::text, (ARRAY['terminal','telegram','speaker'])[1 + i % 3],
                'u' || i, 'r-' || (i % {HOUSEHOLDS}),
                'bh-' || lpad((i % {HOUSEHOLDS})::text, 5, '0'),
                CASE WHEN i % 100 = 0 THEN 'waiting_for_staff' ELSE 'active' END, i % 100 = 0,
                CASE WHEN i % 100 = 0 THEN 'handoff' END, '{{}}', 0, {TURNS_EACH},
                ts, ts + interval '{TURNS_EACH * 20} seconds'
            FROM (SELECT i, now() - (random() * 90) * interval '1 day' AS ts
                  FROM generate_series(1, {CONVERSATIONS}) i) s""",
        ),
        (
            "turns",
            f"""INSERT INTO bot_turns (conversation_id, turn, at, channel, resident_id,
                household_id, session_id, text_raw, text_masked, language, intent, confidence,
                ranking, entities, slots_before, slots_after, actions, replies, verification,
                payment_ids, latency_ms, error)
            SELECT id, t, created_at + t * interval '20 seconds', channel, resident_id,
                household_id, 's', 'message ' || t, 'message ' || t,
                CASE WHEN random() < 0.2 THEN 'zh' ELSE 'en' END, intent,
                CASE WHEN intent IN ('nlu_fallback', 'out_of_scope') THEN random() * 0.45
                     ELSE 0.3 + random() * 0.7 END,
                '[]', '[]', '{{}}', '{{}}',
                CASE WHEN intent = 'nlu_fallback' THEN '["fallback"]'
                     ELSE '["' || intent || '"]' END,
                '[{{"text": "reply", "buttons": []}}]',
                CASE WHEN intent = 'pay_bill' AND random() < 0.05
                     THEN '[{{"decision": "reject", "kind": "pin", "score": null}}]' ELSE '[]' END,
                CASE WHEN intent = 'pay_bill' AND random() < 0.4 THEN '["pay-' || id || '"]'
                     ELSE '[]' END,
                5 + random() * 60 + CASE WHEN random() < 0.05 THEN 400 ELSE 0 END,
                CASE WHEN random() < 0.0005 THEN 'RuntimeError' END
            FROM (SELECT c.*, t, ({intents})[1 + floor(random() * {len(INTENTS)})::int] AS intent
                  FROM bot_conversations c CROSS JOIN generate_series(1, {TURNS_EACH}) t) x""",
        ),
        (
            "tags",
            """INSERT INTO console_tags (conversation_id, tag, added_by, at)
            SELECT id,
                (ARRAY['billing-dispute','tariff','bug','praise','follow-up'])
                    [1 + abs(hashtext(id)) % 5],
                'bench', now()
            FROM bot_conversations WHERE abs(hashtext(id || 't')) % 20 = 0""",
        ),
        (
            "reviews",
            """INSERT INTO console_reviews (conversation_id, reviewed, reviewed_by,
                updated_at)
            SELECT id, true, 'bench', now() FROM bot_conversations
            WHERE abs(hashtext(id || 'r')) % 10 = 0""",
        ),
    ]
    with tqdm(total=len(steps), desc="building", unit="step", file=sys.stderr) as bar:
        for label, sql in steps:
            bar.set_postfix_str(label)
            with engine.begin() as conn:
                conn.execute(text(sql))
            bar.update()
    _vacuum(engine)
    add_staff(engine, "bench_admin", "admin", PASSWORD, None)
    add_staff(engine, "bench_agent", "agent", PASSWORD, ["BB01", "BB11"])
    engine.dispose()
    return {"built": True, "seconds": round(time.perf_counter() - t0, 1)}


def _vacuum(engine: Any) -> None:
    """VACUUM ANALYZE: fresh statistics and visibility map, as autovacuum keeps them."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def _serve(url: str) -> tuple[Any, str]:
    import uvicorn

    from console.web import create_console_app
    from tests.console.helpers import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_console_app(url),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def _login(base: str, username: str) -> Any:
    import httpx

    from tests.console.helpers import csrf_of

    client = httpx.Client(base_url=base, follow_redirects=False, timeout=60)
    page = client.get("/console/login")
    r = client.post(
        "/console/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 303, r.text
    return client


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


def measure(base: str, db_url: str, repeats: int) -> dict[str, Any]:
    """Time the list (per combo and role) and the dashboard over real HTTP."""
    from datetime import timedelta

    from tqdm import tqdm

    today = datetime.now(UTC).date()
    dates = {f"d{n}": (today - timedelta(days=n)).isoformat() for n in (20, 30, 60)}
    clients = {"admin": _login(base, "bench_admin"), "agent": _login(base, "bench_agent")}
    next_link = re.compile(r'class="next" href="([^"]+)"')
    results: dict[str, Any] = {"list": {}, "dashboard": {}}
    for client in clients.values():  # warm the filter form's cache and the connections
        client.get("/console/conversations")
    total = len(COMBOS) * len(clients) * repeats
    with tqdm(total=total, desc="list pages", unit="combo", file=sys.stderr) as bar:
        for role, client in clients.items():
            for combo, query in COMBOS.items():
                query = query.format(**dates)
                times: list[float] = []
                rows_first = 0
                for _ in range(repeats):
                    url = f"/console/conversations?{query}"
                    for page in range(4):
                        t0 = time.perf_counter()
                        r = client.get(url)
                        times.append((time.perf_counter() - t0) * 1000)
                        assert r.status_code == 200, (combo, r.status_code)
                        if page == 0:
                            rows_first = r.text.count('class="conversation-row"')
                        m = next_link.search(r.text)
                        if not m:
                            break
                        url = m.group(1).replace("&amp;", "&")
                    bar.update()
                results["list"][f"{role}:{combo}"] = {
                    "role": role,
                    "combo": combo,
                    "query": query,
                    "requests": len(times),
                    "rows_first_page": rows_first,
                    "p50_ms": round(statistics.median(times), 1),
                    "p95_ms": round(_pct(times, 0.95), 1),
                    "max_ms": round(max(times), 1),
                }
    from sqlalchemy import create_engine, text

    from console.dashboards import clear_cache

    sup = clients["admin"]
    # The very first view of a scope counts 30 closed days and stores them.
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM console_daily_stats"))
    engine.dispose()
    clear_cache()
    t0 = time.perf_counter()
    assert sup.get("/console/dashboard").status_code == 200
    first_ever_ms = (time.perf_counter() - t0) * 1000
    # The page computes the assistant's numbers and draws its 6 charts inline (SVG);
    # the 4 billing charts are images (this data set has no bills: they are trivial here).
    paths = ["/console/dashboard"] + [
        f"/console/charts/{n}.png" for n in ("revenue", "arrears", "usage", "forecast")
    ]
    with tqdm(total=repeats * len(paths), desc="dashboard", unit="req", file=sys.stderr) as bar:
        per: dict[str, list[float]] = {p: [] for p in paths}
        totals: list[float] = []
        for _ in range(repeats):
            clear_cache()  # cold: the numbers are computed again, as after the cache expires
            whole = 0.0
            for p in paths:
                t0 = time.perf_counter()
                r = sup.get(p)
                ms = (time.perf_counter() - t0) * 1000
                assert r.status_code == 200, p
                per[p].append(ms)
                whole += ms
                bar.update()
            totals.append(whole)
    # As a browser loads it: the page, then its charts over 6 connections at once.
    from concurrent.futures import ThreadPoolExecutor

    loads: list[float] = []
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(repeats):
            clear_cache()
            t0 = time.perf_counter()
            assert sup.get(paths[0]).status_code == 200
            codes = list(pool.map(lambda p: sup.get(p).status_code, paths[1:]))
            assert codes == [200] * len(paths[1:])
            loads.append((time.perf_counter() - t0) * 1000)
    results["dashboard"] = {
        "first_view_of_a_scope_ms": round(first_ever_ms, 1),
        "browser_like_load_ms": {
            "median": round(statistics.median(loads), 1),
            "min": round(min(loads), 1),
            "max": round(max(loads), 1),
        },
        "requests": {
            p: {"p50_ms": round(statistics.median(v), 1), "max_ms": round(max(v), 1)}
            for p, v in per.items()
        },
        "page_plus_charts_sequential_ms": {
            "median": round(statistics.median(totals), 1),
            "min": round(min(totals), 1),
            "max": round(max(totals), 1),
        },
        "slowest_single_request_p50_ms": round(max(statistics.median(v) for v in per.values()), 1),
    }
    return results


def chart(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(results["list"].values(), key=lambda x: (x["combo"], x["role"]))
    fig, ax = plt.subplots(figsize=(9, 6))
    labels = [f"{x['combo']} ({x['role']})" for x in items]
    ax.barh(
        labels,
        [x["p95_ms"] for x in items],
        color=["#2d6cdf" if x["role"] == "admin" else "#e0823d" for x in items],
    )
    ax.axvline(150, color="red", linestyle="--", label="target p95 150 ms")
    ax.set_xlabel("p95 per page (ms), real HTTP, 100k conversations / 1M turns, PostgreSQL")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url",
        help="PostgreSQL URL of the bench database (default: a "
        f"database {DB_NAME} on BILLTALK_TEST_POSTGRES_URL's server)",
    )
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild the data")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    admin_url, url = _admin_url(args.url)
    built = build(admin_url, url, args.rebuild)
    server, base = _serve(url)
    try:
        results = measure(base, url, args.repeats)
    finally:
        server.should_exit = True
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    doc = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, Python "
        f"{platform.python_version()}, load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}",
        "data": {
            "conversations": CONVERSATIONS,
            "turns": CONVERSATIONS * TURNS_EACH,
            "buildings": BUILDINGS,
            "households": HOUSEHOLDS,
            **built,
        },
        "repeats": args.repeats,
        **results,
    }
    (out_dir / "console.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    chart(results, out_dir / "console.png")
    worst = max(results["list"].values(), key=lambda x: x["p95_ms"])
    print(
        json.dumps(
            {"worst_list_p95": worst, "dashboard": results["dashboard"]["browser_like_load_ms"]}
        )
    )


if __name__ == "__main__":
    main()
