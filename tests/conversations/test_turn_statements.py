"""The SQL a text turn costs the dialogue store, and the link it reads each turn.

Once a process knows a chat's conversation, a turn reads the chat's link in the lease's
own statement (``UPDATE ... RETURNING`` with the link as subqueries) instead of a
``SELECT`` of its own before it. The link is still read on every turn: an unlink, or a
link to another household, shows at the chat's next message. Real seeded database,
real backend, real NLU.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from bot.channels.telegram.adapter import unlink_chat
from bot.engine import Reply
from bot.messages import IncomingMessage

CHAT = "tg-statements"


def _ask(n: int) -> IncomingMessage:
    return IncomingMessage(
        channel="telegram",
        external_user_id=CHAT,
        text="how much do I owe?",
        delivery_id=f"telegram:1:{n}",
    )


async def test_a_known_chats_turn_reads_its_link_with_the_lease(
    make_engine: Any, seeded: Any, clock: Any
) -> None:
    engine = make_engine()
    payer = seeded.roles["payer"]
    engine.store.link("telegram", CHAT, payer["resident_id"], payer["household_id"], clock())
    await engine.handle(_ask(1))  # the conversation is created and its id remembered

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.split()[0] in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            statements.append(" ".join(statement.split()))

    event.listen(engine.store.engine, "before_cursor_execute", count)
    try:
        [reply] = await engine.handle(_ask(2))
    finally:
        event.remove(engine.store.engine, "before_cursor_execute", count)
    assert "owe" in reply.text.lower() or "due" in reply.text.lower(), reply.text
    kinds = [
        s.split(" ")[0] + " " + s.split(" ")[2 if s.startswith(("INSERT", "DELETE")) else 1]
        for s in statements
    ]
    # The lease (with the link), the delivery's record, then the turn's transaction: the
    # conversation, the turn's row, the delivery. No SELECT of bot_channel_links of its own.
    assert kinds == [
        "UPDATE bot_conversations",
        "SELECT bot_processed_deliveries.delivery_id,",
        "UPDATE bot_conversations",
        "INSERT bot_turns",
        "INSERT bot_processed_deliveries",
    ], statements
    assert "bot_channel_links" in statements[0]


async def test_the_link_is_read_afresh_every_turn(
    make_engine: Any, seeded: Any, clock: Any
) -> None:
    engine = make_engine()
    payer, other = seeded.roles["payer"], seeded.roles["other"]
    engine.store.link("telegram", CHAT, payer["resident_id"], payer["household_id"], clock())
    [first] = await engine.handle(_ask(1))
    assert f"{payer['total']:,.2f}" in first.text, first.text

    assert unlink_chat(engine.store, CHAT)
    [unlinked] = await engine.handle(_ask(2))
    assert unlinked.text == engine.render_replies([Reply("link_required")], "en")[0].text
    assert f"{payer['total']:,.2f}" not in unlinked.text

    engine.store.link("telegram", CHAT, other["resident_id"], other["household_id"], clock())
    [relinked] = await engine.handle(_ask(3))
    assert f"{other['total']:,.2f}" in relinked.text, relinked.text
    assert f"{payer['total']:,.2f}" not in relinked.text
