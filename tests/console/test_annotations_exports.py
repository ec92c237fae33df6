"""Annotation queue and its Rasa export, conversation exports, dashboards (real HTTP, real DBs)."""

from __future__ import annotations

import csv
import io
import json

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store import TurnRow
from console.annotations import export_rasa
from console.models import AuditRow
from tests.console.helpers import add_conversation, login, page_csrf


def _turn_ids(engine, cid: str) -> list[int]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return list(
            s.scalars(
                select(TurnRow.id).where(TurnRow.conversation_id == cid).order_by(TurnRow.turn)
            )
        )


def test_annotate_twice_keeps_the_latest_and_exports_rasa_yaml(console_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from nlu.rasa_yaml import load_training_data

    e = console_env.engine
    cid = add_conversation(
        e,
        "H0101",
        [
            {"text": "pay 300 for the water please", "intent": "check_balance", "confidence": 0.41},
            {"text": "blah blah", "intent": "nlu_fallback", "confidence": 0.2},
        ],
    )
    first, second = _turn_ids(e, cid)
    sup = login(console_env.base, "super1")
    csrf = page_csrf(sup)
    url = f"/console/conversations/{cid}/turns/{first}/annotate"
    assert sup.post(url, data={"csrf_token": csrf, "intent": "check_balance"}).status_code == 303
    r = sup.post(
        url,
        data={
            "csrf_token": csrf,
            "intent": "pay_bill",
            "entities": "amount=300.00@300\nutility=water",
        },
    )
    assert r.status_code == 303
    assert (
        sup.post(
            f"/console/conversations/{cid}/turns/{second}/annotate",
            data={"csrf_token": csrf, "intent": "out_of_scope"},
        ).status_code
        == 303
    )
    # bad input is refused clearly
    bad = sup.post(url, data={"csrf_token": csrf, "intent": "Pay Bill!"})
    assert bad.status_code == 400
    bad = sup.post(
        url, data={"csrf_token": csrf, "intent": "pay_bill", "entities": "amount=999@999"}
    )
    assert bad.status_code == 400 and "not in the message" in bad.text
    queue = sup.get("/console/annotations").text
    assert "pay 300 for the water please" in queue and "pay_bill" in queue
    exported = sup.get("/console/annotations/nlu.yml")
    assert exported.status_code == 200
    doc = yaml.safe_load(exported.text)
    assert doc["version"] == "3.1"
    by_intent = {item["intent"]: item["examples"] for item in doc["nlu"]}
    assert set(by_intent) == {"pay_bill", "out_of_scope"}  # the first annotation was replaced
    assert '[300]{"entity": "amount", "value": "300.00"}' in by_intent["pay_bill"]
    assert "[water](utility)" in by_intent["pay_bill"]
    # Rasa's format, as the NLU trainer reads it
    path = tmp_path / "nlu.yml"
    path.write_text(export_rasa(e), encoding="utf-8")
    data = load_training_data(path)
    examples = [(ex.text, ex.intent) for ex in data.examples]
    assert ("pay 300 for the water please", "pay_bill") in examples
    with Session(e) as s:
        actions = set(s.scalars(select(AuditRow.action).where(AuditRow.actor == "staff:super1")))
    assert {"annotate", "export"} <= actions


def test_conversation_export_is_masked_unless_a_supervisor_unmasks(console_env) -> None:  # type: ignore[no-untyped-def]
    e = console_env.engine
    add_conversation(
        e,
        "H0101",
        [
            {
                "text": "call me 13812345678",
                "masked": "call me [phone]",
                "intent": "help",
                "verification": [
                    {
                        "kind": "voice",
                        "decision": "accept",
                        "score": 0.7,
                        "details": {"media": "SECRET"},
                    }
                ],
            },
        ],
    )
    add_conversation(e, "H0201", [{"text": "other building", "intent": "greet"}])
    sup = login(console_env.base, "super1")
    lines = sup.get("/console/export?format=jsonl").text.splitlines()
    rows = [json.loads(x) for x in lines]
    assert len(rows) == 1  # only building B1
    assert rows[0]["text"] == "call me [phone]" and rows[0]["masked"] is True
    assert rows[0]["verification"] == [{"kind": "voice", "decision": "accept", "score": 0.7}]
    table = list(csv.DictReader(io.StringIO(sup.get("/console/export?format=csv").text)))
    assert table[0]["text"] == "call me [phone]"
    page = sup.get("/console/conversations?intent=help").text
    assert 'action="/console/export"' in page and 'name="intent" value="help"' in page
    csrf = page_csrf(sup)
    assert (
        sup.post(
            "/console/export", data={"csrf_token": csrf, "format": "jsonl", "reason": ""}
        ).status_code
        == 400
    )
    r = sup.post(
        "/console/export",
        data={"csrf_token": csrf, "format": "jsonl", "reason": "police request 77"},
    )
    assert json.loads(r.text.splitlines()[0])["text"] == "call me 13812345678"
    with Session(e) as s:
        data = [
            json.loads(d)
            for d in s.scalars(select(AuditRow.data).where(AuditRow.action == "export"))
        ]
    assert any(d.get("unmasked") and d.get("reason") == "police request 77" for d in data)


def test_dashboards_render_png_and_csv(console_env) -> None:  # type: ignore[no-untyped-def]
    from console.dashboards import CHARTS

    e = console_env.engine
    add_conversation(
        e,
        "H0101",
        [
            {"text": "pay", "intent": "pay_bill", "payment_ids": ["p1"], "latency_ms": 30.0},
            {"text": "hmm", "intent": "nlu_fallback", "actions": ["fallback"], "latency_ms": 90.0},
        ],
    )
    add_conversation(
        e, "H0101", [{"text": "human", "intent": "human_handoff"}], status="waiting_for_staff"
    )
    sup = login(console_env.base, "super1")
    page = sup.get("/console/dashboard")
    assert page.status_code == 200 and "Containment" in page.text
    assert page.text.count("<svg") == 6 and "<polyline" in page.text  # inline assistant charts
    assert page.text.count('<img src="/console/charts/') == 4  # billing charts as images
    for name in CHARTS:
        png = sup.get(f"/console/charts/{name}.png")
        assert png.status_code == 200, name
        assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert sup.get(f"/console/charts/{name}.csv").status_code == 200
    rows = list(csv.reader(io.StringIO(sup.get("/console/charts/rates.csv").text)))
    assert rows[0] == ["day", "containment", "fallback_rate", "handoff_rate"]
    _, containment, fallback, handoff = rows[1]
    assert (float(containment), float(fallback), float(handoff)) == (0.5, 0.3333, 0.5)
    pay = list(csv.reader(io.StringIO(sup.get("/console/charts/payments.csv").text)))
    assert pay[1][1] == "1"
    lat = list(csv.reader(io.StringIO(sup.get("/console/charts/latency.csv").text)))
    assert float(lat[1][1]) >= 30.0
    assert sup.get("/console/charts/nope.png").status_code == 404


def test_closed_days_are_counted_once_and_stored(console_env) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from console.dashboards import clear_cache
    from console.models import DailyStatsRow

    e = console_env.engine
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    add_conversation(
        e,
        "H0101",
        [
            {"text": "pay", "intent": "pay_bill", "payment_ids": ["p1"]},
            {"text": "??", "intent": "nlu_fallback", "actions": ["fallback"]},
        ],
        at=three_days_ago.replace(hour=10),
    )
    add_conversation(
        e,
        "H0201",
        [{"text": "other building", "intent": "greet"}],
        at=three_days_ago.replace(hour=10),
    )
    sup = login(console_env.base, "super1")  # building B1 only
    rows = list(csv.reader(io.StringIO(sup.get("/console/charts/payments.csv").text)))
    day = three_days_ago.date().isoformat()
    assert [day, "1"] in rows
    with Session(e) as s:
        stored = {
            r.day: json.loads(r.data)
            for r in s.scalars(select(DailyStatsRow).where(DailyStatsRow.scope_key == "B1"))
        }
    assert len(stored) == 30  # every closed day of the window, empty ones too
    assert stored[day]["turns"] == 2 and stored[day]["paid"] == 1 and stored[day]["fallback"] == 1
    # the next computation reads the stored day (a turn written into a closed day later,
    # which the engine never does, would not change it)
    with Session(e) as s, s.begin():
        s.query(DailyStatsRow).filter(DailyStatsRow.day == day).update(
            {"data": json.dumps({**stored[day], "paid": 7.0})}
        )
    clear_cache()
    rows = list(csv.reader(io.StringIO(sup.get("/console/charts/payments.csv").text)))
    assert [day, "7"] in rows


def test_svg_charts_escape_their_labels() -> None:
    from console.svg import chart

    out = chart(
        {"columns": ["day", "<script>x</script>"], "rows": [["2026-12-01", 3]]}, title='"><script>'
    )
    assert "<script>" not in out and "&lt;script&gt;x&lt;/script&gt;" in out
    assert chart({"columns": ["day", "n"], "rows": []}).endswith("</svg>")
    bars = chart(
        {"columns": ["bucket", "amount"], "rows": [["1-30", "10.50"], ["90+", "2"]]}, kind="bar"
    )
    assert bars.count("<rect") == 2 + 1  # two bars and the legend swatch


def test_billing_charts_from_the_backend_reports(fresh_url: str) -> None:
    from decimal import Decimal

    from backend.demo import seed
    from billtalk.db import make_engine
    from console.accounts import add_staff
    from console.web import create_console_app
    from tests.console.helpers import PASSWORD, serve

    seed(fresh_url, households=4, months=2)
    engine = make_engine(fresh_url)
    add_staff(engine, "boss", "supervisor", PASSWORD, None)
    add_staff(engine, "b_only", "supervisor", PASSWORD, ["B"])
    app = create_console_app(fresh_url)
    try:
        with serve(app) as base:
            everyone, b_only = login(base, "boss"), login(base, "b_only")

            def table(client, name: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
                text = client.get(f"/console/charts/{name}.csv").text
                return list(csv.DictReader(io.StringIO(text)))

            rows = table(everyone, "revenue")
            assert rows and {r["utility"] for r in rows} >= {"electricity", "water"}
            total = sum(Decimal(r["revenue"]) for r in rows)
            part = sum(Decimal(r["revenue"]) for r in table(b_only, "revenue"))
            assert Decimal("0") < part < total  # building B only
            arrears = table(everyone, "arrears")
            assert [r["bucket"] for r in arrears] == ["current", "1-30", "31-60", "61-90", "90+"]
            assert everyone.get("/console/charts/forecast.png").content[:4] == b"\x89PNG"
            usage = table(everyone, "usage")
            assert usage and all(Decimal(r["usage"]) >= 0 for r in usage)
    finally:
        app.state.console.engine.dispose()
        engine.dispose()
