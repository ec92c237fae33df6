"""The PIN verifier and the step-up verification service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from billtalk.db import make_engine
from bot.settings import DialogueSettings
from bot.store import ConversationStore, ensure_schema
from bot.verification_service import VerificationService
from bot.verifiers.pin import PinVerifier, WeakPinError, check_new_pin
from verification import Decision, Evidence, VerificationKind

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> ConversationStore:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    ensure_schema(url)
    return ConversationStore(make_engine(url))


@pytest.mark.parametrize(
    ("pin", "reason"),
    [
        ("123456", "weak"),
        ("654321", "weak"),
        ("000000", "weak"),
        ("12345", "format"),
        ("12a456", "format"),
        ("", "format"),
    ],
)
def test_weak_and_malformed_pins_are_refused(pin: str, reason: str) -> None:
    with pytest.raises(WeakPinError) as err:
        check_new_pin(pin)
    assert err.value.reason == reason


def test_a_good_pin_is_normalised() -> None:
    assert check_new_pin(" 482 916 ") == "482916"


async def test_pin_is_stored_hashed_and_checked(store: ConversationStore) -> None:
    clock = Clock()
    verifier = PinVerifier(store, clock)
    assert not await verifier.is_enrolled("r-1")
    await verifier.set_pin("r-1", "482916")
    stored = store.get_pin_hash("r-1") or ""
    assert stored.startswith("$argon2id$") and "482916" not in stored
    challenge = await verifier.start("r-1")
    ok = await verifier.verify("r-1", challenge, Evidence("text", b"482916"))
    assert ok.decision is Decision.ACCEPT
    wrong = await verifier.verify("r-1", challenge, Evidence("text", b"482917"))
    assert wrong.decision is Decision.REJECT
    short = await verifier.verify("r-1", challenge, Evidence("text", b"4829"))
    assert short.decision is Decision.RETRY
    clock.now += timedelta(minutes=6)
    expired = await verifier.verify("r-1", challenge, Evidence("text", b"482916"))
    assert expired.reason == "expired"
    assert "482916" not in repr(Evidence("text", b"482916"))


async def test_five_failures_lock_the_kind_for_fifteen_minutes(store: ConversationStore) -> None:
    clock = Clock()
    pin = PinVerifier(store, clock)
    await pin.set_pin("r-1", "482916")
    service = VerificationService({VerificationKind.PIN: pin}, store, DialogueSettings(), clock)
    challenge = await service.start("r-1", VerificationKind.PIN)
    outcomes = [
        await service.verify("r-1", challenge, Evidence("text", b"111112")) for _ in range(5)
    ]
    assert [o.failures for o in outcomes] == [1, 2, 3, 4, 5]
    assert outcomes[-1].locked_until == NOW + timedelta(minutes=15)
    locked = await service.verify("r-1", challenge, Evidence("text", b"482916"))
    assert locked.result.reason == "locked" and not locked.result.passed
    clock.now += timedelta(minutes=15, seconds=1)
    challenge = await service.start("r-1", VerificationKind.PIN)
    assert (await service.verify("r-1", challenge, Evidence("text", b"482916"))).result.passed
    log = outcomes[0].to_log()
    assert set(log) >= {"kind", "decision", "score"} and "482916" not in str(log)


def test_step_up_rules_are_the_backends() -> None:
    """The dialogue asks for step-up exactly when the backend's preview says so.

    The rule itself (threshold 200.00, daily limit 500.00, risk) is the backend's
    step-up policy, tested in tests/security/test_stepup_api.py.
    """
    from types import SimpleNamespace

    from backend.domain.stepup import StepUpPolicy

    service = VerificationService({}, None, DialogueSettings(), Clock())  # type: ignore[arg-type]
    policy = StepUpPolicy()
    for amount, today, risk, expected in (
        ("199.99", "0", False, []),
        ("200.00", "0", False, ["threshold"]),
        ("100.00", "400.01", False, ["daily_limit"]),
        ("100.00", "400.00", False, []),
        ("10.00", "0", True, ["risk"]),
    ):
        reasons = policy.reasons(Decimal(amount), Decimal(today), risk)
        assert reasons == expected
        preview = SimpleNamespace(step_up_reasons=reasons, risk_flagged=bool(reasons))
        assert service.step_up_reasons(preview) == expected
    assert service.step_up_reasons(SimpleNamespace(risk_flagged=True)) == ["risk"]
