"""Preparing a database and models so the product can start (``billtalk run``)."""

from __future__ import annotations

import sys

from billtalk.logs import get_logger, quieter

log = get_logger("app.bootstrap")


def migrate_all(url: str) -> None:
    """Create or upgrade every package's tables (billing, conversations, biometrics, console).

    The console's tables go with the conversation log (the dialogue's database).
    """
    from backend.bootstrap import ensure_database
    from biometrics.store import ensure_schema as ensure_biometrics
    from bot.settings import get_dialogue_settings
    from bot.store import ensure_schema as ensure_bot
    from console.db import ensure_schema as ensure_console

    ensure_database(url)
    ensure_bot(url)
    ensure_biometrics(url)
    ensure_console(get_dialogue_settings().database_url or url)


def prepare_product(url: str, *, households: int = 40) -> str:
    """Migrate, seed the demo community if the database is empty, train the NLU if needed.

    Returns:
        A demo resident id to chat as.
    """
    from tqdm import tqdm

    import nlu
    from backend.bootstrap import database_is_empty
    from backend.demo import seed

    migrate_all(url)
    if database_is_empty(url):
        with tqdm(desc="seeding demo community", unit="step", file=sys.stderr) as bar:

            def set_total(n: int) -> None:
                bar.total = n
                bar.refresh()

            with quieter():  # the bar shows progress; no info line per seeded payment
                seed(url, households=households, progress=bar.update, set_total=set_total)
        log.info("demo_seeded", households=households)
    nlu.ensure_default_model()
    return first_resident_id(url)


def first_resident_id(url: str) -> str:
    """The first resident of the community (by id), to suggest in the start-up hint."""
    from sqlalchemy import select

    from backend.adapters.orm import Resident
    from billtalk.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            first = conn.execute(
                select(Resident.resident_id).order_by(Resident.resident_id).limit(1)
            ).scalar_one_or_none()
    finally:
        engine.dispose()
    return first or "<resident-id>"
