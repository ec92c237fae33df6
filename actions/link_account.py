"""Link a chat account to a resident with a one-time link code."""

from __future__ import annotations

from typing import Any

from actions.errors import BillingError, Conflict, NotFound, ValidationFailed
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
    except ValidationFailed as exc:
        if exc.code == "too_many_attempts":  # the backend's limit on wrong codes per chat
            return Reply("link_too_many"), None
        return Reply("link_bad_code"), None
    except (NotFound, Conflict):  # unknown, or already used
        return Reply("link_bad_code"), None
    except BillingError:
        return Reply("backend_down"), None
    return Reply("link_done"), (result.resident_id, result.household_id)
