"""The HTTP API: CONTRACTS.md shapes, scopes, and every kind of bad input."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from backend.adapters import orm
from backend.gateway import SandboxGateway
from tests.backend.conftest import Api, Community

PAY = {"household_id": "hh-A0101", "utility": "water", "amount": "12.34", "method": "card"}


def _count(community: Community, model: type) -> int:
    with community.uow as uow:
        return int(uow.session.scalar(select(func.count()).select_from(model)) or 0)


def test_healthz_and_openapi(api: Api) -> None:
    assert api.client.get("/healthz").status_code == 200
    doc = api.client.get("/api/v1/openapi.json").json()
    assert "/api/v1/payments" in doc["paths"]
    assert "/api/v1/households/{household_id}/balance" in doc["paths"]


def test_balance_contract_shape(api: Api) -> None:
    r = api.client.get("/api/v1/households/hh-A0101/balance", headers=api.h(api.service))
    assert r.status_code == 200
    body = r.json()
    assert body["household_id"] == "hh-A0101" and body["currency"] == "CNY"
    assert isinstance(body["total_due"], str) and body["total_due"].count(".") == 1
    assert len(body["total_due"].split(".")[1]) == 2
    assert set(body["by_utility"]) == {"electricity", "water", "gas", "property_fee"}
    assert all(isinstance(v, str) for v in body["by_utility"].values())


def test_payment_contract_replay_and_conflict(api: Api, community: Community) -> None:
    h = api.h(api.service, **{"Idempotency-Key": "abc-1"})
    r = api.client.post("/api/v1/payments", json=PAY, headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert {"payment_id", "status", "amount", "receipt_no"} <= set(body)
    assert body["status"] == "succeeded" and body["amount"] == "12.34"
    again = api.client.post("/api/v1/payments", json=PAY, headers=h)
    assert again.status_code == 201 and again.json() == body
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = api.client.post("/api/v1/payments", json={**PAY, "amount": "12.35"}, headers=h)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert _count(community, orm.Payment) == 1
    tb = api.client.get("/api/v1/ledger/trial-balance", headers=api.h(api.service)).json()
    assert tb["balanced"] is True and tb["debits"] == tb["credits"]
    assert set(tb) >= {"balanced", "debits", "credits"}


BAD_AMOUNTS = [
    ("-5.00", "invalid_amount"),
    ("0", "invalid_amount"),
    ("0.00", "invalid_amount"),
    ("NaN", "invalid_amount"),
    ("Infinity", "invalid_amount"),
    ("1e3", "invalid_amount"),
    ("12.345", "invalid_amount"),
    ("", "invalid_amount"),
    ("12,00", "invalid_amount"),
    (12.34, "invalid_amount"),  # a JSON number: refused, never parsed as a float
    (12, "invalid_amount"),
    (None, "invalid_amount"),
    (True, "invalid_amount"),
    ("99999999999.00", "invalid_amount"),
]


def test_bad_amounts_are_refused_and_write_nothing(api: Api, community: Community) -> None:
    before = _count(community, orm.JournalLine)
    for amount, code in BAD_AMOUNTS:
        for path, body in (
            ("/api/v1/payments", {**PAY, "amount": amount}),
            ("/api/v1/households/hh-A0101/payment-preview", {"amount": amount}),
        ):
            r = api.client.post(
                path, json=body, headers=api.h(api.service, **{"Idempotency-Key": "bad"})
            )
            assert r.status_code == 422, (amount, r.text)
            assert r.json()["error"]["code"] == code
    assert _count(community, orm.Payment) == 0 and _count(community, orm.JournalLine) == before


def test_json_numbers_never_reach_the_money_path(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a float-looking number in the raw body is refused before any service runs."""
    from backend.service_layer import services

    called = []
    monkeypatch.setattr(services, "create_payment", lambda *a, **k: called.append(a))
    raw = '{"household_id": "hh-A0101", "amount": 0.1, "method": "card"}'
    r = api.client.post(
        "/api/v1/payments",
        content=raw,
        headers=api.h(api.service, **{"Idempotency-Key": "f", "Content-Type": "application/json"}),
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_amount"
    assert called == []
    # and the models hand the service a Decimal, never a float
    from backend.api.models import PaymentIn

    parsed = PaymentIn.model_validate_json(
        '{"household_id": "h", "amount": "0.10", "method": "card"}'
    )
    assert type(parsed.amount) is Decimal and parsed.amount == Decimal("0.10")


BAD_REQUESTS = [
    ("/api/v1/households/hh-nope/balance", "GET", None, 404, "unknown_household"),
    ("/api/v1/bills/b-nope", "GET", None, 404, "unknown_bill"),
    ("/api/v1/payments/pay_nope", "GET", None, 404, "unknown_payment"),
    ("/api/v1/nope", "GET", None, 404, "not_found"),
    ("/api/v1/payments", "PUT", None, 405, "method_not_allowed"),
    (
        "/api/v1/households/hh-A0101/readings",
        "POST",
        {"utility": "electricity", "value": "10"},
        422,
        "reading_backwards",
    ),
    (
        "/api/v1/households/hh-A0101/readings",
        "POST",
        {"utility": "electricity", "value": 5000},
        422,
        "invalid_amount",
    ),
    (
        "/api/v1/households/hh-A0101/readings",
        "POST",
        {"utility": "property_fee", "value": "10"},
        422,
        "validation_error",
    ),
    (
        "/api/v1/households/hh-nope/readings",
        "POST",
        {"utility": "gas", "value": "10"},
        404,
        "unknown_household",
    ),
    ("/api/v1/payments", "POST", {**PAY, "household_id": "hh-nope"}, 404, "unknown_household"),
    ("/api/v1/payments", "POST", {**PAY, "method": "bitcoin"}, 422, "validation_error"),
    ("/api/v1/payments", "POST", {**PAY, "utility": "internet"}, 422, "validation_error"),
    ("/api/v1/payments", "POST", {**PAY, "surprise": 1}, 422, "validation_error"),
    ("/api/v1/payments", "POST", [1, 2], 422, "validation_error"),
]


def test_bad_requests_get_error_json(api: Api, community: Community) -> None:
    before = (_count(community, orm.Payment), _count(community, orm.MeterReading))
    for path, method, body, status, code in BAD_REQUESTS:
        r = api.client.request(
            method, path, json=body, headers=api.h(api.service, **{"Idempotency-Key": "x"})
        )
        assert r.status_code == status, (path, body, r.text)
        assert r.json()["error"]["code"] == code
        assert isinstance(r.json()["error"]["message"], str)
    assert (_count(community, orm.Payment), _count(community, orm.MeterReading)) == before


def test_unstorable_characters_are_a_4xx(api: Api, community: Community) -> None:
    s = api.h(api.service)
    r = api.client.get("/api/v1/households/hh-A%00/balance", headers=s)
    assert r.status_code in (404, 422) and "error" in r.json()
    body = {"code": "123456", "channel": "telegram", "external_id": "a\u0000b"}
    r = api.client.post("/api/v1/link-codes/redeem", json=body, headers=s)
    assert 400 <= r.status_code < 500 and "error" in r.json()
    assert _count(community, orm.ChannelLink) == 0


def test_malformed_json_huge_body_and_missing_header(api: Api, community: Community) -> None:
    h = api.h(api.service, **{"Idempotency-Key": "m", "Content-Type": "application/json"})
    r = api.client.post("/api/v1/payments", content=b'{"household_id": "hh-A0101", "amo', headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    r = api.client.post("/api/v1/payments", content=b"\xff\xfe\x00garbage", headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    huge = json.dumps({**PAY, "payment_token": "x" * 100_000})
    r = api.client.post("/api/v1/payments", content=huge, headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks():  # no Content-Length: the limit still applies while streaming
        for _ in range(100):
            yield b" " * 1024

    r = api.client.post("/api/v1/payments", content=chunks(), headers=h)
    assert r.status_code == 413
    r = api.client.post("/api/v1/payments", json=PAY, headers=api.h(api.service))
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_header"
    assert _count(community, orm.Payment) == 0


BAD_TOKENS = [
    ({}, "missing_token"),
    ({"Authorization": "Bearer nope"}, "invalid_token"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_token"),
    ({"Authorization": "Bearer " + "x" * 500}, "invalid_token"),
]


def test_missing_or_invalid_tokens(api: Api, community: Community) -> None:
    from datetime import timedelta

    from backend.service_layer import services

    expired = services.issue_token(community.uow, "service", ttl=timedelta(seconds=-1)).token
    for headers, code in [*BAD_TOKENS, ({"Authorization": f"Bearer {expired}"}, "invalid_token")]:
        r = api.client.get("/api/v1/households/hh-A0101/balance", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == code
    r = api.client.post("/api/v1/payments", json=PAY, headers={"Idempotency-Key": "t"})
    assert r.status_code == 401 and _count(community, orm.Payment) == 0


def test_resident_token_only_sees_its_own_household(api: Api, community: Community) -> None:
    r1 = api.h(api.resident1)
    assert api.client.get("/api/v1/households/hh-A0101/balance", headers=r1).status_code == 200
    other_bill = "b-hh-B0101-el-202602"
    own_bill = "b-hh-A0101-el-202602"
    forbidden = [
        ("GET", "/api/v1/households/hh-B0101/balance", None),
        ("GET", "/api/v1/households/hh-B0101/bills", None),
        ("GET", "/api/v1/households/hh-B0101/payments", None),
        ("GET", "/api/v1/households/hh-B0101/readings", None),
        ("GET", "/api/v1/households/hh-B0101/autopay", None),
        (
            "GET",
            "/api/v1/households/hh-B0101/usage?utility=water&start=2025-01-01&end=2026-12-01",
            None,
        ),
        ("GET", "/api/v1/households/hh-B0101/forecast?utility=water", None),
        ("POST", "/api/v1/households/hh-B0101/readings", {"utility": "gas", "value": "999"}),
        ("POST", "/api/v1/households/hh-B0101/payment-preview", {"amount": "1.00"}),
        ("POST", "/api/v1/payments", {**PAY, "household_id": "hh-B0101"}),
        ("PUT", "/api/v1/households/hh-B0101/autopay/water", {"enabled": True}),
        ("GET", "/api/v1/households/hh-nope/balance", None),
    ]
    for method, path, body in forbidden:
        r = api.client.request(method, path, json=body, headers={**r1, "Idempotency-Key": "k"})
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    assert api.client.get(f"/api/v1/bills/{other_bill}", headers=r1).status_code == 404
    assert api.client.get(f"/api/v1/bills/{own_bill}", headers=r1).status_code == 200
    assert api.client.get("/api/v1/residents/r-B0101-1", headers=r1).status_code == 404
    # the other household's payment is invisible too
    paid = api.client.post(
        "/api/v1/payments",
        json={**PAY, "household_id": "hh-B0101"},
        headers=api.h(api.resident2, **{"Idempotency-Key": "r2"}),
    )
    assert paid.status_code == 201
    pid = paid.json()["payment_id"]
    for suffix in ("", "/receipt", "/receipt.pdf"):
        assert api.client.get(f"/api/v1/payments/{pid}{suffix}", headers=r1).status_code == 404
    # staff-only and service-only operations
    for method, path, body in [
        ("GET", "/api/v1/reports/arrears", None),
        ("GET", "/api/v1/ledger/trial-balance", None),
        ("POST", f"/api/v1/payments/{pid}/refund", {"amount": "1.00"}),
        ("POST", "/api/v1/auth/resident-token", {"resident_id": "r-B0101-1"}),
        ("POST", "/api/v1/link-codes/redeem", {"code": "1", "channel": "t", "external_id": "1"}),
    ]:
        assert api.client.request(method, path, json=body, headers=r1).status_code == 403
    notices = api.client.get("/api/v1/notices", headers=r1).json()
    assert all(n["household_id"] == "hh-A0101" for n in notices)


def test_resident_token_exchange(api: Api) -> None:
    r = api.client.post(
        "/api/v1/auth/resident-token", json={"resident_id": "r-A0101-1"}, headers=api.h(api.service)
    )
    assert r.status_code == 201
    tok = r.json()
    assert tok["household_id"] == "hh-A0101" and tok["expires_at"]
    h = api.h(tok["token"])
    assert api.client.get("/api/v1/households/hh-A0101/balance", headers=h).status_code == 200
    assert api.client.get("/api/v1/households/hh-B0101/balance", headers=h).status_code == 403
    r = api.client.post(
        "/api/v1/auth/resident-token", json={"resident_id": "r-nope"}, headers=api.h(api.service)
    )
    assert r.status_code == 404


def test_bills_receipts_usage_and_staff_endpoints(api: Api) -> None:
    s = api.h(api.service)
    bills = api.client.get(
        "/api/v1/households/hh-A0101/bills?utility=electricity&limit=2", headers=s
    ).json()
    assert [b["period_start"] for b in bills] == ["2026-02-01", "2026-01-01"]
    detail = api.client.get(f"/api/v1/bills/{bills[0]['bill_id']}", headers=s).json()
    assert [ln["amount"] for ln in detail["lines"]] == ["104.00", "114.00", "41.00"]
    preview = api.client.post(
        "/api/v1/households/hh-A0101/payment-preview", json={"amount": "1500.00"}, headers=s
    ).json()
    assert preview["risk_flagged"] is True and "threshold" in preview["risk_reasons"]
    assert preview["step_up_required"] and preview["risk"]["action"] == "step_up"
    paid = api.client.post(
        "/api/v1/payments",
        json={**PAY, "amount": "50.00"},
        headers=api.h(api.service, **{"Idempotency-Key": "rcpt"}),
    ).json()
    receipt = api.client.get(f"/api/v1/payments/{paid['payment_id']}/receipt", headers=s).json()
    assert receipt["receipt_no"] == paid["receipt_no"] and receipt["amount"] == "50.00"
    pdf = api.client.get(f"/api/v1/payments/{paid['payment_id']}/receipt.pdf", headers=s)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    usage = api.client.get(
        "/api/v1/households/hh-A0101/usage",
        params={"utility": "electricity", "start": "2025-12-01", "end": "2026-02-28"},
        headers=s,
    ).json()
    assert [p["usage"] for p in usage["points"]] == ["450.000"] * 3
    fc = api.client.get("/api/v1/households/hh-A0101/forecast?utility=electricity", headers=s)
    assert fc.status_code == 200 and fc.json()["period_start"] == "2026-03-01"
    st = api.h(api.staff)
    refund = api.client.post(
        f"/api/v1/payments/{paid['payment_id']}/refund",
        json={"amount": "10.00", "reason": "test"},
        headers=st,
    )
    assert refund.status_code == 200 and refund.json()["refunded"] == "10.00"
    assert (
        api.client.post(
            f"/api/v1/payments/{paid['payment_id']}/refund", json={"amount": "1.00"}, headers=s
        ).status_code
        == 403
    )
    for path in (
        "/api/v1/reports/usage-revenue",
        "/api/v1/reports/arrears",
        "/api/v1/reports/forecasts",
        "/api/v1/ledger/check",
        "/api/v1/readings/flagged",
    ):
        assert api.client.get(path, headers=st).status_code == 200, path
    assert api.client.get("/api/v1/ledger/check", headers=st).json()["consistent"] is True
    policy = api.client.get("/api/v1/late-fee-policy", headers=s).json()
    assert policy["enabled"] is False


def test_link_codes_over_http(api: Api) -> None:
    s = api.h(api.service)
    code = api.client.post("/api/v1/link-codes", json={"resident_id": "r-A0101-1"}, headers=s)
    assert code.status_code == 201
    body = {"code": code.json()["code"], "channel": "telegram", "external_id": "42"}
    r = api.client.post("/api/v1/link-codes/redeem", json=body, headers=s)
    assert r.status_code == 200 and r.json() == {
        "resident_id": "r-A0101-1",
        "household_id": "hh-A0101",
    }
    r = api.client.post("/api/v1/link-codes/redeem", json=body, headers=s)
    assert r.status_code == 409 and r.json()["error"]["code"] == "link_code_used"
    assert (
        api.client.get("/api/v1/links/telegram/42", headers=s).json()["resident_id"] == "r-A0101-1"
    )
    for _ in range(5):
        bad = api.client.post(
            "/api/v1/link-codes/redeem",
            json={**body, "code": "000000", "external_id": "99"},
            headers=s,
        )
        assert bad.status_code in (400, 422)
    locked = api.client.post(
        "/api/v1/link-codes/redeem", json={**body, "code": "000000", "external_id": "99"}, headers=s
    )
    assert locked.status_code == 429


def test_notice_outbox_over_http(api: Api, community: Community) -> None:
    from datetime import date

    from backend.service_layer import services

    services.run_reminders(community.uow, today=date(2026, 3, 13))
    s = api.h(api.service)
    notices = api.client.get("/api/v1/notices?limit=5", headers=s).json()
    assert len(notices) == 5 and notices[0]["resident_ids"]
    nid = notices[0]["notice_id"]
    r = api.client.post(f"/api/v1/notices/{nid}/delivered", json={"channel": "telegram"}, headers=s)
    assert r.status_code == 200 and r.json()["status"] == "delivered"
    r = api.client.post(f"/api/v1/notices/{nid}/delivered", json={"channel": "telegram"}, headers=s)
    assert r.status_code == 409


def test_webhook_settles_a_pending_payment_once(api: Api, gateway: SandboxGateway) -> None:
    h = api.h(api.service, **{"Idempotency-Key": "wh"})
    p = api.client.post(
        "/api/v1/payments", json={**PAY, "payment_token": "tok_timeout"}, headers=h
    ).json()
    assert p["status"] == "pending"
    body, sig = gateway.webhook(p["gateway_reference"])
    bad = api.client.post(
        "/api/v1/gateway/webhook",
        content=body,
        headers={"X-Billtalk-Signature": sig.replace("v1=", "v1=00")},
    )
    assert bad.status_code == 400
    r = api.client.post(
        "/api/v1/gateway/webhook", content=body, headers={"X-Billtalk-Signature": sig}
    )
    assert r.status_code == 200 and r.json() == {"result": "applied"}
    r = api.client.post(
        "/api/v1/gateway/webhook", content=body, headers={"X-Billtalk-Signature": sig}
    )
    assert r.json() == {"result": "duplicate"}
    done = api.client.get(f"/api/v1/payments/{p['payment_id']}", headers=api.h(api.service)).json()
    assert done["status"] == "succeeded" and done["receipt_no"]
    # replaying the original request now returns the settled payment, no new charge
    again = api.client.post(
        "/api/v1/payments", json={**PAY, "payment_token": "tok_timeout"}, headers=h
    ).json()
    assert again["payment_id"] == p["payment_id"]
