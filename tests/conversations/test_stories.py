"""Conversation tests: YAML stories run through the real NLU against a seeded database.

Each story (``tests/conversations/*.yml``) is a list of steps:

``user: TEXT``
    The resident sends TEXT (``{other.unit}``, ``{other.household_id}``,
    ``{other.link_code}``, ``{other.resident_id}``, ``{me.unit}`` are filled in).
``press: N``
    The resident sends the number N (the terminal chat's button press).
``replay: N``
    Re-send the payload of button N of an earlier reply (``replay_from`` says
    which step, default the previous one that had buttons): a double-press or a
    stale button.
``wait_minutes: M``
    The engine's clock moves on.
``set_token: TOKEN``
    The household's saved payment instrument becomes a sandbox test token
    (``tok_decline``, ``tok_timeout``...): how a declined card is simulated.
``set_pin: PIN``
    The resident already has this PIN (set earlier, the safe way): test setup.
``staff_code: true``
    The property office issues a fresh one-time code for the resident (the
    billing API's link code) and the resident sends it (``staff_code: other``:
    a code issued for the other household's resident).

Per step, ``intent`` is the expected NLU intent, ``bot`` fragments that must all
appear in the reply (case-insensitive), ``bot_not`` fragments that must not,
and ``buttons`` the expected number of buttons. A story's ``expect`` checks the
backend afterwards: ``payments`` (new payments, count), ``paid`` (amounts of new
succeeded payments), ``balance_change`` (how much the total due fell),
``status`` / ``flagged`` (the conversation row), and ``log_excludes`` (strings
never written to the conversation log, e.g. a PIN).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, text, update

HERE = Path(__file__).resolve().parent


def _stories() -> list[Any]:
    out = []
    for path in sorted(HERE.glob("*.yml")):
        for story in yaml.safe_load(path.read_text(encoding="utf-8")):
            out.append(pytest.param(story, id=f"{path.stem}:{story['story']}"))
    return out


STORIES = _stories()


def test_there_are_at_least_40_stories() -> None:
    assert len(STORIES) >= 40


def _fill(text: str, roles: dict[str, dict[str, Any]], me: dict[str, Any]) -> str:
    other = roles["other"]
    values = {
        "other.unit": other["unit"],
        "other.household_id": other["household_id"],
        "other.link_code": other["link_code"],
        "other.resident_id": other["resident_id"],
        "other.total": str(other["total"]),
        "me.unit": me["unit"],
        "me.household_id": me["household_id"],
    }
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


async def _household_state(client: Any, household_id: str) -> tuple[Decimal, list[Any]]:
    balance = await client.get_balance(household_id)
    payments = await client.list_payments(household_id, limit=50)
    return balance.total_due, payments


@pytest.mark.parametrize("story", STORIES)
async def test_story(story: dict[str, Any], seeded: Any, make_engine: Any, clock: Any) -> None:
    from bot.messages import IncomingMessage
    from bot.store import TurnRow

    engine = make_engine(**story.get("settings", {}))
    me = seeded.roles[story.get("resident", "payer")]
    resident_id = me["resident_id"]
    channel = story.get("channel", "terminal")
    total_before, payments_before = await _household_state(engine.billing, me["household_id"])
    other = seeded.roles["other"]
    other_before = await _household_state(engine.billing, other["household_id"])
    history: list[Any] = []
    try:
        for number, step in enumerate(story["steps"], 1):
            where = f"step {number} {step}"
            if "wait_minutes" in step:
                clock.advance(minutes=float(step["wait_minutes"]))
                continue
            if "set_token" in step:
                from backend.adapters import orm

                with engine.store.engine.begin() as conn:
                    conn.execute(
                        update(orm.Household)
                        .where(orm.Household.household_id == me["household_id"])
                        .values(saved_method_token=step["set_token"])
                    )
                continue
            if "set_pin" in step:
                from bot.verifiers.pin import hash_pin

                engine.store.set_pin_hash(resident_id, hash_pin(str(step["set_pin"])), clock())
                continue
            payload = None
            text_in: str | None = None
            if "staff_code" in step:
                whose = other["resident_id"] if step["staff_code"] == "other" else resident_id
                issued = await engine.billing.create_link_code(whose)
                text_in = str(issued.code)
                step = {**step, "_code": text_in}
            elif "press" in step:
                text_in = str(step["press"])
            elif "replay" in step:
                source = (
                    history[step["replay_from"] - 1]
                    if "replay_from" in step
                    else next(h for h in reversed(history) if h and h[0].buttons)
                )
                payload = source[0].buttons[int(step["replay"]) - 1].payload
            else:
                text_in = _fill(str(step.get("user", "")), seeded.roles, me)
                if "repeat" in step:
                    text_in = text_in * int(step["repeat"])
            replies = await engine.handle(
                IncomingMessage(
                    channel=channel,
                    external_user_id=resident_id,
                    resident_id=resident_id,
                    text=text_in,
                    button_payload=payload,
                    language=story.get("lang", "en"),
                    supports_files=False,
                )
            )
            history.append(replies)
            reply = "\n".join(r.text for r in replies)
            lowered = reply.lower()
            if "intent" in step:
                turns = engine.store.turns(
                    engine.store.conversation_id_for(channel, resident_id, resident_id, clock())
                )
                got = turns[-1].intent
                wanted = step["intent"]
                wanted = wanted if isinstance(wanted, list) else [wanted]
                assert got in wanted, f"{where}: intent {got!r}, reply {reply!r}"
            for fragment in step.get("bot", []):
                fragment = _fill(str(fragment), seeded.roles, me)
                assert fragment.lower() in lowered, f"{where}: {fragment!r} not in {reply!r}"
            if "_code" in step:
                assert step["_code"] not in reply, f"{where}: the code was echoed"
            for fragment in step.get("bot_not", []):
                fragment = _fill(str(fragment), seeded.roles, me)
                assert fragment.lower() not in lowered, f"{where}: {fragment!r} in {reply!r}"
            if "buttons" in step:
                count = sum(len(r.buttons) for r in replies)
                assert count == step["buttons"], f"{where}: {count} buttons in {reply!r}"
            if step.get("silent"):
                assert not replies, f"{where}: expected no reply, got {reply!r}"
        expect = story.get("expect", {})
        total_after, payments_after = await _household_state(engine.billing, me["household_id"])
        before_ids = {p.payment_id for p in payments_before}
        new = [p for p in payments_after if p.payment_id not in before_ids]
        if "payments" in expect:
            assert len(new) == expect["payments"], [(p.amount, p.status) for p in new]
        if "paid" in expect:
            got = sorted(p.amount for p in new if p.status == "succeeded")
            assert got == sorted(Decimal(str(a)) for a in expect["paid"]), new
        if "paid_full" in expect:
            got = sorted(p.amount for p in new if p.status == "succeeded")
            assert got == sorted(Decimal(me["by_utility"][u]) for u in expect["paid_full"]), new
        if "statuses" in expect:
            assert sorted(p.status for p in new) == sorted(expect["statuses"]), new
        if expect.get("balance_change_all"):
            assert total_after == 0, f"{total_after} still due after paying everything"
            assert len([p for p in new if p.status == "succeeded"]) == 1, new
        if "balance_change" in expect:
            assert total_before - total_after == Decimal(str(expect["balance_change"]))
        other_after = await _household_state(engine.billing, other["household_id"])
        assert other_after[0] == other_before[0], "another household's balance changed"
        assert len(other_after[1]) == len(other_before[1]), "another household was charged"
        conversation_id = engine.store.conversation_id_for(
            channel, resident_id, resident_id, clock()
        )
        row = engine.store.get_conversation(conversation_id)
        assert row is not None
        if "status" in expect:
            assert row.status == expect["status"]
        if "flagged" in expect:
            assert row.flagged == expect["flagged"], row.flag_reason
        state = json.loads(row.state)
        assert state["session_id"], "state must stay loadable"
        if expect.get("log_excludes"):
            with engine.store.session() as s:
                dumped = json.dumps(
                    [
                        {c.name: str(getattr(t, c.name)) for c in TurnRow.__table__.columns}
                        for t in s.scalars(select(TurnRow))
                    ],
                    ensure_ascii=False,
                )
                dumped += row.state
                dumped += str(s.execute(text("select * from bot_conversations")).all())
            for secret in expect["log_excludes"]:
                assert str(secret) not in dumped, f"{secret!r} was written to the log/state"
        if "log_turns" in expect:
            assert len(engine.store.turns(conversation_id)) == expect["log_turns"]
    finally:
        await engine.billing.aclose()
