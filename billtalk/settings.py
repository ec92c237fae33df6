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


class InsecureSecretKeyWarning(UserWarning):
    """Raised as a warning when the development secret key is in use."""


class Settings(BaseSettings):
    """Process-wide settings, read from ``BILLTALK_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="BILLTALK_", env_file=".env", extra="ignore", frozen=True
    )

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
