"""Tests of the payment gateway interface and the deterministic sandbox."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

from backend.gateway import (
    PAYMENT_METHODS,
    TEST_TOKENS,
    GatewayValidationError,
    PaymentGateway,
    SandboxGateway,
    UnknownReferenceError,
    available_gateways,
    derive_key,
    get_gateway,
    register_gateway,
)
from backend.gateway.base import check_amount
from backend.gateway.sandbox import luhn_valid, outcome_for_token

KEY = b"k" * 32


@pytest.fixture
def gw() -> SandboxGateway:
    return SandboxGateway(KEY)


def charge(
    gw: SandboxGateway,
    token: str | None,
    *,
    amount: str = "120.00",
    key: str = "k1",
    method: str = "card",
):
    return gw.charge(
        amount=Decimal(amount),
        currency="CNY",
        method=method,
        payment_token=token,
        idempotency_key=key,
    )


# -- outcomes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "status", "code", "final_status", "final_code"),
    [
        (None, "succeeded", None, "succeeded", None),
        ("tok_success", "succeeded", None, "succeeded", None),
        ("4242424242424242", "succeeded", None, "succeeded", None),
        ("4242 4242 4242 4242", "succeeded", None, "succeeded", None),
        ("tok_decline", "failed", "card_declined", "failed", "card_declined"),
        ("4000000000000002", "failed", "card_declined", "failed", "card_declined"),
        ("tok_insufficient", "failed", "insufficient_funds", "failed", "insufficient_funds"),
        ("4000000000009995", "failed", "insufficient_funds", "failed", "insufficient_funds"),
        ("tok_expired", "failed", "expired_card", "failed", "expired_card"),
        ("tok_timeout", "pending", "timeout", "succeeded", None),
        ("4000000000000119", "pending", "timeout", "succeeded", None),
        ("tok_timeout_decline", "pending", "timeout", "failed", "card_declined"),
        ("4000000000000259", "pending", "timeout", "failed", "card_declined"),
        ("4111111111111111", "succeeded", None, "succeeded", None),  # other Luhn-valid card
        ("4111111111111112", "failed", "invalid_number", "failed", "invalid_number"),
        ("tok_nonsense", "failed", "invalid_token", "failed", "invalid_token"),
    ],
)
def test_token_decides_outcome_and_status_resolves_it(
    gw: SandboxGateway, token, status, code, final_status, final_code
) -> None:
    result = charge(gw, token)
    assert (result.status, result.failure_code) == (status, code)
    assert result.amount == Decimal("120.00") and result.currency == "CNY"
    assert result.message
    later = gw.status(result.reference)
    assert (later.status, later.failure_code) == (final_status, final_code)
    assert later.reference == result.reference
    assert later.is_final


def test_every_documented_test_token_is_in_the_module_table() -> None:
    import backend.gateway.sandbox as sandbox

    for token in TEST_TOKENS:
        assert token in (sandbox.__doc__ or "")


def test_every_method_is_accepted(gw: SandboxGateway) -> None:
    for method in PAYMENT_METHODS:
        assert charge(gw, "tok_success", method=method, key=method).succeeded


# -- idempotency and determinism -------------------------------------------------------


def test_same_idempotency_key_gives_same_result_and_reference(gw: SandboxGateway) -> None:
    first = charge(gw, "tok_success", key="pay-1")
    again = charge(gw, "tok_success", key="pay-1")
    assert first == again
    other = charge(gw, "tok_success", key="pay-2")
    assert other.reference != first.reference


def test_same_key_different_request_gives_different_reference(gw: SandboxGateway) -> None:
    a = charge(gw, "tok_success", key="pay-1", amount="10.00")
    b = charge(gw, "tok_success", key="pay-1", amount="11.00")
    assert a.reference != b.reference


def test_references_survive_a_restart_in_a_fresh_process() -> None:
    """status() needs no state: a new process with the same secret resolves the reference."""
    env_key = "restart-secret-key-0123456789"
    code = (
        "from decimal import Decimal\n"
        "from backend.gateway import SandboxGateway, derive_key\n"
        f"gw = SandboxGateway(derive_key('gateway-sandbox', {env_key!r}))\n"
        "r = gw.charge(amount=Decimal('5.00'), currency='CNY', method='card',"
        " payment_token='tok_timeout', idempotency_key='x')\n"
        "print(r.reference)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    reference = out.stdout.strip()
    fresh = SandboxGateway(derive_key("gateway-sandbox", env_key))
    settled = fresh.status(reference)
    assert settled.status == "succeeded" and settled.amount == Decimal("5.00")


def test_different_secret_does_not_accept_the_reference(gw: SandboxGateway) -> None:
    reference = charge(gw, "tok_success").reference
    with pytest.raises(UnknownReferenceError):
        SandboxGateway(b"z" * 32).status(reference)


# -- forged and unknown references ----------------------------------------------------


def test_tampered_reference_is_rejected(gw: SandboxGateway) -> None:
    reference = charge(gw, "tok_decline").reference
    assert "_d_" in reference
    forged = reference.replace("_d_", "_s_", 1)
    with pytest.raises(UnknownReferenceError):
        gw.status(forged)
    bigger = reference.replace("_12000_", "_99900_", 1)
    with pytest.raises(UnknownReferenceError):
        gw.status(bigger)


@pytest.mark.parametrize("reference", ["", "nope", "sbx_ch_s_100_CNY_zz_zz", "ch_123" * 50])
def test_garbage_reference_is_unknown(gw: SandboxGateway, reference: str) -> None:
    with pytest.raises(UnknownReferenceError) as info:
        gw.status(reference)
    assert info.value.code == "unknown_reference"


# -- amounts --------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [12.34, 12, "12.34", True, None])
def test_non_decimal_amount_raises_type_error(gw: SandboxGateway, amount: object) -> None:
    with pytest.raises(TypeError):
        gw.charge(
            amount=amount,
            currency="CNY",
            method="card",  # type: ignore[arg-type]
            payment_token=None,
            idempotency_key="k",
        )


@pytest.mark.parametrize(
    "amount", ["0", "-1.00", "NaN", "Infinity", "12.345", "1E+20", "10000000000.00"]
)
def test_invalid_decimal_amount_is_rejected(gw: SandboxGateway, amount: str) -> None:
    with pytest.raises(GatewayValidationError) as info:
        charge(gw, "tok_success", amount=amount)
    assert info.value.code == "invalid_amount"


def test_amount_is_normalised_to_two_places() -> None:
    assert str(check_amount(Decimal("12.3"))) == "12.30"
    assert str(check_amount(Decimal("1E+1"))) == "10.00"


def test_largest_amount_round_trips_through_the_reference(gw: SandboxGateway) -> None:
    result = charge(gw, "tok_success", amount="9999999999.99")
    assert gw.status(result.reference).amount == Decimal("9999999999.99")
    small = charge(gw, "tok_success", amount="0.01", key="small")
    assert gw.status(small.reference).amount == Decimal("0.01")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("currency", "cny", "invalid_currency"),
        ("currency", "CNYX", "invalid_currency"),
        ("method", "cash", "unknown_method"),
        ("idempotency_key", "", "invalid_idempotency_key"),
        ("idempotency_key", "x" * 256, "invalid_idempotency_key"),
        ("idempotency_key", "bad\nkey", "invalid_idempotency_key"),
        ("payment_token", 4242424242424242, "invalid_token"),
    ],
)
def test_malformed_requests_are_rejected(
    gw: SandboxGateway, field: str, value: object, code: str
) -> None:
    kwargs: dict[str, object] = {
        "amount": Decimal("1.00"),
        "currency": "CNY",
        "method": "card",
        "payment_token": None,
        "idempotency_key": "k",
    }
    kwargs[field] = value
    with pytest.raises(GatewayValidationError) as info:
        gw.charge(**kwargs)  # type: ignore[arg-type]
    assert info.value.code == code


# -- refunds --------------------------------------------------------------------------


def test_refund_of_a_succeeded_charge(gw: SandboxGateway) -> None:
    ref = charge(gw, "tok_success").reference
    refund = gw.refund(ref, Decimal("20.00"), "refund-1")
    assert refund.succeeded and refund.amount == Decimal("20.00")
    assert refund.reference.startswith("sbx_rf_") and refund.reference != ref
    assert gw.refund(ref, Decimal("20.00"), "refund-1") == refund
    assert gw.status(refund.reference).succeeded


def test_refund_of_a_timed_out_charge_that_settled(gw: SandboxGateway) -> None:
    ref = charge(gw, "tok_timeout").reference
    assert gw.refund(ref, Decimal("120.00"), "r").succeeded


@pytest.mark.parametrize("token", ["tok_decline", "tok_insufficient", "tok_timeout_decline"])
def test_refund_of_a_failed_charge_is_refused(gw: SandboxGateway, token: str) -> None:
    ref = charge(gw, token).reference
    with pytest.raises(GatewayValidationError) as info:
        gw.refund(ref, Decimal("1.00"), "r")
    assert info.value.code == "not_refundable"


def test_refund_more_than_charged_is_refused(gw: SandboxGateway) -> None:
    ref = charge(gw, "tok_success").reference
    with pytest.raises(GatewayValidationError) as info:
        gw.refund(ref, Decimal("120.01"), "r")
    assert info.value.code == "refund_exceeds_charge"


def test_refund_of_a_refund_and_float_refunds_are_refused(gw: SandboxGateway) -> None:
    ref = charge(gw, "tok_success").reference
    refund = gw.refund(ref, Decimal("1.00"), "r")
    with pytest.raises(GatewayValidationError):
        gw.refund(refund.reference, Decimal("1.00"), "r2")
    with pytest.raises(TypeError):
        gw.refund(ref, 1.0, "r3")  # type: ignore[arg-type]
    with pytest.raises(UnknownReferenceError):
        gw.refund("sbx_nope", Decimal("1.00"), "r4")


# -- factory --------------------------------------------------------------------------


def test_get_gateway_builds_the_sandbox_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = get_gateway()
    assert isinstance(gateway, SandboxGateway) and isinstance(gateway, PaymentGateway)
    assert gateway.name == "sandbox"
    # two instances share the derived key, so references cross instances (and restarts)
    ref = (
        get_gateway("sandbox")
        .charge(
            amount=Decimal("1.00"),
            currency="CNY",
            method="wallet",
            payment_token=None,
            idempotency_key="f",
        )
        .reference
    )
    assert get_gateway().status(ref).succeeded


def test_get_gateway_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown payment gateway"):
        get_gateway("paypal-live")


def test_register_gateway() -> None:
    register_gateway("sandbox-alt", lambda: SandboxGateway(b"a" * 32))
    assert "sandbox-alt" in available_gateways()
    assert isinstance(get_gateway("sandbox-alt"), SandboxGateway)


def test_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        SandboxGateway(b"short")


def test_derive_key_separates_purposes() -> None:
    assert derive_key("a", "root") != derive_key("b", "root")
    assert derive_key("a", "root") != derive_key("a", "other-root")
    assert len(derive_key("a", "root")) == 32


def test_luhn_and_token_parsing() -> None:
    assert luhn_valid("4242424242424242") and not luhn_valid("4242424242424241")
    assert outcome_for_token("  tok_decline ") == "d"
    assert outcome_for_token("4000-0000-0000-0002") == "d"
    assert outcome_for_token("12345") == "x"  # too short to be a card number
