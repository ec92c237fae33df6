"""Where the console's tables live and how they are migrated.

The console's tables sit beside the conversation log (the dialogue's database:
``BILLTALK_DIALOGUE_DATABASE_URL``, or ``BILLTALK_DATABASE_URL`` when that is
empty), so tags, review flags and annotations join with it.
"""

from __future__ import annotations

from pathlib import Path

from billtalk.db import upgrade

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_console"


def conversation_database_url() -> str:
    """The URL of the conversation database (the dialogue's)."""
    from billtalk.settings import get_settings
    from bot.settings import get_dialogue_settings

    return get_dialogue_settings().database_url or get_settings().database_url


def ensure_schema(url: str) -> None:
    """Create or upgrade the dialogue's tables, then the console's, at ``url``."""
    from bot.store import ensure_schema as ensure_bot

    ensure_bot(url)
    upgrade(MIGRATIONS, url, VERSION_TABLE)
