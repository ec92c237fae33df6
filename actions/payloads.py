"""Button payloads: ``/name{json}``, the one format for what a button does.

A payload names what pressing the button does (an intent such as ``check_balance``
or a form step such as ``confirm_payment``) with its data, stamped with the
session (``"s"``) so a button of an earlier session does nothing. Payloads stay
on the server: channels only see a button's short id (``bot.messages.Button``).
"""

from __future__ import annotations

import json
import re
from typing import Any

_PAYLOAD_RE = re.compile(r"^/([a-z_]+)(\{.*\})?$", re.S)


def encode(name: str, session: str, **data: Any) -> str:
    """The payload of ``name`` with ``data``, stamped with ``session``."""
    data["s"] = session
    return f"/{name}{json.dumps(data, ensure_ascii=False, sort_keys=True)}"


def decode(payload: str) -> tuple[str, dict[str, Any]] | None:
    """``(name, data)`` of a payload, or ``None`` if it is not one."""
    match = _PAYLOAD_RE.match(payload.strip())
    if not match:
        return None
    if not match.group(2):
        return match.group(1), {}
    try:
        loaded = json.loads(match.group(2))
    except ValueError:
        return None
    return (match.group(1), loaded) if isinstance(loaded, dict) else None
