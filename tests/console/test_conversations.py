"""The conversation list, transcript, staff actions, roles and buildings (real HTTP, real DBs)."""

from __future__ import annotations

import json
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store import ConversationRow, EventRow
from console.models import AuditRow
from tests.console.helpers import add_conversation, login, page_csrf


def _ids(html: str) -> set[str]:
    return set(re.findall(r'href="/console/conversations/([0-9a-f-]{36})"', html))


def _audit(engine) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return [(a, b) for a, b in s.execute(select(AuditRow.actor, AuditRow.action))]


def test_staff_see_only_their_buildings(console_env) -> None:  # type: ignore[no-untyped-def]
    e = console_env.engine
    b1 = add_conversation(e, "H0101", [{"text": "hello", "intent": "greet"}])
    b2 = add_conversation(e, "H0201", [{"text": "hi there", "intent": "greet"}])
    unlinked = add_conversation(e, None, [{"text": "who am I", "intent": "out_of_scope"}])
    agent1, agent2 = login(console_env.base, "agent1"), login(console_env.base, "agent2")
    admin = login(console_env.base, "admin1")
    assert _ids(agent1.get("/console/conversations").text) == {b1}
    assert _ids(agent2.get("/console/conversations").text) == {b2}
    assert _ids(admin.get("/console/conversations").text) == {b1, b2, unlinked}
    # another building's conversation is not found, and cannot be acted on
    assert agent1.get(f"/console/conversations/{b2}").status_code == 404
    csrf = page_csrf(agent1)
    assert (
        agent1.post(f"/console/conversations/{b2}/take", data={"csrf_token": csrf}).status_code
        == 404
    )
    assert (
        agent1.post(
            f"/console/conversations/{b2}/tags", data={"csrf_token": csrf, "tag": "x"}
        ).status_code
        == 404
    )
    assert agent1.get(f"/console/conversations/{b1}").status_code == 200
    # nor can its household be looked up by unit
    assert _ids(agent1.get("/console/conversations?unit=0201").text) == set()
    assert _ids(admin.get("/console/conversations?unit=0201").text) == {b2}


def test_filters_combine_and_live_in_the_url(console_env) -> None:  # type: ignore[no-untyped-def]
    e = console_env.engine
    pay = add_conversation(
        e,
        "H0101",
        [
            {"text": "pay water", "intent": "pay_bill", "confidence": 0.93, "payment_ids": ["p1"]},
        ],
    )
    low = add_conversation(
        e,
        "H0101",
        [
            {
                "text": "blorp",
                "intent": "nlu_fallback",
                "confidence": 0.21,
                "actions": ["fallback"],
            },
        ],
        channel="telegram",
    )
    zh = add_conversation(
        e,
        "H0102",
        [
            {"text": "交水费", "intent": "pay_bill", "confidence": 0.62, "language": "zh"},
        ],
    )
    failed = add_conversation(
        e,
        "H0102",
        [
            {
                "text": "1234",
                "intent": "pay_bill",
                "confidence": 0.9,
                "verification": [{"kind": "pin", "decision": "reject", "score": None}],
            },
        ],
    )
    err = add_conversation(
        e, "H0101", [{"text": "boom", "intent": "check_balance", "error": "Traceback"}]
    )
    hand = add_conversation(
        e,
        "H0101",
        [{"text": "a human please", "intent": "human_handoff"}],
        status="waiting_for_staff",
    )
    s = login(console_env.base, "super1")

    def ids(q: str) -> set[str]:
        r = s.get(f"/console/conversations?{q}")
        assert r.status_code == 200, r.text
        return _ids(r.text)

    assert ids("intent=pay_bill") == {pay, zh, failed}
    assert ids("intent=pay_bill&language=zh") == {zh}
    assert ids("intent=pay_bill&conf_below=0.7") == {zh}
    assert ids("conf_above=0.9") == {pay}
    assert ids("conf_below=0.5") == {low}
    assert ids("channel=telegram") == {low}
    assert ids("outcome=paid") == {pay}
    assert ids("outcome=fallback") == {low}
    assert ids("outcome=stepup_failed") == {failed}
    assert ids("outcome=error") == {err}
    assert ids("outcome=handoff") == {hand}
    assert ids("unit=0102") == {zh, failed}
    assert ids("household=H0102&intent=pay_bill&conf_above=0.8") == {failed}
    assert ids("date_from=2000-01-01&date_to=2000-01-02") == set()
    assert ids("date_from=2000-01-01") == {pay, low, zh, failed, err, hand}
    # tags and the reviewed flag
    csrf = page_csrf(s)
    assert (
        s.post(
            f"/console/conversations/{zh}/tags", data={"csrf_token": csrf, "tag": "Tariff question"}
        ).status_code
        == 303
    )
    assert (
        s.post(
            f"/console/conversations/{pay}/reviewed", data={"csrf_token": csrf, "reviewed": "yes"}
        ).status_code
        == 303
    )
    assert ids("tag=tariff question") == {zh}
    assert ids("reviewed=yes") == {pay}
    assert ids("reviewed=no&intent=pay_bill") == {zh, failed}
    # the form keeps the filter (bookmarkable): selected values are rendered back
    page = s.get("/console/conversations?intent=pay_bill&language=zh").text
    assert '<option value="pay_bill" selected>' in page
    # a malformed filter is a clear 400, not a crash
    bad = s.get("/console/conversations?conf_below=lots")
    assert bad.status_code == 400 and "conf_below" in bad.text
    assert s.get("/console/conversations?outcome=nope").status_code == 400


