"""Unpairing a speaker from the chat: "remove the kitchen speaker", "解绑厨房的音箱".

The policy calls :func:`remove_speaker` on every parsed text message outside a
form; it answers (and returns True) only for a request to remove, unpair or
forget a speaker. The speaker is found among the household's paired speakers by
the words before "speaker" (its label, e.g. the Home Assistant satellite or
area name "kitchen", or its device id); with one paired speaker those words may
be left out. A match is unpaired at once (it can always be paired again with
the link code) and the resident is told which.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

_EN = re.compile(
    r"\b(?:remove|unpair|forget|disconnect|unlink|delete)\s+(?:the\s+|my\s+|our\s+|this\s+)?"
    r"(?P<name>[\w\s-]*?)\s*(?:smart\s+)?speaker\b",
    re.I,
)
_ZH = re.compile(r"(?:移除|解绑|删除|取消绑定|断开)(?P<name>[\w\s]*?)(?:的)?(?:智能)?音箱")


def removal_request(text: str) -> str | None:
    """The speaker's name in a removal request ("" if unnamed), or ``None`` if it isn't one."""
    match = _EN.search(text) or _ZH.search(text)
    if match is None:
        return None
    return match.group("name").strip().lower()


async def remove_speaker(policy: Any, turn: Any, text: str) -> bool:
    """Handle "remove the kitchen speaker"; whether the message was such a request."""
    if turn.state.active_form is not None or turn.resident_id is None:
        return False
    name = removal_request(text)
    if name is None:
        return False
    from bot.channels.speaker.devices import DeviceRegistry

    ctx = await policy.context(turn)
    registry = DeviceRegistry(policy.store.engine)
    devices = await asyncio.to_thread(registry.devices)
    mine = [d for d in devices if d.household_id == ctx.household_id]
    turn.actions.append("speaker_remove")
    if name:
        chosen = [d for d in mine if name in d.label.lower() or name == d.device_id.lower()]
    else:
        chosen = mine if len(mine) == 1 else []
    if len(chosen) != 1:
        names = ", ".join(d.label or d.device_id for d in mine)
        if not mine:
            turn.say("speaker_none")
        else:
            turn.say("speaker_remove_which", names=names)
        return True
    device = chosen[0]
    await asyncio.to_thread(registry.unpair, device.device_id)
    turn.actions.append("speaker_removed")
    turn.say("speaker_removed", name=device.label or device.device_id)
    return True
