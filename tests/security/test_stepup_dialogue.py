# ruff: noqa: F811  (pytest fixtures imported from tests/conversations are parameters here)
"""The dialogue asks the backend about step-up and carries its proof; the API is the guardian.

Real NLU, the seeded community, the engine with the billing API in-process.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import create_engine, select

from backend.adapters import orm
from tests.conversations.conftest import (  # noqa: F401  (fixtures)
    clock,
    community_db,
    make_engine,
    nlu_model,
    seeded,
)

PIN = "482916"


def _chat(engine: Any, resident: str) -> Any:
    from bot.messages import IncomingMessage

    def say(text: str | None = None, payload: str | None = None) -> tuple[str, list[Any]]:
        replies = asyncio.run(
            engine.handle(
                IncomingMessage(
                    channel="telegram",
                    external_user_id=f"tg-{resident}",
                    resident_id=resident,
                    text=text,
                    button_payload=payload,
                    supports_files=False,
                )
            )
        )
        return "\n".join(r.text for r in replies), [b for r in replies for b in r.buttons]

    return say


def _resident_payments(url: str, household: str) -> list[Any]:
    db = create_engine(url)
    with db.connect() as conn:
        rows = conn.execute(
            select(orm.Payment.payment_id, orm.Payment.amount, orm.Payment.channel).where(
                orm.Payment.household_id == household, orm.Payment.source == "resident"
            )
        ).all()
        proofs = conn.execute(select(orm.StepUpProof.payment_id, orm.StepUpProof.kind)).all()
    db.dispose()
    return [(r, [p for p in proofs if p.payment_id == r.payment_id]) for r in rows]


def test_a_verified_payment_carries_the_backends_proof(
    seeded: Any,
    make_engine: Any,
    community_db: str,
    clock: Any,
) -> None:
    from bot.verifiers.pin import hash_pin

    engine = make_engine(step_up_threshold="1.00")  # the backend's policy, set in the fixture
    me = seeded.roles["payer"]
    engine.store.set_pin_hash(me["resident_id"], hash_pin(PIN), clock())
    say = _chat(engine, me["resident_id"])
    text, buttons = say("pay the water bill")
    assert "verify it's you" in text
    text, _ = say(payload=buttons[0].payload)
    assert "PIN" in text
    text, _ = say(PIN)
    assert "Paid" in text, text
    [(payment, proofs)] = _resident_payments(community_db, me["household_id"])
    assert proofs and proofs[0].kind == "pin"  # the proof was used by exactly this payment
    assert payment.channel == "telegram"


def test_without_a_proof_the_api_refuses_whatever_the_dialogue_thinks(
    seeded: Any,
    make_engine: Any,
    community_db: str,
    clock: Any,
) -> None:
    from bot.verifiers.pin import hash_pin

    engine = make_engine(step_up_threshold="1.00")
    engine.verification.billing = None  # outcomes not recorded: no proof is ever issued
    me = seeded.roles["payer"]
    engine.store.set_pin_hash(me["resident_id"], hash_pin(PIN), clock())
    say = _chat(engine, me["resident_id"])
    _, buttons = say("pay the water bill")
    say(payload=buttons[0].payload)
    text, _ = say(PIN)
    assert "Paid" not in text and "verify it's you first" in text, text
    assert "Nothing was charged" in text
    assert _resident_payments(community_db, me["household_id"]) == []
