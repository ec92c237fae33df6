"""Settings shared by face and voice biometrics (``BILLTALK_BIOMETRICS_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BiometricsSettings(BaseSettings):
    """Key rotation and where templates are stored."""

    model_config = SettingsConfigDict(env_prefix="BILLTALK_BIOMETRICS_", extra="ignore")

    #: Old values of BILLTALK_SECRET_KEY still accepted for decryption (comma-separated).
    previous_secret_keys: str = Field(default="", repr=False)
    #: Database for templates; empty means the main BILLTALK_DATABASE_URL.
    database_url: str = ""

    def previous_secrets(self) -> tuple[str, ...]:
        """The previous secrets as a tuple."""
        return tuple(s for s in (p.strip() for p in self.previous_secret_keys.split(",")) if s)


@lru_cache(maxsize=1)
def get_biometrics_settings() -> BiometricsSettings:
    """Return the biometrics settings, read once from the environment."""
    return BiometricsSettings()
