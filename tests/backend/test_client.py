"""``BillingClient`` over the in-process ASGI transport, against the real app and database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from backend.client import (
    BackendUnavailable,
    BillingClient,
    Conflict,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from tests.backend.conftest import Api

D = Decimal


@pytest.fixture
def client(api: Api) -> BillingClient:
    return BillingClient(None, api.service, app=api.app)


async def test_balance_bills_and_payment_flow(client: BillingClient) -> None:
    bal = await client.get_balance("hh-A0101")
    assert bal.total_due == D("1749.30") and isinstance(bal.total_due, Decimal)
    assert bal.by_utility["electricity"] == D("777.00") and len(bal.open_bills) == 12
    bills = await client.list_bills("hh-A0101", utility="water", limit=2)
    assert [b.period_start for b in bills] == [date(2026, 2, 1), date(2026, 1, 1)]
    detail = await client.get_bill(bills[0].bill_id)
    assert detail.lines[0].kind == "tier" and detail.lines[0].amount == D("38.50")
    preview = await client.preview_payment("hh-A0101", amount=D("50.00"), utility="water")
    assert [a.amount for a in preview.allocations] == [D("38.50"), D("11.50")]
    assert not preview.risk_flagged
    pay = await client.create_payment(
        "hh-A0101", amount=D("50.00"), method="alipay", utility="water", idempotency_key="cl-1"
    )
    assert pay.status == "succeeded" and pay.receipt_no
    again = await client.create_payment(
        "hh-A0101", amount="50.00", method="alipay", utility="water", idempotency_key="cl-1"
    )
    assert again.payment_id == pay.payment_id
    with pytest.raises(Conflict):
        await client.create_payment(
            "hh-A0101", amount="51.00", method="alipay", utility="water", idempotency_key="cl-1"
        )
    assert [p.payment_id for p in await client.list_payments("hh-A0101")] == [pay.payment_id]
    receipt = await client.get_receipt(pay.payment_id)
    assert receipt.receipt_no == pay.receipt_no and receipt.amount == D("50.00")
    assert (await client.get_receipt_pdf(pay.payment_id)).startswith(b"%PDF-")
    with pytest.raises(TypeError):
        await client.create_payment(
            "hh-A0101",
            amount=50.0,
            method="card",  # type: ignore[arg-type]
            idempotency_key="float",
        )
    tb = await client.trial_balance()
    assert tb.balanced


async def test_resident_scope_only_sees_its_household(client: BillingClient) -> None:
    me = await client.resident_scope("r-A0101-1")
    assert me.household_id == "hh-A0101"
    resident = await me.get_resident("r-A0101-1")
    assert resident.unit == "A-0101" and resident.saved_method == "card"
    assert (await me.get_balance("hh-A0101")).household_id == "hh-A0101"
    with pytest.raises(Forbidden):
        await me.get_balance("hh-B0101")
    with pytest.raises(NotFound):
        await me.get_bill("b-hh-B0101-el-202602")
    with pytest.raises(Forbidden):
        await me.resident_scope("r-B0101-1")
    with pytest.raises(NotFound):
        await client.get_balance("hh-nope")


async def test_readings_usage_autopay_notices_links(client: BillingClient) -> None:
    with pytest.raises(ValidationFailed) as err:
        await client.submit_reading("hh-A0101", utility="electricity", value=D("10"))
    assert err.value.code == "reading_backwards" and err.value.status == 422
    ok = await client.submit_reading("hh-A0101", utility="electricity", value=D("2400.5"))
    assert ok.status == "accepted"
    assert (await client.list_readings("hh-A0101", utility="electricity", limit=1))[0].value == D(
        "2400.500"
    )
    series = await client.usage(
        "hh-A0101", utility="gas", start=date(2025, 12, 1), end=date(2026, 2, 1)
    )
    assert [p.amount for p in series.points] == [D("64.60")] * 3
    fc = await client.forecast("hh-A0101", utility="gas")
    assert fc.amount_estimate > 0 and fc.period_start == date(2026, 3, 1)
    ap = await client.set_autopay("hh-A0101", utility="gas", enabled=True, method="wechat_pay")
    assert ap.enabled and ap.method == "wechat_pay"
    assert (await client.get_autopay("hh-A0101"))["gas"].enabled
    assert not (await client.late_fee_policy()).enabled
    assert await client.pending_notices() == []
    code = await client.create_link_code("r-B0101-1")
    link = await client.redeem_link_code(code.code, channel="telegram", external_id="7")
    assert link.household_id == "hh-B0101"
    assert (await client.resolve_link("telegram", "7")).resident_id == "r-B0101-1"


async def test_unreachable_backend_raises_backend_unavailable() -> None:
    client = BillingClient("http://127.0.0.1:9", "token", timeout=2)
    with pytest.raises(BackendUnavailable):
        await client.get_balance("hh-A0101")
    assert not await client.healthz()
    await client.aclose()


async def test_embedded_client(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.backend.conftest import build_community

    client = BillingClient.embedded(db_url)
    from backend.service_layer.unit_of_work import UnitOfWork

    uow = UnitOfWork(client.app.state.engine)
    build_community(uow, months=(date(2026, 1, 1),))
    assert await client.healthz()
    bal = await client.get_balance("hh-A0101")
    assert bal.total_due == D("583.10")
    await client.aclose()
