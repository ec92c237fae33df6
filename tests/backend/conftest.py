"""Fixtures of the billing tests: a migrated database on SQLite and PostgreSQL, and a community."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from backend.adapters import orm
from backend.api import create_app
from backend.bootstrap import ensure_database
from backend.domain.tariffs import Tier, tiers_to_json
from backend.gateway import SandboxGateway
from backend.gateway.settings import derive_key
from backend.service_layer import services
from backend.service_layer.unit_of_work import UnitOfWork
from billtalk.db import is_sqlite, make_engine

#: The day the test community's clock stands on.
TODAY = date(2026, 3, 20)


_migrated_postgres: set[str] = set()


def _reset_postgres(url: str) -> None:
    """Migrate the session's PostgreSQL database once, then empty every table per test."""
    if url not in _migrated_postgres:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        ensure_database(url)
        _migrated_postgres.add(url)
        return
    tables = ", ".join(f'"{t.name}"' for t in orm.metadata.sorted_tables)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite database file, copied for each test (migrating is slow)."""
    path = tmp_path_factory.mktemp("template") / "billtalk.db"
    ensure_database(f"sqlite:///{path}")
    make_engine(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture(scope="session")
def backend_postgres_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of the billing tests' own, next to the shared session one.

    Other packages' tests share ``postgres_url``; the billing tests drop and
    truncate tables, so they work in a separate database on the same server.
    """
    url = make_url(postgres_url)
    # Unique per instance: other test packages import this fixture into their own
    # conftest, which makes another session-scoped instance of it.
    name = f"{url.database}_backend_{uuid.uuid4().hex[:6]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db_url(database_url: str, request: pytest.FixtureRequest) -> str:
    """A freshly migrated, empty billing database (SQLite file or emptied PostgreSQL)."""
    if is_sqlite(database_url):
        template: Path = request.getfixturevalue("sqlite_template")
        target = Path(make_url(database_url).database or "")
        shutil.copyfile(template, target)
        return database_url
    url: str = request.getfixturevalue("backend_postgres_url")
    _reset_postgres(url)
    return url


@pytest.fixture
def gateway() -> SandboxGateway:
    """The deterministic sandbox gateway."""
    return SandboxGateway(derive_key("gateway-sandbox"))


@pytest.fixture
def uow(db_url: str) -> Iterator[UnitOfWork]:
    """A unit of work on the test database."""
    engine = make_engine(db_url)
    yield UnitOfWork(engine)
    engine.dispose()


@dataclass
class Community:
    """A tiny community: two households (H1 in A, H2 in B) with three months of bills."""

    url: str
    uow: UnitOfWork
    h1: str = "hh-A0101"
    h2: str = "hh-B0101"
    r1: str = "r-A0101-1"
    r2: str = "r-B0101-1"


def _at(d: date) -> datetime:
    return datetime.combine(d, time(), tzinfo=UTC)


