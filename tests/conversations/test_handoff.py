"""Human handoff: staff take over and release, and the log records who did it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from bot.handoff import release, staff_events, take_over, waiting
from bot.log_export import export_conversation
from bot.messages import IncomingMessage


def _msg(resident: str, text: str) -> IncomingMessage:
    return IncomingMessage(
        channel="telegram", external_user_id=f"tg-{resident}", resident_id=resident, text=text
    )


async def test_take_over_and_release_record_the_staff_ids_in_the_log(
    seeded: Any, make_engine: Any
) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    try:
        [reply] = await engine.handle(_msg(resident, "how much do I owe?"))
        conversation = engine.store.conversation_id_for(
            "telegram", f"tg-{resident}", resident, engine.clock()
        )
        assert take_over(engine.store, conversation, staff="staff-7")
        assert waiting(engine.store, conversation)
        assert await engine.handle(_msg(resident, "hello? anyone?")) == []
        assert release(engine.store, conversation, staff="staff-9")
        assert not waiting(engine.store, conversation)
        [reply] = await engine.handle(_msg(resident, "how much do I owe?"))
        assert "in total" in reply.text

        assert [(e["event"], e["staff_id"]) for e in staff_events(engine.store, conversation)] == [
            ("handoff_taken", "staff-7"),
            ("handoff_released", "staff-9"),
        ]
        events = export_conversation(engine.store, conversation)["events"]  # type: ignore[index]
        kinds = [e["event"] for e in events if e["event"] in ("user", "pause", "resume")]
        # pause after the first turn, the quiet turn, resume, then the answered turn
        assert kinds == ["user", "pause", "user", "resume", "user"], kinds
        pause = next(e for e in events if e["event"] == "pause")
        resume = next(e for e in events if e["event"] == "resume")
        assert pause["metadata"]["staff_id"] == "staff-7"
        assert pause["metadata"]["after_turn"] == 1
        assert resume["metadata"]["staff_id"] == "staff-9"
        assert resume["metadata"]["after_turn"] == 2
    finally:
        await engine.billing.aclose()


async def test_a_resident_handoff_then_staff_release(seeded: Any, make_engine: Any) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    try:
        await engine.handle(_msg(resident, "let me talk to a human please"))
        conversation = engine.store.conversation_id_for(
            "telegram", f"tg-{resident}", resident, engine.clock()
        )
        assert waiting(engine.store, conversation)
        assert release(engine.store, conversation, staff="alice@office")
        row = engine.store.get_conversation(conversation)
        assert row is not None and row.status == "active" and not row.flagged
        events = export_conversation(engine.store, conversation)["events"]  # type: ignore[index]
        assert [e["metadata"]["staff_id"] for e in events if e["event"] == "resume"] == [
            "alice@office"
        ]
    finally:
        await engine.billing.aclose()


async def test_staff_id_is_required_and_unknown_conversations_change_nothing(
    seeded: Any, make_engine: Any
) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    try:
        await engine.handle(_msg(resident, "let me talk to a human please"))
        conversation = engine.store.conversation_id_for(
            "telegram", f"tg-{resident}", resident, engine.clock()
        )
        for bad in ("", "   ", "x" * 65, "bad\nid"):
            with pytest.raises(ValueError):
                release(engine.store, conversation, staff=bad)
        assert waiting(engine.store, conversation)
        assert staff_events(engine.store, conversation) == []
        missing = str(uuid.uuid4())
        assert not release(engine.store, missing, staff="staff-1")
        assert not take_over(engine.store, missing, staff="staff-1")
        assert engine.store.events(missing) == []
    finally:
        await engine.billing.aclose()


async def test_a_release_during_a_quiet_turn_is_not_undone_by_it(
    seeded: Any, make_engine: Any
) -> None:
    """The turn in flight read "waiting"; its commit must not write that back."""
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    try:
        await engine.handle(_msg(resident, "let me talk to a human please"))
        conversation = engine.store.conversation_id_for(
            "telegram", f"tg-{resident}", resident, engine.clock()
        )
        original = engine.store.acquire

        async def acquire_then_release(*args: Any, **kwargs: Any) -> Any:
            loaded = await original(*args, **kwargs)
            assert loaded.status == "waiting_for_staff"
            assert release(engine.store, conversation, staff="staff-3")
            return loaded

        engine.store.acquire = acquire_then_release  # type: ignore[method-assign]
        assert await engine.handle(_msg(resident, "hello?")) == []
        engine.store.acquire = original  # type: ignore[method-assign]
        assert not waiting(engine.store, conversation)
        await asyncio.sleep(0)
        [reply] = await engine.handle(_msg(resident, "how much do I owe?"))
        assert "in total" in reply.text
    finally:
        await engine.billing.aclose()