def test_keyset_pages_cover_everything_once(console_env) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    e = console_env.engine
    start = datetime(2026, 11, 1, tzinfo=UTC)
    made = {
        add_conversation(e, "H0101", [{"text": f"m{i}"}], at=start + timedelta(minutes=i))
        for i in range(120)
    }
    s = login(console_env.base, "agent1")
    seen: list[str] = []
    url = "/console/conversations"
    pages = 0
    while url:
        r = s.get(url)
        assert r.status_code == 200
        seen += re.findall(r'href="/console/conversations/([0-9a-f-]{36})"', r.text)
        m = re.search(r'class="next" href="([^"]+)"', r.text)
        url = m.group(1).replace("&amp;", "&") if m else ""
        pages += 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120 and set(seen) == made
    assert s.get("/console/conversations?after=garbage!").status_code == 400


def test_transcript_shows_nlu_masks_pii_for_agents_and_escapes_html(console_env) -> None:  # type: ignore[no-untyped-def]
    e = console_env.engine
    cid = add_conversation(
        e,
        "H0101",
        [
            {
                "text": "my card 4242 4242 4242 4242",
                "masked": "my card **** 4242",
                "intent": "pay_bill",
                "confidence": 0.8765,
                "entities": [{"entity": "utility", "value": "water", "start": 0, "end": 2}],
                "actions": ["pay_bill"],
                "payment_ids": ["pay-123"],
                "latency_ms": 41.0,
                "verification": [
                    {
                        "kind": "face",
                        "decision": "accept",
                        "score": 0.31,
                        "details": {"template": "SECRET-TEMPLATE"},
                    }
                ],
            },
            {"text": "<script>alert(1)</script>", "intent": "out_of_scope", "confidence": 0.12},
        ],
    )
    agent = login(console_env.base, "agent1")
    page = agent.get(f"/console/conversations/{cid}").text
    assert "my card **** 4242" in page and "4242 4242 4242 4242" not in page
    assert "pay_bill" in page and "0.88" in page and "0.12" in page
    assert "utility=water" in page and "pay-123" in page and "face accept" in page
    assert "SECRET-TEMPLATE" not in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<textarea" in page and 'name="text"' in page
    # an agent may not unmask; a supervisor may, with a reason, and it is audited
    csrf = page_csrf(agent)
    assert (
        agent.post(
            f"/console/conversations/{cid}/unmask",
            data={"csrf_token": csrf, "reason": "dispute 42"},
        ).status_code
        == 403
    )
    sup = login(console_env.base, "super1")
    csrf = page_csrf(sup)
    assert (
        sup.post(
            f"/console/conversations/{cid}/unmask", data={"csrf_token": csrf, "reason": ""}
        ).status_code
        == 400
    )
    r = sup.post(
        f"/console/conversations/{cid}/unmask",
        data={"csrf_token": csrf, "reason": "resident dispute #42"},
    )
    assert r.status_code == 200 and "4242 4242 4242 4242" in r.text
    assert ("staff:super1", "unmask") in _audit(e)


