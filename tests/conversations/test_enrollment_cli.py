"""``billtalk chat`` enrolls a face with ``/attach PATH`` lines, on a database without
the biometrics tables (the chat migrates them with its own)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect

from tests.conversations.test_cli import _chat
from tests.conversations.test_enrollment import PIN, _pair_photos


def _staff_code(url: str, resident_id: str) -> str:
    """A one-time code issued by staff for the resident (the billing API's link code)."""
    import asyncio

    from backend.client import BillingClient

    async def issue() -> str:
        client = BillingClient.embedded(url)
        try:
            return str((await client.create_link_code(resident_id)).code)
        finally:
            await client.aclose()

    return asyncio.run(issue())


def test_chat_enrolls_a_face_from_attached_files(
    seeded: Any, community_db: str, shared_data: Path
) -> None:
    path = community_db.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:  # a database that never had the biometrics tables
        for table in ("biometric_templates", "biometric_audit", "alembic_version_biometrics"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    assert "biometric_templates" not in inspect(create_engine(community_db)).get_table_names()

    payer = seeded.roles["payer"]["resident_id"]
    photos = _pair_photos(shared_data, "barack_obama")
    lines = [
        "set up face verification",
        _staff_code(community_db, payer),  # the property office's one-time code
        PIN,
        PIN,
        PIN,
        "1",  # the first button: Set up face
        f"/attach {photos[0]}",
        f"/attach {photos[0].parent / 'no-such-file.jpg'}",
        f"/attach {photos[2]}",
        "done",
    ]
    result = _chat(community_db, payer, lines)
    assert result.returncode == 0, result.stderr[-2000:]
    replies = result.stdout.split("--\n")[:-1]
    assert len(replies) == len(lines), result.stdout
    assert "6-digit PIN" in replies[1], replies[1]
    assert "[1] Set up face" in replies[4], replies[4]
    assert "1 of at most 5" in replies[6]
    assert replies[7] == "" and "cannot attach" in result.stderr
    assert "2 of at most 5" in replies[8]
    assert "face is enrolled (2 photo(s))" in replies[9], replies[9]
    assert "Traceback" not in result.stdout

    from biometrics.store import TemplateStore

    engine = create_engine(community_db)
    try:
        assert TemplateStore(engine).is_enrolled(payer, "face")
    finally:
        engine.dispose()
