"""The settings object shared by every package.

Values come from ``BILLTALK_*`` environment variables (and an optional ``.env``
file). Packages with many knobs of their own keep them in their own settings
class with a longer prefix (``BILLTALK_NLU_``, ``BILLTALK_FACE_``...), built the
same way; this one holds what every process needs.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "billtalk-development-secret-key-do-not-use-in-production"

#: The repository (or install) root: where ``billtalk.db`` and model folders live by default.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_home() -> Path:
    """The project home: ``BILLTALK_HOME``, else the repository root (else the current folder).

    Every relative path in the settings (the SQLite file of ``BILLTALK_DATABASE_URL``,
    ``BILLTALK_DATA_DIR``, ``.env``) is resolved against it once, so a command
    run from another folder uses the same database and models as one run from
    the repository root, instead of silently creating an empty ``billtalk.db``
    wherever it was started.
    """
    import os

    configured = os.environ.get("BILLTALK_HOME", "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT
    return Path.cwd().resolve()


def resolve_sqlite_url(url: str, home: Path) -> str:
    """``url`` with a relative SQLite file made absolute against ``home``.

    ``sqlite:///./billtalk.db`` run from the repository root stays the same file;
    ``sqlite:///:memory:`` and other databases are unchanged.
    """
    for prefix in ("sqlite+pysqlite:///", "sqlite:///"):
        if url.startswith(prefix):
            rest = url[len(prefix) :]
            path, sep, query = rest.partition("?")
            if not path or path == ":memory:" or path.startswith("/") or path.startswith("file:"):
                return url
            return f"{prefix}{(home / path).resolve()}{sep}{query}"
    return url


class InsecureSecretKeyWarning(UserWarning):
    """Raised as a warning when the development secret key is in use."""


class Settings(BaseSettings):
    """Process-wide settings, read from ``BILLTALK_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="BILLTALK_", env_file=str(default_home() / ".env"), extra="ignore", frozen=True
    )

    #: The project home every relative path is resolved against (``BILLTALK_HOME``).
    home: Path = Field(default_factory=default_home)
    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./billtalk.db"
    secret_key: str = Field(default=DEV_SECRET_KEY, repr=False)
    log_level: str = "INFO"
    log_json: bool = False
    #: Where trained models, generated grammars and other artefacts are written.
    data_dir: Path = PROJECT_ROOT / "var"
    #: Currency of every amount (ISO 4217).
    currency: str = "CNY"
    #: Base URL of the billing API for remote clients; empty means in-process (embedded).
    api_base_url: str = ""
    #: Service token the assistant uses against the billing API.
    service_token: str = Field(default="", repr=False)
    #: The community's time zone: times shown to residents are in it, and labelled.
    timezone: str = "Asia/Shanghai"
    #: Quiet hours in the community's time zone ("21:00-08:00"; empty: none): reminders
    #: wait until they end. A payment's own outcome is not a reminder and is not held.
    quiet_hours: str = "21:00-08:00"
    #: Redis shared by every process for rate limits (``BILLTALK_REDIS_URL``); empty: each
    #: process counts on its own (``billtalk.ratelimit``).
    redis_url: str = ""

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        # Resolved once, here: the same files whichever folder a command runs from.
        home = Path(self.home).expanduser().resolve()
        object.__setattr__(self, "home", home)
        object.__setattr__(self, "database_url", resolve_sqlite_url(self.database_url, home))
        data_dir = Path(self.data_dir).expanduser()
        object.__setattr__(
            self, "data_dir", data_dir if data_dir.is_absolute() else home / data_dir
        )
        return self

    def database_label(self) -> str:
        """Which database is in use, for messages (a SQLite path, or the URL without password)."""
        return describe_database(self.database_url)

    @model_validator(mode="after")
    def _require_secret_in_production(self) -> Settings:
        if self.secret_key == DEV_SECRET_KEY:
            if self.environment == "production":
                raise ValueError("BILLTALK_SECRET_KEY must be set in production")
            warnings.warn(
                "BILLTALK_SECRET_KEY is not set: using the INSECURE development key. "
                "Biometric templates and tokens are NOT protected. Set it in production.",
                InsecureSecretKeyWarning,
                stacklevel=2,
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process's settings, read once from the environment."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings = Settings()
    for w in caught:
        if issubclass(w.category, InsecureSecretKeyWarning):
            from billtalk.logs import get_logger

            get_logger("billtalk.settings").warning("insecure_secret_key", message=str(w.message))
    return settings


def describe_database(url: str) -> str:
    """A database URL for people: the SQLite file's path, or the URL without its password."""
    if url.startswith(("sqlite:///", "sqlite+pysqlite:///")):
        return url.split(":///", 1)[1].partition("?")[0] or ":memory:"
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as its scheme only
        return url.split(":", 1)[0]
