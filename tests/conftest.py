"""Fixtures shared by every test package.

PostgreSQL: tests that need it take the ``postgres_url`` fixture, which creates
a fresh database for the test session and drops it afterwards. When PostgreSQL
is unreachable the tests are skipped and the run ends with a loud note, unless
``CI`` is set, in which case they fail: CI must never pass without PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("BILLTALK_ENVIRONMENT", "test")
os.environ.setdefault("BILLTALK_SECRET_KEY", "test-secret-key-for-the-test-suite-only")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()
POSTGRES_ADMIN_URL = os.environ.get(
    "BILLTALK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_postgres_skips: list[str] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real data folder (``../shared/data``)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder missing: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL to a fresh, empty PostgreSQL database for this session."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"billtalk_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # unreachable server, refused auth...
        admin.dispose()
        reason = f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {exc.__class__.__name__}"
        if _in_ci():
            pytest.fail(f"{reason} (CI=1: PostgreSQL tests must run in CI)")
        _postgres_skips.append(reason)
        pytest.skip(reason)
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL, once on SQLite (a temp file) and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'billtalk.db'}"
    return str(request.getfixturevalue("postgres_url"))


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if _postgres_skips:
        terminalreporter.write_sep("!", "PostgreSQL tests were SKIPPED", red=True, bold=True)
        terminalreporter.write_line(_postgres_skips[0])
        terminalreporter.write_line(
            "Start PostgreSQL or set BILLTALK_TEST_POSTGRES_URL. "
            "CI (CI=1) fails instead of skipping."
        )
