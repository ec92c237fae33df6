"""Settings of the staff console (``BILLTALK_CONSOLE_*`` environment variables)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    """Knobs of the staff console.

    Every value can be set from the environment with the ``BILLTALK_CONSOLE_``
    prefix, e.g. ``BILLTALK_CONSOLE_IDLE_MINUTES=15``.
    """

    model_config = SettingsConfigDict(
        env_prefix="BILLTALK_CONSOLE_", env_file=".env", extra="ignore", frozen=True
    )

    #: A session unused for this many minutes is over (the staff member logs in again).
    idle_minutes: int = 30
    #: Failed logins of one username within ``throttle_window_minutes`` before it is refused.
    max_failures_per_username: int = 5
    #: Failed logins from one address within ``throttle_window_minutes`` before it is refused.
    max_failures_per_address: int = 20
    #: The window over which failed logins are counted.
    throttle_window_minutes: int = 15
    #: Mark the session cookie ``Secure`` (serve the console over HTTPS in production).
    secure_cookies: bool = False
    #: Conversations per page of the list.
    page_size: int = 50
    #: Turns per page of a transcript.
    transcript_page: int = 50


@lru_cache(maxsize=1)
def get_console_settings() -> ConsoleSettings:
    """The process's console settings, read once from the environment."""
    return ConsoleSettings()
