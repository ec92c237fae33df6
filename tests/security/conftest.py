# ruff: noqa: F811  (pytest fixtures imported from tests/backend are parameters here)
"""Fixtures of the trust-and-safety tests: the billing community served over real HTTP.

The billing test community (``tests/backend/conftest.py``: two households with
three months of bills, on SQLite and on PostgreSQL) is served by uvicorn on a
loopback port in a background thread, and the tests talk to it with ``httpx``
like any outside caller.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from backend.gateway import SandboxGateway
from backend.service_layer import services
from backend.settings import BillingSettings
from tests.backend.conftest import (  # noqa: F401  (fixtures)
    Community,
    backend_postgres_url,
    community,
    db_url,
    gateway,
    sqlite_template,
    uow,
)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daytime_zone(hour: int = 12) -> str:
    """A fixed-offset time zone in which it is now about ``hour`` o'clock.

    The risk rules look at the time of day; tests pin it so that they do not
    depend on when they run.
    """
    offset = (hour - datetime.now(UTC).hour + 12) % 24 - 12  # -12..11
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


@dataclass
class LiveApi:
    """A running API on loopback, with tokens of each scope."""

    base_url: str
    http: httpx.Client
    community: Community
    service: str
    staff: str
    resident1: str
    resident2: str
    app: Any = None
    stop: Callable[[], None] = field(default=lambda: None)

    def h(self, token: str, **extra: str) -> dict[str, str]:
        """Headers with a bearer token."""
        return {"Authorization": f"Bearer {token}", **extra}

    def pay(self, token: str, key: str, **body: Any) -> httpx.Response:
        """``POST /api/v1/payments``."""
        payload = {"household_id": self.community.h1, "method": "card", **body}
        return self.http.post(
            "/api/v1/payments", json=payload, headers=self.h(token, **{"Idempotency-Key": key})
        )

    def verify(self, resident: str, passed: bool = True, **payment: Any) -> httpx.Response:
        """Record a verification outcome (service token), bound to ``payment`` if given."""
        body: dict[str, Any] = {"resident_id": resident, "kind": "pin", "passed": passed}
        if payment:
            body["payment"] = {"household_id": self.community.h1, "method": "card", **payment}
        return self.http.post(
            "/api/v1/step-up/verifications", json=body, headers=self.h(self.service)
        )


def serve(app: Any) -> tuple[str, Callable[[], None]]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; returns (url, stop)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return f"http://127.0.0.1:{port}", stop


@pytest.fixture
def billing_settings() -> BillingSettings:
    """The billing knobs of the served API (daytime, rules only; override per test)."""
    return BillingSettings(risk_timezone=daytime_zone(12), risk_model_enabled=False)


@pytest.fixture
def live(
    community: Community, gateway: SandboxGateway, billing_settings: BillingSettings
) -> Iterator[LiveApi]:
    """The API over the test community on a real loopback port."""
    from backend.api import create_app

    app = create_app(community.url, gateway=gateway, billing_settings=billing_settings)
    u = community.uow
    tokens = dict(
        service=services.issue_token(u, "service", name="test").token,
        staff=services.issue_token(u, "staff", name="test").token,
        resident1=services.issue_token(u, "resident", resident_id=community.r1).token,
        resident2=services.issue_token(u, "resident", resident_id=community.r2).token,
    )
    url, stop = serve(app)
    with httpx.Client(base_url=url, timeout=30) as http:
        yield LiveApi(url, http, community, app=app, stop=stop, **tokens)
    stop()
    app.state.engine.dispose()
