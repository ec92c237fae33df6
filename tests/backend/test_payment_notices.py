"""A payment left pending (gateway timeout) tells the household through the outbox when
it settles later, by reconciliation or webhook: exactly one notice per payment."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from backend.adapters import orm
from backend.gateway import SandboxGateway
from backend.service_layer import services
from tests.backend.conftest import Community

D = Decimal


def _payment_notices(community: Community) -> list[orm.Notice]:
    with community.uow as uow:
        return list(
            uow.session.scalars(select(orm.Notice).where(orm.Notice.payment_id.is_not(None)))
        )


def test_reconciled_success_queues_one_notice(
    community: Community, gateway: SandboxGateway
) -> None:
    uow = community.uow
    resp, _ = services.create_payment(
        uow,
        gateway,
        community.h1,
        D("50.00"),
        "card",
        "n1",
        utility="water",
        payment_token="tok_timeout",
    )
    assert resp["status"] == "pending"
    assert _payment_notices(community) == []  # nothing to tell yet
    services.reconcile_pending(uow, gateway)
    services.reconcile_pending(uow, gateway)  # a second run adds nothing
    [notice] = _payment_notices(community)
    assert notice.payment_id == resp["payment_id"]
    assert notice.household_id == community.h1
    assert notice.kind == "payment_succeeded" and notice.status == "pending"
    assert notice.amount_due == D("50.00") and notice.bill_id is None
    p = services.get_payment(uow, resp["payment_id"])
    assert p.receipt_no and p.receipt_no in notice.message and "water" in notice.message
    # the outbox lists it with the household's residents, and delivers it once
    listed = [n for n in services.pending_notices(uow, household_id=community.h1) if n.payment_id]
    assert [n.notice_id for n in listed] == [notice.notice_id] and listed[0].resident_ids
    assert services.mark_notice_delivered(uow, notice.notice_id, "terminal")[1] is True
    assert services.mark_notice_delivered(uow, notice.notice_id, "terminal")[1] is False


def test_reconciled_failure_queues_a_failure_notice(
    community: Community, gateway: SandboxGateway
) -> None:
    uow = community.uow
    resp, _ = services.create_payment(
        uow, gateway, community.h1, D("20.00"), "card", "n2", payment_token="tok_timeout_decline"
    )
    services.reconcile_pending(uow, gateway)
    [notice] = _payment_notices(community)
    assert notice.kind == "payment_failed" and notice.payment_id == resp["payment_id"]
    assert "did not go through" in notice.message


def test_payments_settled_at_once_queue_no_notice(
    community: Community, gateway: SandboxGateway
) -> None:
    uow = community.uow
    services.create_payment(uow, gateway, community.h1, D("10.00"), "card", "n3")
    services.create_payment(
        uow, gateway, community.h1, D("10.00"), "card", "n4", payment_token="tok_decline"
    )
    services.reconcile_pending(uow, gateway)
    assert _payment_notices(community) == []


def test_webhook_settlement_queues_one_notice_even_if_replayed_or_reconciled(
    community: Community, gateway: SandboxGateway
) -> None:
    from backend.gateway.base import GatewayResult

    uow = community.uow
    resp, _ = services.create_payment(
        uow, gateway, community.h1, D("30.00"), "card", "n5", payment_token="tok_timeout"
    )
    ref = services.get_payment(uow, resp["payment_id"]).gateway_reference
    assert ref
    settled = gateway.status(ref)
    assert isinstance(settled, GatewayResult) and settled.status == "succeeded"
    assert services.apply_webhook(uow, "evt-1", ref, settled) == "applied"
    assert services.apply_webhook(uow, "evt-1", ref, settled) == "duplicate"
    assert services.apply_webhook(uow, "evt-2", ref, settled) == "ignored"
    services.reconcile_pending(uow, gateway)
    [notice] = _payment_notices(community)
    assert notice.kind == "payment_succeeded"
    with uow:
        count = uow.session.scalar(select(func.count()).select_from(orm.Notice))
    assert count == 1
