"""Link a chat account to a resident with a one-time link code."""

from __future__ import annotations

from typing import Any

from actions.errors import BillingError, NotFound, ValidationFailed
from actions.replies import Reply


async def redeem_link_code(
    service_client: Any, code: str | None, *, channel: str, external_id: str
) -> tuple[Reply, tuple[str, str] | None]:
    """Redeem ``code`` for this channel user.

    Returns:
        The reply, and ``(resident_id, household_id)`` when the link was made.
    """
    if not code:
        return Reply("link_ask_code"), None
    try:
        result = await service_client.redeem_link_code(
            code, channel=channel, external_id=external_id
        )
    except (NotFound, ValidationFailed):
        return Reply("link_bad_code"), None
    except BillingError:
        return Reply("backend_down"), None
    return Reply("link_done"), (result.resident_id, result.household_id)
