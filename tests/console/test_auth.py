"""Login, sessions, CSRF, throttling, logout, security headers (real HTTP on loopback)."""

from __future__ import annotations

import httpx

from console.models import AuditRow
from tests.console.helpers import PASSWORD, csrf_of, login, page_csrf


def _audit_actions(engine) -> list[str]:  # type: ignore[no-untyped-def]
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        return list(s.scalars(select(AuditRow.action).order_by(AuditRow.id)))


def test_every_page_without_a_session_goes_to_the_login_form(console_env) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=console_env.base, follow_redirects=True) as c:
        for path in (
            "/console/",
            "/console/inbox",
            "/console/conversations",
            "/console/conversations/nope",
            "/console/dashboard",
            "/console/staff",
            "/console/annotations",
        ):
            r = c.get(path)
            assert r.status_code == 200, path
            assert str(r.url).startswith(f"{console_env.base}/console/login"), path
            assert 'name="username"' in r.text and 'name="password"' in r.text
        # a POST without a session changes nothing and is refused
        r = c.post("/console/conversations/x/take", data={"csrf_token": "x"})
        assert r.status_code == 401


def test_login_sets_a_signed_httponly_samesite_cookie_and_logout_ends_it(console_env) -> None:  # type: ignore[no-untyped-def]
    client = httpx.Client(base_url=console_env.base, follow_redirects=False)
    page = client.get("/console/login")
    r = client.post(
        "/console/login",
        data={"username": "agent1", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 303
    cookie = next(
        v
        for k, v in r.headers.multi_items()
        if k == "set-cookie" and v.startswith("billtalk_console=")
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert client.get("/console/inbox").status_code == 200
    # a tampered cookie is no session
    token = client.cookies.get("billtalk_console")
    forged = httpx.Client(
        base_url=console_env.base,
        follow_redirects=False,
        cookies={"billtalk_console": token[:-2] + "00"},
    )
    assert forged.get("/console/inbox").status_code == 303
    # logout needs the CSRF token, then the cookie no longer works
    assert client.post("/console/logout", data={"csrf_token": "wrong"}).status_code == 403
    csrf = page_csrf(client)
    assert client.post("/console/logout", data={"csrf_token": csrf}).status_code == 303
    stale = httpx.Client(
        base_url=console_env.base, follow_redirects=False, cookies={"billtalk_console": token}
    )
    assert stale.get("/console/inbox").status_code == 303
    assert {"login", "logout"} <= set(_audit_actions(console_env.engine))


def test_login_form_needs_its_csrf_token(console_env) -> None:  # type: ignore[no-untyped-def]
    client = httpx.Client(base_url=console_env.base, follow_redirects=False)
    client.get("/console/login")
    r = client.post(
        "/console/login", data={"username": "agent1", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert r.status_code == 400
    assert "billtalk_console" not in client.cookies


def test_wrong_passwords_are_throttled_per_username_and_per_address(console_env) -> None:  # type: ignore[no-untyped-def]
    client = httpx.Client(base_url=console_env.base, follow_redirects=False)
    page = client.get("/console/login")
    csrf = csrf_of(page.text)
    for _ in range(5):
        r = client.post(
            "/console/login",
            data={"username": "agent2", "password": "nope-nope", "csrf_token": csrf},
        )
        assert r.status_code == 401
        assert "Wrong username or password" in r.text
    # now even the right password is refused for that username
    r = client.post(
        "/console/login", data={"username": "agent2", "password": PASSWORD, "csrf_token": csrf}
    )
    assert r.status_code == 429
    # another username from the same address still works (address limit is higher)
    assert login(console_env.base, "agent1").get("/console/inbox").status_code == 200
    # per address: 20 failures over many usernames lock the address out
    for i in range(15):
        client.post(
            "/console/login",
            data={"username": f"ghost{i}", "password": "x" * 9, "csrf_token": csrf},
        )
    r = client.post(
        "/console/login", data={"username": "super1", "password": PASSWORD, "csrf_token": csrf}
    )
    assert r.status_code == 429
    assert "login_throttled" in _audit_actions(console_env.engine)


def test_disabled_account_cannot_log_in_and_loses_its_session(console_env) -> None:  # type: ignore[no-untyped-def]
    from console.accounts import set_disabled

    agent = login(console_env.base, "agent1")
    set_disabled(console_env.engine, "agent1", True)
    assert agent.get("/console/inbox").status_code == 303
    client = httpx.Client(base_url=console_env.base, follow_redirects=False)
    page = client.get("/console/login")
    r = client.post(
        "/console/login",
        data={"username": "agent1", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 401


def test_idle_session_expires(console_env) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from console.models import SessionRow

    agent = login(console_env.base, "agent1")
    assert agent.get("/console/inbox").status_code == 200
    with Session(console_env.engine) as s, s.begin():
        s.execute(update(SessionRow).values(last_seen_at=datetime.now(UTC) - timedelta(hours=2)))
    assert agent.get("/console/inbox").status_code == 303


def test_security_headers_and_no_inline_script(console_env) -> None:  # type: ignore[no-untyped-def]
    agent = login(console_env.base, "agent1")
    for path in ("/console/login", "/console/inbox", "/console/conversations"):
        r = agent.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert "<script>" not in r.text  # only <script src=...> from our own static folder
        assert '<script src="/console/static/vendor/htmx.min.js"' in r.text
    assert agent.get("/console/static/vendor/htmx.min.js").status_code == 200


def test_next_after_login_stays_inside_the_console(console_env) -> None:  # type: ignore[no-untyped-def]
    client = httpx.Client(base_url=console_env.base, follow_redirects=False)
    page = client.get("/console/login")
    r = client.post(
        "/console/login",
        data={
            "username": "agent1",
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": "https://evil.example/",
        },
    )
    assert r.headers["location"] == "/console/"


def test_staff_actions_go_to_the_hash_chained_audit_log(console_env) -> None:  # type: ignore[no-untyped-def]
    from backend.service_layer import audit as backend_audit
    from backend.service_layer.unit_of_work import UnitOfWork
    from tests.console.helpers import add_conversation

    cid = add_conversation(console_env.engine, "H0101", [{"text": "hi", "intent": "greet"}])
    agent = login(console_env.base, "agent1")
    csrf = page_csrf(agent)
    assert (
        agent.post(
            f"/console/conversations/{cid}/tags", data={"csrf_token": csrf, "tag": "vip"}
        ).status_code
        == 303
    )
    uow = UnitOfWork(console_env.engine)
    entries = list(backend_audit.export(uow))
    kinds = [(e["kind"], e["actor"], e["subject"]) for e in entries]
    assert ("staff.login", "staff:agent1", "127.0.0.1") in kinds
    assert ("staff.tag", "staff:agent1", cid) in kinds
    assert backend_audit.verify(uow)["ok"] is True