def build_community(
    uow: UnitOfWork,
    *,
    months: tuple[date, ...] = (date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1)),
) -> None:
    """Insert buildings, tariffs, two households with meters and readings; bill each month."""
    with uow:
        s = uow.session
        s.add_all(
            [
                orm.Building(building_id="A", name="Building A", address=""),
                orm.Building(building_id="B", name="Building B", address=""),
            ]
        )
        s.add_all(
            [
                orm.Tariff(
                    utility="electricity",
                    kind="tiered",
                    name="Tiered",
                    unit="kWh",
                    effective_from=date(2000, 1, 1),
                    fixed_monthly=Decimal("0.00"),
                    tiers=tiers_to_json(
                        [
                            Tier(Decimal(200), Decimal("0.52")),
                            Tier(Decimal(400), Decimal("0.57")),
                            Tier(None, Decimal("0.82")),
                        ]
                    ),
                ),
                orm.Tariff(
                    utility="water",
                    kind="flat",
                    name="Water",
                    unit="m³",
                    effective_from=date(2000, 1, 1),
                    unit_price=Decimal("3.85"),
                    fixed_monthly=Decimal("0.00"),
                ),
                orm.Tariff(
                    utility="gas",
                    kind="flat",
                    name="Gas",
                    unit="m³",
                    effective_from=date(2000, 1, 1),
                    unit_price=Decimal("2.98"),
                    fixed_monthly=Decimal("5.00"),
                ),
                orm.Tariff(
                    utility="property_fee",
                    kind="area",
                    name="Property fee",
                    unit="m²",
                    effective_from=date(2000, 1, 1),
                    unit_price=Decimal("2.50"),
                    fixed_monthly=Decimal("0.00"),
                ),
            ]
        )
        for hid, bid, unit, rid, area in (
            ("hh-A0101", "A", "A-0101", "r-A0101-1", "88.40"),
            ("hh-B0101", "B", "B-0101", "r-B0101-1", "120.00"),
        ):
            s.add(
                orm.Household(
                    household_id=hid,
                    building_id=bid,
                    unit=unit,
                    area_m2=Decimal(area),
                    saved_method="card",
                    saved_method_label="Visa 4242",
                    saved_method_token="tok_visa",
                    created_at=_at(date(2025, 1, 1)),
                )
            )
            s.flush()
            s.add(
                orm.Resident(
                    resident_id=rid,
                    household_id=hid,
                    name=f"Resident {unit}",
                    language="en",
                    is_primary=True,
                )
            )
            for utility, u in (("electricity", "kWh"), ("water", "m³"), ("gas", "m³")):
                s.add(
                    orm.Meter(
                        meter_id=f"m-{hid}-{utility}",
                        household_id=hid,
                        utility=utility,
                        unit=u,
                        installed_at=_at(date(2025, 1, 1)),
                    )
                )
            s.flush()
            values = {"electricity": Decimal("1000"), "water": Decimal("100"), "gas": Decimal("50")}
            usage = {"electricity": Decimal("450"), "water": Decimal("10"), "gas": Decimal("20")}
            points = [*months, (months[-1].replace(day=28) + timedelta(days=4)).replace(day=1)]
            for k, d in enumerate(points):
                for utility in values:
                    if k:
                        values[utility] += usage[utility]
                    s.add(
                        orm.MeterReading(
                            meter_id=f"m-{hid}-{utility}",
                            value=values[utility],
                            taken_at=_at(d),
                            source="smart_meter",
                            status="accepted",
                            created_at=_at(d),
                        )
                    )
        uow.commit()
    for m in months:
        for hid in ("hh-A0101", "hh-B0101"):
            services.generate_household_bills(uow, hid, m, today=TODAY)


@pytest.fixture
def community(db_url: str, uow: UnitOfWork) -> Community:
    """Two households, each with 3 months (Dec–Feb) of electricity, water, gas and property bills.

    Every month: 450 kWh (259.00), 10 m³ water (38.50), 20 m³ gas (59.60 + 5.00 fixed);
    property fee 221.00 (H1, 88.40 m²) or 300.00 (H2). Feb bills are due 2026-03-16.
    """
    build_community(uow)
    return Community(db_url, uow)


@dataclass
class Api:
    """A test client on the app plus tokens of each scope."""

    app: FastAPI
    client: TestClient
    service: str
    staff: str
    resident1: str
    resident2: str

    def h(self, token: str, **extra: str) -> dict[str, str]:
        """Headers with a bearer token."""
        return {"Authorization": f"Bearer {token}", **extra}


@pytest.fixture
def api(community: Community, gateway: SandboxGateway) -> Iterator[Api]:
    """The API over the test community, with service, staff and two resident tokens."""
    app = create_app(community.url, gateway=gateway)
    uow = community.uow
    service = services.issue_token(uow, "service", name="test").token
    staff = services.issue_token(uow, "staff", name="test").token
    r1 = services.issue_token(uow, "resident", resident_id=community.r1).token
    r2 = services.issue_token(uow, "resident", resident_id=community.r2).token
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(app, client, service, staff, r1, r2)
    app.state.engine.dispose()
