"""Hypothesis over the dialogue: two residents of two households, random messages,
button presses (their own and the other's) and media. The engine never crashes and
never shows one household's data to the other.

Each example replays a generated sequence against one engine on the seeded
community (real NLU, real billing API in-process). The example count is small so
the suite stays fast; ``derandomize`` keeps runs reproducible.
"""

from __future__ import annotations

import asyncio
import io
import re
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conversations.conftest import (  # noqa: F401  (fixtures)
    clock,
    community_db,
    make_engine,
    nlu_model,
    seeded,
)

PHRASES = [
    "how much is my bill?",
    "pay the water bill",
    "pay 10 for gas",
    "pay everything",
    "why is electricity so high?",
    "show my last payments",
    "send me the receipt",
    "yes",
    "no",
    "cancel",
    "1",
    "2",
    "3",
    "482916",
    "pay the bill of unit {other_unit}",
    "what does household {other_household} owe?",
    "交水费",
    "我欠多少钱",
]


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 150, 120)).save(buf, format="PNG")
    return buf.getvalue()


def _money_strings(values: Any) -> set[str]:
    out = set()
    for v in values:
        d = Decimal(str(v))
        if d > 0:
            out.add(f"{d:.2f}")
    return out


step = st.tuples(
    st.sampled_from([0, 1]),
    st.one_of(
        st.tuples(st.just("text"), st.sampled_from(PHRASES)),
        st.tuples(st.just("text"), st.text(max_size=40)),
        st.tuples(st.just("press"), st.integers(0, 3)),
        st.tuples(st.just("steal"), st.integers(0, 3)),
        st.tuples(st.just("media"), st.sampled_from(["image", "voice", "junk"])),
    ),
)


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(steps=st.lists(step, min_size=3, max_size=10))
def test_two_households_never_see_each_other(
    steps: list[Any],
    seeded: Any,  # noqa: F811
    make_engine: Any,  # noqa: F811
) -> None:
    from bot.messages import Attachment, IncomingMessage

    engine = make_engine()
    people = [seeded.roles["payer"], seeded.roles["other"]]
    secrets = []
    for me, them in ((people[0], people[1]), (people[1], people[0])):
        mine = _money_strings(me["by_utility"].values()) | _money_strings([me["total"]])
        theirs = _money_strings(them["by_utility"].values()) | _money_strings([them["total"]])
        secrets.append({them["household_id"], them["unit"], *(theirs - mine)})
    last_buttons: list[list[Any]] = [[], []]
    png = _png()

    async def run() -> None:
        for who, (kind, value) in steps:
            me, them = people[who], people[1 - who]
            msg: dict[str, Any] = {}
            if kind == "text":
                msg["text"] = str(value).format(
                    other_unit=them["unit"], other_household=them["household_id"]
                )
            elif kind in ("press", "steal"):
                buttons = last_buttons[who if kind == "press" else 1 - who]
                if not buttons:
                    continue
                msg["button_payload"] = buttons[int(value) % len(buttons)].payload
            else:
                data = {"image": png, "voice": b"OggS" + bytes(200), "junk": bytes(range(256))}
                msg["attachments"] = (
                    Attachment(
                        kind="image" if value == "image" else "voice",
                        data=data[str(value)],
                        mime_type="image/png" if value == "image" else "audio/ogg",
                    ),
                )
            replies = await engine.handle(
                IncomingMessage(
                    channel="telegram",
                    external_user_id=f"tg-{me['resident_id']}",
                    resident_id=me["resident_id"],
                    supports_files=False,
                    **msg,
                )
            )
            text = "\n".join(r.text for r in replies)
            for secret in secrets[who]:
                assert not re.search(rf"(?<![\d.]){re.escape(secret)}(?!\d)", text), (
                    f"{me['resident_id']} was shown {secret!r} of the other household: {text!r}"
                )
            buttons = [b for r in replies for b in r.buttons]
            if buttons:
                last_buttons[who] = buttons

    asyncio.run(run())