def test_take_reply_release_resolve_notes(console_env) -> None:  # type: ignore[no-untyped-def]
    e = console_env.engine
    cid = add_conversation(
        e,
        "H0101",
        [{"text": "I want a person", "intent": "human_handoff"}],
        status="waiting_for_staff",
    )
    agent = login(console_env.base, "agent1")
    inbox = agent.get("/console/inbox").text
    assert cid in inbox and "I want a person" in inbox and "<td>0101</td>" in inbox
    assert agent.get("/console/inbox/rows").status_code == 200
    csrf = page_csrf(agent)
    # CSRF is checked on every form
    assert (
        agent.post(f"/console/conversations/{cid}/take", data={"csrf_token": "nope"}).status_code
        == 403
    )
    assert (
        agent.post(f"/console/conversations/{cid}/take", data={"csrf_token": csrf}).status_code
        == 303
    )
    page = agent.get(f"/console/conversations/{cid}").text
    assert "waiting_for_staff" in page and "agent1" in page
    r = agent.post(
        f"/console/conversations/{cid}/reply",
        data={
            "csrf_token": csrf,
            "text": "Hello, this is Ann <b>from</b> the office",
            "submission": "s-1",
        },
    )
    assert r.status_code == 303
    # the same submission twice is sent once
    agent.post(
        f"/console/conversations/{cid}/reply",
        data={"csrf_token": csrf, "text": "Hello again", "submission": "s-1"},
    )
    assert (
        agent.post(
            f"/console/conversations/{cid}/reply", data={"csrf_token": csrf, "text": "  "}
        ).status_code
        == 400
    )
    with Session(e) as s:
        events = [
            (ev.event, ev.actor, json.loads(ev.data))
            for ev in s.scalars(
                select(EventRow).where(EventRow.conversation_id == cid).order_by(EventRow.id)
            )
        ]
        outbox = s.execute(select(ConversationRow.status).where(ConversationRow.id == cid))
        assert outbox.scalar_one() == "waiting_for_staff"
    staff_msgs = [
        d["text"] for ev, actor, d in events if ev == "staff_message" and actor == "staff:agent1"
    ]
    assert staff_msgs == ["Hello, this is Ann <b>from</b> the office"]
    page = agent.get(f"/console/conversations/{cid}").text
    assert "Hello, this is Ann &lt;b&gt;from&lt;/b&gt; the office" in page
    # live updates: new events after the last seen
    live = agent.get(f"/console/conversations/{cid}/live?after_turn=1&after_event=0").text
    assert "Hello, this is Ann" in live and 'hx-trigger="every 2s"' in live
    # canned reply
    r = agent.post(
        f"/console/conversations/{cid}/reply",
        data={
            "csrf_token": csrf,
            "text": "",
            "canned": "Could you tell me your unit number, please?",
        },
    )
    assert r.status_code == 303
    # private note
    assert (
        agent.post(
            f"/console/conversations/{cid}/notes",
            data={"csrf_token": csrf, "text": "called back at 5pm"},
        ).status_code
        == 303
    )
    assert "called back at 5pm" in agent.get(f"/console/conversations/{cid}").text
    assert (
        agent.post(f"/console/conversations/{cid}/release", data={"csrf_token": csrf}).status_code
        == 303
    )
    with Session(e) as s:
        assert s.get(ConversationRow, cid).status == "active"
    assert cid not in agent.get("/console/inbox/rows").text
    assert (
        agent.post(f"/console/conversations/{cid}/resolve", data={"csrf_token": csrf}).status_code
        == 303
    )
    actions = {a for actor, a in _audit(e) if actor == "staff:agent1"}
    assert {"login", "take", "reply", "note", "release", "resolve"} <= actions


