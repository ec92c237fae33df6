"""Tests of webhook signing, verification and parsing."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from backend.gateway import (
    SandboxGateway,
    WebhookPayloadError,
    WebhookSignatureError,
    get_gateway_settings,
    parse_webhook,
    sign_webhook,
    verify_signature,
)
from backend.gateway.settings import webhook_secret
from backend.gateway.webhooks import MAX_BODY_BYTES

SECRET = b"whsec_test_secret_0123456789abcdef"
NOW = 1_790_000_000


def event_body(**overrides: object) -> bytes:
    data = {
        "reference": "sbx_ref",
        "status": "succeeded",
        "failure_code": None,
        "amount": "12.34",
        "currency": "CNY",
    }
    payload: dict[str, object] = {
        "id": "evt_1",
        "type": "charge.succeeded",
        "created": NOW,
        "data": data,
    }
    for key, value in overrides.items():
        if key in data:
            data[key] = value
        else:
            payload[key] = value
    return json.dumps(payload).encode()


def test_round_trip() -> None:
    body = event_body()
    header = sign_webhook(body, SECRET, NOW)
    assert header.startswith(f"t={NOW},v1=")
    event = parse_webhook(body, header, NOW, secret=SECRET)
    assert event.event_id == "evt_1" and event.reference == "sbx_ref"
    assert event.status == "succeeded" and event.failure_code is None
    assert event.amount == Decimal("12.34") and isinstance(event.amount, Decimal)
    assert event.created_at == datetime.fromtimestamp(NOW, UTC)


def test_now_as_aware_datetime_and_naive_rejected() -> None:
    body = event_body()
    header = sign_webhook(body, SECRET, NOW)
    parse_webhook(body, header, datetime.fromtimestamp(NOW + 10, UTC), secret=SECRET)
    with pytest.raises(ValueError):
        parse_webhook(body, header, datetime(2026, 1, 1), secret=SECRET)


def test_tampered_body_is_rejected() -> None:
    body = event_body()
    header = sign_webhook(body, SECRET, NOW)
    tampered = body.replace(b"12.34", b"99.34")
    with pytest.raises(WebhookSignatureError) as info:
        parse_webhook(tampered, header, NOW, secret=SECRET)
    assert info.value.code == "signature_mismatch"


def test_tampered_signature_and_timestamp_are_rejected() -> None:
    body = event_body()
    header = sign_webhook(body, SECRET, NOW)
    sig = header.split("v1=")[1]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    with pytest.raises(WebhookSignatureError):
        parse_webhook(body, f"t={NOW},v1={flipped}", NOW, secret=SECRET)
    # moving the timestamp (to dodge the replay window) breaks the MAC
    with pytest.raises(WebhookSignatureError) as info:
        parse_webhook(body, f"t={NOW + 100},v1={sig}", NOW + 100, secret=SECRET)
    assert info.value.code == "signature_mismatch"


def test_wrong_secret_is_rejected() -> None:
    body = event_body()
    header = sign_webhook(body, b"another-secret", NOW)
    with pytest.raises(WebhookSignatureError):
        parse_webhook(body, header, NOW, secret=SECRET)


@pytest.mark.parametrize("delta", [301, 3600, -301])
def test_old_and_future_timestamps_are_rejected(delta: int) -> None:
    body = event_body()
    header = sign_webhook(body, SECRET, NOW)
    with pytest.raises(WebhookSignatureError) as info:
        parse_webhook(body, header, NOW + delta, secret=SECRET, tolerance_s=300)
    assert info.value.code == "timestamp_out_of_tolerance"


def test_timestamp_inside_tolerance_is_accepted() -> None:
    body = event_body()
    header = sign_webhook(body, SECRET, NOW)
    parse_webhook(body, header, NOW + 300, secret=SECRET, tolerance_s=300)
    parse_webhook(body, header, NOW - 299, secret=SECRET, tolerance_s=300)


def test_default_tolerance_comes_from_settings() -> None:
    assert get_gateway_settings().webhook_tolerance_s == 300
    body = event_body()
    header = sign_webhook(body, SECRET, NOW)
    with pytest.raises(WebhookSignatureError):
        parse_webhook(body, header, NOW + 301, secret=SECRET)


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_signature"),
        ("", "missing_signature"),
        ("garbage", "malformed_signature"),
        (f"t={NOW}", "malformed_signature"),
        ("v1=abcd", "malformed_signature"),
        ("t=abc,v1=ab", "malformed_signature"),
        (f"t={NOW},t={NOW},v1=ab", "malformed_signature"),
        (f"t=-{NOW},v1=ab", "malformed_signature"),
        ("t=" + "9" * 3000, "malformed_signature"),
    ],
)
def test_malformed_headers(header: str | None, code: str) -> None:
    with pytest.raises(WebhookSignatureError) as info:
        parse_webhook(event_body(), header, NOW, secret=SECRET)
    assert info.value.code == code


def test_rotated_secret_any_v1_matches() -> None:
    body = event_body()
    old = sign_webhook(body, b"old-secret", NOW).split("v1=")[1]
    new = sign_webhook(body, SECRET, NOW).split("v1=")[1]
    header = f"t={NOW},v1={old},v0=ignored,v1={new}"
    assert parse_webhook(body, header, NOW, secret=SECRET).event_id == "evt_1"
    assert verify_signature(body, header, secret=SECRET, now=NOW) == NOW


def test_signature_checked_before_body_is_parsed() -> None:
    body = b"{not json"
    with pytest.raises(WebhookSignatureError):
        parse_webhook(body, sign_webhook(body, b"wrong", NOW), NOW, secret=SECRET)
    with pytest.raises(WebhookPayloadError):
        parse_webhook(body, sign_webhook(body, SECRET, NOW), NOW, secret=SECRET)


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"\xff\xfe",
        event_body(amount=12.34),  # a JSON number, not a decimal string
        event_body(amount="12.345"),
        event_body(amount="NaN"),
        event_body(amount="-1.00"),
        event_body(amount="abc"),
        event_body(status="refunded"),
        event_body(type="charge.exploded"),
        event_body(id=""),
        event_body(created="yesterday"),
        event_body(created=True),
        event_body(created=10**20),
        event_body(failure_code=7),
        event_body(currency="CNYY"),
        json.dumps({"id": "e", "type": "charge.failed", "created": NOW}).encode(),
    ],
)
def test_malformed_events_are_rejected(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError):
        parse_webhook(body, sign_webhook(body, SECRET, NOW), NOW, secret=SECRET)


def test_huge_body_is_rejected_before_anything_else() -> None:
    body = b" " * (MAX_BODY_BYTES + 1)
    with pytest.raises(WebhookPayloadError) as info:
        parse_webhook(body, sign_webhook(body, SECRET, NOW), NOW, secret=SECRET)
    assert info.value.code == "body_too_large"


def test_body_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        parse_webhook("{}", "t=1,v1=a", NOW, secret=SECRET)  # type: ignore[arg-type]


def test_default_secret_is_derived_from_the_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    body = event_body()
    header = sign_webhook(body, None, int(time.time()))
    assert parse_webhook(body, header).event_id == "evt_1"
    assert webhook_secret() != b""
    with pytest.raises(WebhookSignatureError):
        parse_webhook(body, header, secret=SECRET)


def test_explicit_webhook_secret_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.gateway.settings import GatewaySettings

    monkeypatch.setenv("BILLTALK_GATEWAY_WEBHOOK_SECRET", "provider-issued")
    assert webhook_secret(GatewaySettings()) == b"provider-issued"


def test_sandbox_webhook_round_trip() -> None:
    gw = SandboxGateway(b"s" * 32)
    pending = gw.charge(
        amount=Decimal("88.80"),
        currency="CNY",
        method="alipay",
        payment_token="tok_timeout",
        idempotency_key="wh-1",
    )
    assert pending.status == "pending"
    body, header = gw.webhook(pending.reference, secret=SECRET, timestamp=NOW)
    event = parse_webhook(body, header, NOW + 5, secret=SECRET)
    assert event.type == "charge.succeeded" and event.status == "succeeded"
    assert event.reference == pending.reference and event.amount == Decimal("88.80")
    # the same outcome announced again carries the same event id (applied once)
    body2, header2 = gw.webhook(pending.reference, secret=SECRET, timestamp=NOW + 60)
    assert parse_webhook(body2, header2, NOW + 60, secret=SECRET).event_id == event.event_id


def test_sandbox_webhook_for_declined_and_refund() -> None:
    gw = SandboxGateway(b"s" * 32)
    late = gw.charge(
        amount=Decimal("5.00"),
        currency="CNY",
        method="card",
        payment_token="tok_timeout_decline",
        idempotency_key="wh-2",
    )
    body, header = gw.webhook(late.reference, secret=SECRET, timestamp=NOW)
    event = parse_webhook(body, header, NOW, secret=SECRET)
    assert (event.type, event.failure_code) == ("charge.failed", "card_declined")
    ok = gw.charge(
        amount=Decimal("5.00"),
        currency="CNY",
        method="card",
        payment_token=None,
        idempotency_key="wh-3",
    )
    refund = gw.refund(ok.reference, Decimal("5.00"), "rf")
    body, header = gw.webhook(refund.reference, secret=SECRET, timestamp=NOW)
    assert parse_webhook(body, header, NOW, secret=SECRET).type == "refund.succeeded"


def test_event_time_default_is_now() -> None:
    gw = SandboxGateway(b"s" * 32)
    ok = gw.charge(
        amount=Decimal("1.00"),
        currency="CNY",
        method="card",
        payment_token=None,
        idempotency_key="t",
    )
    body, header = gw.webhook(ok.reference, secret=SECRET)
    event = parse_webhook(body, header, secret=SECRET)
    assert abs(event.created_at - datetime.now(UTC)) < timedelta(seconds=5)
