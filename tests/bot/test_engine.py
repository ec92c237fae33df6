"""Engine unit tests with the fake billing client and a scripted NLU.

They pin down behaviour that the real NLU cannot be steered into reliably
(close intents, exact confidences) and error handling; the conversation tests
(tests/conversations) cover the same engine end to end with the real parts.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from billtalk.db import make_engine
from bot.engine import DialogueEngine
from bot.log_export import export_conversation
from bot.messages import IncomingMessage
from bot.settings import DialogueSettings
from bot.store import ConversationStore, ensure_schema
from tests.actions.fakes import FakeBillingClient


class ScriptedNlu:
    """Returns the parse queued for a text (or a low-confidence fallback)."""

    def __init__(self) -> None:
        self.parses: dict[str, dict[str, Any]] = {}

    def add(
        self, text: str, ranking: list[tuple[str, float]], language: str = "en", **entities: str
    ) -> None:
        self.parses[text] = {
            "text": text,
            "intent": {"name": ranking[0][0], "confidence": ranking[0][1]},
            "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
            "entities": [
                {"entity": k, "value": v, "start": 0, "end": 1} for k, v in entities.items()
            ],
            "language": language,
        }

    def parse(self, text: str, *, reference_date: Any = None) -> dict[str, Any]:
        return self.parses.get(text) or {
            "text": text,
            "intent": {"name": "nlu_fallback", "confidence": 0.2},
            "intent_ranking": [],
            "entities": [],
            "language": "en",
        }


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def parts(tmp_path: Path) -> tuple[DialogueEngine, FakeBillingClient, ScriptedNlu, Clock]:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    ensure_schema(url)
    client, nlu, clock = FakeBillingClient(), ScriptedNlu(), Clock()
    engine = DialogueEngine(
        ConversationStore(make_engine(url)),
        client,
        nlu,
        settings=DialogueSettings(),
        clock=clock,
        registry=None,
    )
    return engine, client, nlu, clock


async def say(engine: DialogueEngine, text: str | None = None, payload: str | None = None) -> str:
    replies = await engine.handle(
        IncomingMessage(
            channel="test",
            external_user_id="u1",
            resident_id="r-1",
            text=text,
            button_payload=payload,
        )
    )
    return "\n".join(r.text + "".join(f" [{b.title}]" for b in r.buttons) for r in replies)


async def test_close_top_intents_are_offered_as_buttons(parts) -> None:
    engine, _, nlu, _ = parts
    nlu.add("the bill", [("explain_bill", 0.48), ("check_balance", 0.46)])
    text = await say(engine, "the bill")
    assert "not sure" in text and "[Explain my bill]" in text and "[Check my balance]" in text
    [reply] = await engine.handle(
        IncomingMessage(channel="test", external_user_id="u1", resident_id="r-1", text="2")
    )
    assert "in total" in reply.text


async def test_two_misunderstandings_offer_a_human(parts) -> None:
    engine, *_ = parts
    assert "didn't understand" in await say(engine, "???")
    assert "[Talk to staff]" in await say(engine, "!!!")


async def test_the_reply_follows_the_message_language(parts) -> None:
    engine, _, nlu, _ = parts
    nlu.add("我欠多少钱", [("check_balance", 0.99)], language="zh")
    nlu.add("how much", [("check_balance", 0.99)])
    assert "共欠费192.79元" in await say(engine, "我欠多少钱")
    assert "¥192.79 in total" in await say(engine, "how much")


async def test_a_backend_outage_keeps_the_payment_and_apologises(parts) -> None:
    engine, client, nlu, _ = parts
    nlu.add("pay water", [("pay_bill", 0.99)], utility="water")
    assert "Please confirm" in await say(engine, "pay water")
    client.down = True
    text = await say(engine, "1")
    assert "couldn't reach the billing system" in text
    client.down = False
    assert "Paid" in await say(engine, "1")
    assert len(client.payments) == 1


async def test_an_unexpected_error_restores_the_state(parts, monkeypatch) -> None:
    engine, client, nlu, _ = parts
    nlu.add("pay water", [("pay_bill", 0.99)], utility="water")
    nlu.add("how much", [("check_balance", 0.99)])
    await say(engine, "pay water")

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(client, "get_balance", boom)
    assert "went wrong on my side" in await say(engine, "how much")
    monkeypatch.undo()
    assert "Paid" in await say(engine, "1")
    conversation = engine.store.conversation_id_for("test", "u1", "r-1", engine.clock())
    turns = engine.store.turns(conversation)
    assert turns[1].error == "internal_error: RuntimeError"


async def test_session_timeout_drops_the_confirmation(parts) -> None:
    engine, client, nlu, clock = parts
    nlu.add("pay water", [("pay_bill", 0.99)], utility="water")
    await say(engine, "pay water")
    clock.now += timedelta(minutes=11)
    text = await say(engine, "1")
    assert "timed out" in text and "no buttons" in text
    assert client.payments == []


async def test_the_log_masks_pii_and_exports_rasa_events(parts) -> None:
    engine, _, nlu, _ = parts
    nlu.add("my card 4242 4242 4242 4242 and phone 13812345678", [("out_of_scope", 0.9)])
    await say(engine, "my card 4242 4242 4242 4242 and phone 13812345678")
    conversation = engine.store.conversation_id_for("test", "u1", "r-1", engine.clock())
    data = export_conversation(engine.store, conversation)
    assert data is not None
    user = next(e for e in data["events"] if e["event"] == "user")
    assert user["text"] == "my card **** 4242 and phone [phone]"
    assert user["parse_data"]["intent"]["name"] == "out_of_scope"
    raw = export_conversation(engine.store, conversation, raw=True)
    assert "4242 4242 4242 4242" in json.dumps(raw)


async def test_stale_and_malformed_payloads_do_nothing(parts) -> None:
    engine, client, *_ = parts
    assert "earlier conversation" in await say(
        engine, payload='/confirm_payment{"t": "x", "s": "deadbeef"}'
    )
    assert "earlier conversation" in await say(engine, payload="not a payload")
    assert "earlier conversation" in await say(engine, payload='/confirm_payment{"t": ')
    assert client.payments == []


async def test_the_nlu_batcher_waits_for_company_only_when_turns_overlap(parts) -> None:
    engine, _, nlu, _ = parts
    nlu.add("how much", [("check_balance", 0.99)])
    company: list[bool] = []
    original = nlu.parse

    def parse(text: str, *, reference_date: Any = None) -> dict[str, Any]:
        assert engine._batcher is not None and engine._batcher.company is not None
        company.append(engine._batcher.company())
        return original(text, reference_date=reference_date)

    nlu.parse = parse  # type: ignore[method-assign]
    await say(engine, "how much")
    assert company == [False]  # one turn in flight: nobody to wait for

    company.clear()  # (new texts: a repeated one is answered from the NLU cache)
    nlu.add("how much now", [("check_balance", 0.99)])
    await asyncio.gather(
        say(engine, "how much now"),
        engine.handle(
            IncomingMessage(
                channel="test", external_user_id="u2", resident_id="r-1", text="how much then"
            )
        ),
    )
    assert True in company  # two turns in flight: worth waiting for the other


async def test_a_turn_that_raises_is_no_longer_counted_in_flight(parts, monkeypatch) -> None:
    engine = parts[0]

    async def broken(message: IncomingMessage) -> list[Any]:
        raise RuntimeError("store down")

    monkeypatch.setattr(engine, "_handle", broken)
    with pytest.raises(RuntimeError, match="store down"):
        await say(engine, "how much")
    assert engine._turns_in_flight == 0
