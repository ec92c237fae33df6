"""The risk review queue: payments the backend's risk rules held, approved or declined by staff.

Reads and decides through the billing service layer (``held_payments``,
``review_payment``): approving charges the payment now, declining charges
nothing; either way the backend tells the resident once. Staff see only their
buildings' payments.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from console.queries import Scope


class ReviewError(ValueError):
    """The decision was refused (unknown payment, or no longer held)."""


def held(billing_engine: Engine, scope: Scope, limit: int = 200) -> list[dict[str, Any]]:
    """Held payments in ``scope``, oldest first, with the unit and the risk assessment."""
    from backend.adapters.orm import Household
    from backend.service_layer import services
    from backend.service_layer.unit_of_work import UnitOfWork

    payments = services.held_payments(UnitOfWork(billing_engine), limit=limit)
    ids = list({p.household_id for p in payments})
    with Session(billing_engine) as s:
        homes = {
            h: (unit, building)
            for h, unit, building in s.execute(
                select(Household.household_id, Household.unit, Household.building_id).where(
                    Household.household_id.in_(ids)
                )
            )
        }
    out = []
    for p in payments:
        unit, building = homes.get(p.household_id, (None, None))
        if scope.buildings is not None and building not in scope.buildings:
            continue
        out.append({**p.model_dump(mode="json"), "unit": unit, "building_id": building})
    return out


def decide(
    billing_engine: Engine,
    scope: Scope,
    payment_id: str,
    *,
    approve: bool,
    staff: str,
    reason: str,
) -> dict[str, Any]:
    """Approve (charge now) or decline a held payment in ``scope``; the payment afterwards.

    Raises:
        ReviewError: not a held payment this staff member may see, or no longer held.
    """
    from backend.gateway import get_gateway
    from backend.service_layer import services
    from backend.service_layer.errors import ServiceError
    from backend.service_layer.unit_of_work import UnitOfWork

    if not any(p["payment_id"] == payment_id for p in held(billing_engine, scope, limit=10_000)):
        raise ReviewError("no such payment waiting for review")
    try:
        result = services.review_payment(
            UnitOfWork(billing_engine),
            get_gateway(),
            payment_id,
            approve=approve,
            staff=staff,
            reason=reason[:200],
        )
    except ServiceError as exc:
        raise ReviewError(str(exc)) from exc
    return result.model_dump(mode="json")
