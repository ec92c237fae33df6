"""``billtalk handoff list / take / release``: the real command line on a seeded database.

Conversations are made by the real engine (real NLU) on a copy of the seeded
community; the commands run as separate processes (``python -m app``, the ``billtalk`` command) on
the same database, and the engine then sees what staff did.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bot.log_export import export_conversation
from bot.messages import IncomingMessage
from tests.conversations.test_cli import BILLTALK, REPO, _env


def _msg(resident: str, text: str) -> IncomingMessage:
    return IncomingMessage(
        channel="telegram", external_user_id=f"tg-{resident}", resident_id=resident, text=text
    )


def _billtalk(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BILLTALK, "handoff", *args],
        capture_output=True,
        encoding="utf-8",
        env=_env(url),
        cwd=REPO,
        timeout=300,
    )


def _listed(url: str) -> list[dict[str, Any]]:
    result = _billtalk(url, "list")
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


async def _conversation(engine: Any, resident: str, text: str) -> str:
    await engine.handle(_msg(resident, text))
    return str(
        engine.store.conversation_id_for("telegram", f"tg-{resident}", resident, engine.clock())
    )


async def test_staff_list_take_and_release_from_the_command_line(
    seeded: Any, make_engine: Any, community_db: str
) -> None:
    engine = make_engine()
    payer = seeded.roles["payer"]["resident_id"]
    other = seeded.roles["other"]["resident_id"]
    try:
        asked = await _conversation(engine, payer, "let me talk to a human please")
        quiet = await _conversation(engine, other, "my card is 4111 1111 1111 1111, how much?")
        [waiting] = _listed(community_db)
        assert waiting["conversation_id"] == asked and waiting["resident_id"] == payer
        assert waiting["channel"] == "telegram" and waiting["taken_by"] is None
        assert waiting["last_message"] == "let me talk to a human please"

        took = _billtalk(community_db, "take", "--conversation", quiet, "--staff", "staff-7")
        assert took.returncode == 0, took.stderr[-2000:]
        assert json.loads(took.stdout) == {
            "conversation_id": quiet,
            "status": "waiting_for_staff",
            "staff_id": "staff-7",
        }
        listed = _listed(community_db)
        assert [c["conversation_id"] for c in listed] == [asked, quiet], "oldest first"
        assert listed[1]["taken_by"] == "staff-7"
        assert "4111 1111 1111 1111" not in json.dumps(listed), "PII masked"
        # the assistant is quiet in the taken conversation
        assert await engine.handle(_msg(other, "how much do I owe?")) == []

        released = _billtalk(community_db, "release", "--conversation", quiet, "--staff", "alice")
        assert released.returncode == 0, released.stderr[-2000:]
        assert json.loads(released.stdout)["status"] == "active"
        [reply] = await engine.handle(_msg(other, "how much do I owe?"))
        assert "in total" in reply.text, reply.text
        assert [c["conversation_id"] for c in _listed(community_db)] == [asked]

        events = export_conversation(engine.store, quiet)["events"]  # type: ignore[index]
        staff = [
            (e["event"], e["metadata"]["staff_id"])
            for e in events
            if e["event"] in ("pause", "resume")
        ]
        assert staff == [("pause", "staff-7"), ("resume", "alice")]
    finally:
        await engine.billing.aclose()


async def test_handoff_commands_refuse_bad_input_and_change_nothing(
    seeded: Any, make_engine: Any, community_db: str
) -> None:
    engine = make_engine()
    payer = seeded.roles["payer"]["resident_id"]
    try:
        active = await _conversation(engine, payer, "how much do I owe?")
        unknown = _billtalk(community_db, "take", "--conversation", "nope", "--staff", "s1")
        assert unknown.returncode == 2 and "no conversation 'nope'" in unknown.stderr
        blank = _billtalk(community_db, "take", "--conversation", active, "--staff", "  ")
        assert blank.returncode == 2 and "staff is required" in blank.stderr, blank.stderr
        not_waiting = _billtalk(community_db, "release", "--conversation", active, "--staff", "s1")
        assert not_waiting.returncode == 1 and "not waiting for staff" in not_waiting.stderr
        missing = _billtalk(community_db, "take", "--conversation", active)
        assert missing.returncode == 2 and "--staff" in missing.stderr
        assert "Traceback" not in unknown.stderr + blank.stderr + not_waiting.stderr
        assert _listed(community_db) == []
        assert engine.store.events(active) == [], "nothing recorded"
        [reply] = await engine.handle(_msg(payer, "how much do I owe?"))
        assert "in total" in reply.text
    finally:
        await engine.billing.aclose()
