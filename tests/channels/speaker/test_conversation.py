"""A whole conversation with a speaker over Wyoming: pair, ask, pay with confirmation and PIN.

The speaker is driven as Home Assistant's conversation agent drives a handle
program: one connection per request, a ``transcript`` with ``context``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from tests.channels.speaker.conftest import WyomingServer

PIN = "482913"
SPOKEN_PIN = "four eight two nine one three"
AMOUNT = re.compile(r"\d+\.\d{2}")


async def _balance(server: WyomingServer, household_id: str) -> Any:
    return await server.engine.billing.get_balance(household_id)


def _set_pin(server: WyomingServer, resident_id: str) -> None:
    from bot.verifiers.pin import hash_pin

    server.engine.store.set_pin_hash(resident_id, hash_pin(PIN), server.engine.clock())


async def test_pair_ask_and_pay_with_confirmation_and_spoken_pin(
    wyoming_server: WyomingServer, seeded: Any
) -> None:
    server = wyoming_server
    payer = seeded.roles["payer"]
    _set_pin(server, payer["resident_id"])
    water = payer["by_utility"]["water"]
    assert Decimal(0) < water < Decimal("200.00")

    paired = await server.handle(f"my link code is {payer['link_code']}")
    assert paired.type == "handled" and "paired" in paired.data["text"]

    # "yes" with nothing pending pays nothing.
    reply = await server.handle("yes")
    assert "Pay" not in reply.data["text"]
    assert (await _balance(server, payer["household_id"])).total_due == payer["total"]

    reply = await server.handle("how much do I owe?")
    assert f"{payer['total']:.2f} yuan" in reply.data["text"]
    assert "¥" not in reply.data["text"] and "\n" not in reply.data["text"]

    reply = await server.handle("pay the water bill")
    assert reply.data["text"].startswith(f"Pay {water:.2f} yuan for water by ")
    assert reply.data["text"].endswith("Say yes to pay, or no.")

    reply = await server.handle("yes")
    assert "PIN" in reply.data["text"], reply.data["text"]
    assert (await _balance(server, payer["household_id"])).by_utility["water"] == water

    wrong = await server.handle("one two three four five six")
    assert "didn't match" in wrong.data["text"]
    assert (await _balance(server, payer["household_id"])).by_utility["water"] == water

    paid = await server.handle(SPOKEN_PIN)
    assert f"Paid {water:.2f} yuan for water" in paid.data["text"], paid.data["text"]
    after = await _balance(server, payer["household_id"])
    assert after.total_due == payer["total"] - water
    assert "water" not in after.by_utility or after.by_utility["water"] == 0

    # The PIN was never logged.
    turns = server.engine.store.turns(
        server.engine.store.conversation_id_for(
            "speaker", "kitchen-satellite", None, server.engine.clock()
        )
    )
    assert all(PIN not in (t.text_raw or "") and "4 8 2" not in (t.text_raw or "") for t in turns)


async def test_chinese_on_the_speaker(wyoming_server: WyomingServer, seeded: Any) -> None:
    server = wyoming_server
    payer = seeded.roles["payer"]
    _set_pin(server, payer["resident_id"])
    await server.handle(f"my link code is {payer['link_code']}", device="living-room")
    reply = await server.handle("我欠多少钱", device="living-room", language="zh")
    text = reply.data["text"]
    assert f"{payer['total']:.2f}元" in text, text
    assert "您共欠费" in text
    gas = payer["by_utility"]["gas"]
    reply = await server.handle("交燃气费", device="living-room", language="zh")
    assert f"燃气费{gas:.2f}元" in reply.data["text"], reply.data["text"]
    assert "说“是”付款" in reply.data["text"]
    reply = await server.handle("是", device="living-room", language="zh")
    assert "密码" in reply.data["text"], reply.data["text"]
    reply = await server.handle("四八二九一三", device="living-room", language="zh")
    assert "支付成功" in reply.data["text"], reply.data["text"]
    after = await _balance(server, payer["household_id"])
    assert after.total_due == payer["total"] - gas


async def test_a_large_payment_is_refused_and_sent_to_the_chat(
    wyoming_server: WyomingServer, seeded: Any
) -> None:
    from bot.outbox import OutboxRow

    server = wyoming_server
    payer = seeded.roles["payer"]
    _set_pin(server, payer["resident_id"])
    server.engine.store.link(
        "telegram", "700001", payer["resident_id"], payer["household_id"], server.engine.clock()
    )
    big = max(payer["by_utility"], key=lambda u: payer["by_utility"][u])
    assert payer["by_utility"][big] >= Decimal("200.00")
    await server.handle(f"my link code is {payer['link_code']}")
    name = big.replace("_", " ")
    reply = await server.handle(f"pay the {name} bill")
    assert "confirm it in Telegram" in reply.data["text"], reply.data["text"]
    yes = await server.handle("yes")
    assert "PIN" not in yes.data["text"]
    assert (await _balance(server, payer["household_id"])).total_due == payer["total"]
    with server.engine.store.session() as s:
        rows = list(s.scalars(select(OutboxRow).where(OutboxRow.kind == "step_up")))
    assert [(r.channel, r.external_user_id) for r in rows] == [("telegram", "700001")]
    assert f"{payer['by_utility'][big]:.2f}" in rows[0].message


async def test_a_resident_without_a_pin_is_sent_to_the_chat(
    wyoming_server: WyomingServer, seeded: Any
) -> None:
    server = wyoming_server
    payer = seeded.roles["payer"]
    await server.handle(f"my link code is {payer['link_code']}")
    await server.handle("pay the water bill")
    reply = await server.handle("yes")
    assert "set up a PIN in the chat" in reply.data["text"], reply.data["text"]
    assert (await _balance(server, payer["household_id"])).total_due == payer["total"]


@pytest.mark.parametrize("attempts", [3])
async def test_wrong_link_codes_lock_pairing(
    wyoming_server: WyomingServer, seeded: Any, attempts: int
) -> None:
    server = wyoming_server
    payer = seeded.roles["payer"]
    for n in range(attempts):
        reply = await server.handle(f"my link code is 00000{n}", device="hall")
        assert reply.type == "not-handled"
    assert "locked" in reply.data["text"]
    # Even the right code is refused while locked, and nothing is told.
    reply = await server.handle(f"my link code is {payer['link_code']}", device="hall")
    assert "locked" in reply.data["text"]
    reply = await server.handle("how much do I owe?", device="hall")
    assert not AMOUNT.search(reply.data["text"])
    # Another speaker is not affected.
    reply = await server.handle(f"my link code is {payer['link_code']}", device="study")
    assert reply.type == "handled"


async def test_a_resident_removes_the_kitchen_speaker_from_the_chat(
    wyoming_server: WyomingServer, seeded: Any
) -> None:
    from bot.messages import IncomingMessage

    server = wyoming_server
    payer = seeded.roles["payer"]
    await server.handle(
        f"my link code is {payer['link_code']}", device="k-1", context={"satellite_id": "kitchen"}
    )
    # A link code is used once: the second speaker is paired as if with a new code.
    now = server.engine.clock()
    server.engine.store.link("speaker", "b-1", payer["resident_id"], payer["household_id"], now)
    server.service.channel.devices.touch("b-1", "wyoming", now, "bedroom")

    async def chat(text: str) -> str:
        replies = await server.engine.handle(
            IncomingMessage(
                channel="terminal",
                external_user_id=payer["resident_id"],
                resident_id=payer["resident_id"],
                text=text,
            )
        )
        return "\n".join(r.text for r in replies)

    which = await chat("remove the speaker")
    assert "Which speaker" in which and "kitchen" in which and "bedroom" in which
    assert "kitchen speaker is no longer paired" in await chat("remove the kitchen speaker")
    reply = await server.handle("how much do I owe?", device="k-1")
    assert "link code" in reply.data["text"] and not AMOUNT.search(reply.data["text"])
    reply = await server.handle("how much do I owe?", device="b-1")
    assert f"{payer['total']:.2f}" in reply.data["text"]


async def test_guessing_codes_from_ever_new_device_ids_locks_pairing_for_all(
    wyoming_server: WyomingServer, seeded: Any
) -> None:
    from bot.channels.speaker.settings import SpeakerSettings

    server = wyoming_server
    payer = seeded.roles["payer"]
    await server.handle(f"my link code is {payer['link_code']}", device="paired-first")
    server.service.channel.settings = SpeakerSettings(
        pairing_max_failures=3, pairing_max_failures_global=4
    )
    for n in range(4):
        reply = await server.handle(f"my link code is 10000{n}", device=f"guess-{n}")
        assert "didn't work" in reply.data["text"], reply.data["text"]
    reply = await server.handle("my link code is 123456", device="guess-new")
    assert "locked" in reply.data["text"]
    # A speaker paired before keeps working.
    reply = await server.handle("how much do I owe?", device="paired-first")
    assert f"{payer['total']:.2f}" in reply.data["text"]


async def test_a_pin_is_never_set_by_voice_after_pairing(
    wyoming_server: WyomingServer, seeded: Any
) -> None:
    server = wyoming_server
    payer = seeded.roles["payer"]
    await server.handle(f"my link code is {payer['link_code']}")
    for _ in range(2):
        reply = await server.handle(SPOKEN_PIN)
        assert "PIN" not in reply.data["text"] or "set up a PIN in the chat" in reply.data["text"]
    assert server.engine.store.get_pin_hash(payer["resident_id"]) is None


async def test_paying_everything_on_the_speaker_is_sent_to_the_chat(
    wyoming_server: WyomingServer, seeded: Any
) -> None:
    from bot.outbox import OutboxRow

    server = wyoming_server
    payer = seeded.roles["payer"]
    assert payer["total"] >= Decimal("200.00")
    server.engine.store.link(
        "telegram", "700002", payer["resident_id"], payer["household_id"], server.engine.clock()
    )
    await server.handle(f"my link code is {payer['link_code']}")
    reply = await server.handle("pay everything")
    assert "confirm it in Telegram" in reply.data["text"], reply.data["text"]
    with server.engine.store.session() as s:
        [row] = list(s.scalars(select(OutboxRow).where(OutboxRow.kind == "step_up")))
    assert "towards your bills" in row.message and "None" not in row.message
    assert (await _balance(server, payer["household_id"])).total_due == payer["total"]