def test_inbox_is_oldest_first_with_waiting_time(console_env) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    e = console_env.engine
    now = datetime.now(UTC)
    newer = add_conversation(
        e,
        "H0101",
        [{"text": "person!", "intent": "human_handoff"}],
        status="waiting_for_staff",
        at=now - timedelta(minutes=3, seconds=30),
    )
    older = add_conversation(
        e,
        "H0102",
        [{"text": "agent please", "intent": "human_handoff"}],
        status="waiting_for_staff",
        at=now - timedelta(hours=2, seconds=30),
    )
    rows = login(console_env.base, "agent1").get("/console/inbox/rows").text
    assert rows.index(older[:8]) < rows.index(newer[:8])
    assert re.search(r'class="wait">2h 0\dm<', rows)
    assert re.search(r'class="wait">3m [23]\ds<', rows)


def test_roles_are_enforced_on_every_route(console_env) -> None:  # type: ignore[no-untyped-def]
    e = console_env.engine
    cid = add_conversation(e, "H0101", [{"text": "hello", "intent": "greet"}])
    turn_id = _first_turn_id(e, cid)
    agent, sup, admin = (login(console_env.base, u) for u in ("agent1", "super1", "admin1"))
    supervisor_gets = (
        "/console/dashboard",
        "/console/annotations",
        "/console/annotations/nlu.yml",
        "/console/export?format=jsonl",
        "/console/charts/conversations.png",
        "/console/charts/conversations.csv",
    )
    admin_gets = ("/console/staff", "/console/audit")
    for path in supervisor_gets + admin_gets:
        assert agent.get(path).status_code == 403, path
    for path in supervisor_gets:
        assert sup.get(path).status_code == 200, path
        assert admin.get(path).status_code == 200, path
    for path in admin_gets:
        assert sup.get(path).status_code == 403, path
        assert admin.get(path).status_code == 200, path
    csrf = page_csrf(agent)
    assert (
        agent.post(
            f"/console/conversations/{cid}/turns/{turn_id}/annotate",
            data={"csrf_token": csrf, "intent": "greet"},
        ).status_code
        == 403
    )
    assert (
        agent.post(
            "/console/export",
            data={"csrf_token": csrf, "reason": "because I want", "format": "csv"},
        ).status_code
        == 403
    )
    assert (
        agent.post(
            "/console/staff",
            data={"csrf_token": csrf, "username": "x", "password": "y" * 10, "role": "admin"},
        ).status_code
        == 403
    )
    sup_csrf = page_csrf(sup)
    assert (
        sup.post(
            "/console/staff",
            data={"csrf_token": sup_csrf, "username": "x", "password": "y" * 10, "role": "admin"},
        ).status_code
        == 403
    )
    assert (
        sup.post(
            "/console/staff/agent1/disabled", data={"csrf_token": sup_csrf, "disabled": "yes"}
        ).status_code
        == 403
    )
    admin_csrf = page_csrf(admin)
    assert (
        admin.post(
            "/console/staff",
            data={
                "csrf_token": admin_csrf,
                "username": "newbie",
                "password": "y" * 10,
                "role": "agent",
                "buildings": "B2",
            },
        ).status_code
        == 303
    )
    assert "newbie" in admin.get("/console/staff").text
    assert login(console_env.base, "newbie", "y" * 10).get("/console/inbox").status_code == 200


def _first_turn_id(engine, cid: str) -> int:  # type: ignore[no-untyped-def]
    from bot.store import TurnRow

    with Session(engine) as s:
        return int(s.scalar(select(TurnRow.id).where(TurnRow.conversation_id == cid)))
