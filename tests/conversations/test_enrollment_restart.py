"""Enrollment samples survive a restart mid-enrollment: kept encrypted in the database,
deleted once used. Real NLU, real seeded database, real photos, real template store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from tests.conversations.test_enrollment import (
    Chat,
    _pair_photos,
    _verified_enrollment_menu,
    image,
    templates,
)


def _media_rows(engine: Any) -> list[dict[str, Any]]:
    with engine.db.connect() as conn:
        return [
            dict(r) for r in conn.execute(text("SELECT * FROM bot_enrollment_media")).mappings()
        ]


async def test_a_restart_mid_face_enrollment_loses_nothing(
    make_engine: Callable[..., Any], seeded: Any, shared_data: Path
) -> None:
    resident_id = seeded.roles["payer"]["resident_id"]
    obama = _pair_photos(shared_data, "barack_obama")
    first = make_engine()
    chat = Chat(first, resident_id)
    await _verified_enrollment_menu(chat)
    await chat.press("face")
    reply = await chat.send(files=(image(obama[0]),))
    assert "1 of at most 5" in reply, reply

    [row] = _media_rows(first)
    photo = obama[0].read_bytes()
    assert row["kind"] == "face" and row["position"] == 0
    assert photo[:4096] not in bytes(row["ciphertext"]), "stored encrypted"
    assert len(row["ciphertext"]) >= len(photo)
    await first.billing.aclose()
    first.store.engine.dispose()

    # a new worker (a restart) on the same database continues the enrollment
    second = make_engine()
    chat = Chat(second, resident_id)
    reply = await chat.send(files=(image(obama[2]),))
    assert "2 of at most 5" in reply and "again" not in reply.lower(), reply
    reply = await chat.send("done")
    assert "face is enrolled (2 photo(s))" in reply, reply
    assert templates(second).is_enrolled(resident_id, "face")
    assert _media_rows(second) == [], "deleted once used"
    log = chat.log_text()
    assert photo[:64].hex() not in log and "ciphertext" not in log
    await second.billing.aclose()


async def test_cancel_deletes_the_waiting_samples(
    make_engine: Callable[..., Any], seeded: Any, shared_data: Path
) -> None:
    resident_id = seeded.roles["payer"]["resident_id"]
    obama = _pair_photos(shared_data, "barack_obama")
    engine = make_engine()
    chat = Chat(engine, resident_id)
    await _verified_enrollment_menu(chat)
    await chat.press("face")
    await chat.send(files=(image(obama[0]),))
    assert len(_media_rows(engine)) == 1
    reply = await chat.send("cancel")
    assert "Enrollment cancelled" in reply, reply
    assert _media_rows(engine) == []
    await engine.billing.aclose()


def test_samples_are_bound_to_their_conversation_and_expire(tmp_path: Path) -> None:
    from billtalk.db import make_engine
    from biometrics.crypto import TemplateCipher
    from biometrics.voice.enrollment import EnrollmentSample
    from bot.enrollment_media import PendingSamples
    from bot.store import ConversationStore, ensure_schema

    url = f"sqlite:///{tmp_path / 'media.db'}"
    ensure_schema(url)
    store = ConversationStore(make_engine(url))
    now = [__import__("datetime").datetime(2026, 11, 20, 9, tzinfo=__import__("datetime").UTC)]
    vault = PendingSamples(
        store, TemplateCipher("media-test-secret"), ttl_s=60, clock=lambda: now[0]
    )
    vault.put(
        "conv-a:s1", [EnrollmentSample(b"RIFF-a", "4719"), EnrollmentSample(b"RIFF-b", "0283")]
    )
    got = vault.get("conv-a:s1")
    assert [(g.audio, g.digits) for g in got] == [(b"RIFF-a", "4719"), (b"RIFF-b", "0283")]
    assert vault.get("conv-b:s1") == []
    # a row moved to another conversation does not decrypt
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE bot_enrollment_media SET key = 'conv-b:s1'"))
    assert vault.get("conv-b:s1") == []
    # and everything expires unused
    vault.put("conv-c:s1", [b"\xff\xd8jpeg"])
    assert vault.get("conv-c:s1") == [b"\xff\xd8jpeg"]
    now[0] = now[0].replace(minute=2)
    assert vault.get("conv-c:s1") == []
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM bot_enrollment_media")).scalar() == 0
    assert "RIFF" not in repr(vault)
