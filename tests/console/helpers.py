"""Test helpers for the console: a community, conversations, a live server, a logged-in client."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.adapters.orm import Building, Household, Resident
from bot.store import ConversationRow, TurnRow

PASSWORD = "correct horse battery"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add_community(engine: Engine) -> None:
    """Two buildings, B1 (units 0101, 0102) and B2 (unit 0201), one resident each."""
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        s.add_all([Building(building_id="B1", name="One"), Building(building_id="B2", name="Two")])
        s.flush()
        for hid, building, unit in (
            ("H0101", "B1", "0101"),
            ("H0102", "B1", "0102"),
            ("H0201", "B2", "0201"),
        ):
            s.add(
                Household(
                    household_id=hid,
                    building_id=building,
                    unit=unit,
                    floor=1,
                    area_m2=Decimal("80.00"),
                    created_at=now,
                )
            )
            s.flush()
            s.add(
                Resident(
                    resident_id=f"r-{hid}", household_id=hid, name=f"Resident {unit}", language="en"
                )
            )


def add_conversation(
    engine: Engine,
    household: str | None,
    turns: list[dict[str, Any]],
    *,
    channel: str = "terminal",
    status: str = "active",
    at: datetime | None = None,
) -> str:
    """A conversation with ``turns`` (dicts of TurnRow fields: text, intent, confidence...)."""
    at = at or datetime.now(UTC) - timedelta(minutes=10)
    cid = str(uuid.uuid4())
    with Session(engine) as s, s.begin():
        s.add(
            ConversationRow(
                id=cid,
                channel=channel,
                external_user_id=f"u-{cid[:8]}",
                resident_id=f"r-{household}" if household else None,
                household_id=household,
                status=status,
                flagged=status != "active",
                flag_reason="handoff" if status != "active" else None,
                state="{}",
                version=0,
                turns=len(turns),
                created_at=at,
                updated_at=at + timedelta(seconds=len(turns)),
            )
        )
        s.flush()
        for i, t in enumerate(turns, start=1):
            text = t.get("text", "hello")
            s.add(
                TurnRow(
                    conversation_id=cid,
                    turn=i,
                    at=at + timedelta(seconds=i),
                    channel=channel,
                    resident_id=f"r-{household}" if household else None,
                    household_id=household,
                    session_id="s1",
                    text_raw=text,
                    text_masked=t.get("masked", text),
                    button_payload=None,
                    language=t.get("language", "en"),
                    intent=t.get("intent", "greet"),
                    confidence=t.get("confidence", 0.9),
                    ranking="[]",
                    entities=json.dumps(t.get("entities", [])),
                    slots_before="{}",
                    slots_after="{}",
                    actions=json.dumps(t.get("actions", [])),
                    replies=json.dumps([{"text": t.get("reply", "Hi!"), "buttons": []}]),
                    verification=json.dumps(t.get("verification", [])),
                    payment_ids=json.dumps(t.get("payment_ids", [])),
                    latency_ms=t.get("latency_ms", 12.0),
                    error=t.get("error"),
                )
            )
    return cid


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on a loopback port in a thread; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The first CSRF token in a page."""
    m = CSRF.search(html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(base: str, username: str, password: str = PASSWORD) -> httpx.Client:
    """A client logged in as ``username`` (asserts the login worked)."""
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    page = client.get("/console/login")
    r = client.post(
        "/console/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_of(page.text),
            "next": "",
        },
    )
    assert r.status_code == 303, r.text
    return client


def page_csrf(client: httpx.Client, path: str = "/console/inbox") -> str:
    """The session's CSRF token, read from a page."""
    r = client.get(path)
    assert r.status_code == 200, r.text
    return csrf_of(r.text)
