"""The engine keeps a resident's scoped billing token until shortly before it expires.

Minting a scoped token is an audited write. The engine re-reads the resident's profile
every ``scope_ttl_s``, and it used to mint a new token with each read. Under load that put
one ``token.issued`` entry into the audit chain per active resident per minute. Real seeded
database, real backend, real NLU.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from backend.adapters import orm
from billtalk.db import make_engine as make_db
from bot.messages import IncomingMessage


def _ask(resident: str) -> IncomingMessage:
    return IncomingMessage(
        channel="telegram",
        external_user_id=f"tg-{resident}",
        resident_id=resident,
        text="how much do I owe?",
    )


def _tokens_issued(url: str, resident: str) -> int:
    db = make_db(url)
    try:
        with db.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(orm.AuditEntry)
                    .where(orm.AuditEntry.kind == "token.issued")
                    .where(orm.AuditEntry.subject == resident)
                ).scalar_one()
            )
    finally:
        db.dispose()


async def test_profile_reads_reuse_the_token_until_it_nears_expiry(
    make_engine: Any, seeded: Any, community_db: str
) -> None:
    engine = make_engine()
    engine._scope_ttl = 0.0  # every turn reads the resident's profile again
    resident = seeded.roles["payer"]["resident_id"]
    for _ in range(3):
        [reply] = await engine.handle(_ask(resident))
        assert "owe" in reply.text.lower() or "due" in reply.text.lower(), reply.text
    assert _tokens_issued(community_db, resident) == 1

    # The backend gave the token an expiry (30 minutes by default), which the engine
    # keeps to; a token near it is replaced before a turn can outlive it.
    cached = engine._scopes[resident]
    assert cached.client.token_expires_at is not None
    assert cached.token_until < float("inf")
    cached.token_until = 0.0
    await engine.handle(_ask(resident))
    assert _tokens_issued(community_db, resident) == 2
