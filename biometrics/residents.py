"""Is this a resident billtalk knows? The check every biometric command makes first.

A template is personal data about one resident; enrolling (or deleting) one for
an id the billing records do not hold would create biometric data about nobody,
or hide a typo. Commands check the billing database before touching a template,
a photo or a recording.
"""

from __future__ import annotations

from pathlib import Path


class UnknownResident(Exception):
    """The resident id is not in the billing records.

    Attributes:
        code: ``"unknown_resident"``.
        message: What went wrong and which database was asked (never biometric data).
    """

    code = "unknown_resident"

    def __init__(self, resident_id: str, database: str) -> None:
        self.message = f"unknown resident {resident_id!r} (not in the billing database {database})"
        super().__init__(self.message)

    def to_dict(self) -> dict[str, str]:
        """The ``{"code", "message"}`` form used in JSON output."""
        return {"code": self.code, "message": self.message}


def _describe(url: str) -> str:
    """The database URL without a password, to say which database was asked."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported as given by the settings layer
        return "(unparsable database URL)"


def _may_exist(url: str) -> bool:
    """False for an SQLite file that is not there (connecting would create it empty)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).is_file()


def ensure_known_resident(resident_id: str, database_url: str | None = None) -> None:
    """Raise :class:`UnknownResident` unless the billing database holds ``resident_id``.

    The billing records are read with one read-only query on their ``residents``
    table (biometrics sits below the backend in the layers and does not import
    it). A database without that table (never migrated or seeded) knows no
    resident.

    Args:
        resident_id: The id given on the command line.
        database_url: The billing database; ``BILLTALK_DATABASE_URL`` by default.

    Raises:
        UnknownResident: No resident has that id.
    """
    from sqlalchemy import inspect, text

    from billtalk.db import make_engine
    from billtalk.settings import get_settings

    url = database_url or get_settings().database_url
    found = False
    if resident_id.strip() and _may_exist(url):
        engine = make_engine(url)
        try:
            with engine.execution_options(sqlite_read_only=True).connect() as conn:
                if inspect(conn).has_table("residents"):
                    found = (
                        conn.execute(
                            text("SELECT 1 FROM residents WHERE resident_id = :rid"),
                            {"rid": resident_id},
                        ).first()
                        is not None
                    )
        finally:
            engine.dispose()
    if not found:
        raise UnknownResident(resident_id, _describe(url))


def holds_templates(resident_id: str, kind: str) -> bool:
    """Whether the template store already holds a ``kind`` template for ``resident_id``.

    Used so that deleting biometric data always works, even for an id the
    billing records no longer hold (erasure must never be refused). Reads only;
    a store database that does not exist yet is not created.
    """
    from sqlalchemy import inspect, text

    from billtalk.db import make_engine
    from billtalk.settings import get_settings
    from biometrics.settings import get_biometrics_settings
    from biometrics.store import previous_kind

    url = get_biometrics_settings().database_url or get_settings().database_url
    if not _may_exist(url):
        return False
    engine = make_engine(url)
    try:
        with engine.execution_options(sqlite_read_only=True).connect() as conn:
            if not inspect(conn).has_table("biometric_templates"):
                return False
            row = conn.execute(
                text(
                    "SELECT 1 FROM biometric_templates "
                    "WHERE resident_id = :rid AND kind IN (:kind, :previous)"
                ),
                {"rid": resident_id, "kind": kind, "previous": previous_kind(kind)},
            ).first()
            return row is not None
    finally:
        engine.dispose()
