"""Confirmation tokens are bound to the exact payment and expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot import confirmation
from bot.confirmation import ConfirmationError, PaymentBinding

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TTL = timedelta(minutes=5)
BINDING = PaymentBinding("hh-1", "water", Decimal("39.77"), "card", ("2026-10-01/2026-10-31",))


def test_a_fresh_token_is_accepted() -> None:
    token = confirmation.issue(BINDING, NOW)
    confirmation.check(token, BINDING, NOW + timedelta(minutes=4), TTL)


@pytest.mark.parametrize(
    "changed",
    [
        PaymentBinding("hh-1", "water", Decimal("39.76"), "card", BINDING.periods),
        PaymentBinding("hh-1", "gas", Decimal("39.77"), "card", BINDING.periods),
        PaymentBinding("hh-1", "water", Decimal("39.77"), "alipay", BINDING.periods),
        PaymentBinding("hh-2", "water", Decimal("39.77"), "card", BINDING.periods),
        PaymentBinding("hh-1", "water", Decimal("39.77"), "card", ("2026-09-01/2026-09-30",)),
    ],
)
def test_any_change_invalidates_the_token(changed: PaymentBinding) -> None:
    token = confirmation.issue(BINDING, NOW)
    with pytest.raises(ConfirmationError) as err:
        confirmation.check(token, changed, NOW, TTL)
    assert err.value.reason == "mismatch"


def test_the_token_expires_after_five_minutes() -> None:
    token = confirmation.issue(BINDING, NOW)
    with pytest.raises(ConfirmationError) as err:
        confirmation.check(token, BINDING, NOW + TTL, TTL)
    assert err.value.reason == "expired"


@pytest.mark.parametrize("bad", ["", "x", "1.2.3", "abc.def.ghi.jkl"])
def test_malformed_tokens_are_refused(bad: str) -> None:
    with pytest.raises(ConfirmationError):
        confirmation.check(bad, BINDING, NOW, TTL)


def test_a_forged_token_is_refused() -> None:
    token = confirmation.issue(BINDING, NOW)
    parts = token.split(".")
    forged = ".".join([parts[0], parts[1], BINDING.digest(), "A" * len(parts[3])])
    with pytest.raises(ConfirmationError) as err:
        confirmation.check(forged, BINDING, NOW, TTL)
    assert err.value.reason == "bad_signature"


def test_the_idempotency_key_derives_from_the_token() -> None:
    a = confirmation.issue(BINDING, NOW)
    b = confirmation.issue(BINDING, NOW)
    assert a != b
    assert confirmation.idempotency_key(a) == confirmation.idempotency_key(a)
    assert confirmation.idempotency_key(a) != confirmation.idempotency_key(b)
    assert a not in confirmation.idempotency_key(a)
