"""Step-up verification policy: when it is needed, which kinds to offer, lockouts.

Rules (values in :class:`~bot.settings.DialogueSettings`):

* step-up is required when the amount is at or above ``step_up_threshold``
  (200.00), when the payment would take the household's payments today above
  ``daily_limit`` (500.00), or when the backend flags the payment as risky;
* the kinds offered are those the resident is enrolled in and that are not
  locked, PIN first;
* ``lockout_failures`` (5) rejected attempts lock that kind for the resident for
  ``lockout_minutes`` (15); the dialogue tells them and flags the conversation;
* attempts are reported as kind, score and decision only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.messages import utcnow
from bot.settings import DialogueSettings
from bot.store import ConversationStore
from verification import (
    Challenge,
    Decision,
    Evidence,
    VerificationKind,
    VerificationResult,
    Verifier,
)


@dataclass(frozen=True)
class AttemptOutcome:
    """The result of one attempt, with the lockout bookkeeping applied."""

    result: VerificationResult
    failures: int
    locked_until: datetime | None

    def to_log(self) -> dict[str, Any]:
        """Kind, score and decision for the conversation log."""
        data = self.result.to_log()
        data["failures"] = self.failures
        data["locked"] = self.locked_until is not None
        return data


class VerificationService:
    """Applies the step-up rules with the registered verifiers.

    Args:
        registry: Verifiers by kind (see :func:`bot.verifiers.build_registry`).
        store: Where lockouts are counted.
        settings: Thresholds and lockout policy.
        clock: Returns the current time.
    """

    def __init__(
        self,
        registry: Mapping[VerificationKind, Verifier],
        store: ConversationStore,
        settings: DialogueSettings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.registry = dict(registry)
        self.store = store
        self.settings = settings
        self.clock = clock

    def step_up_reasons(
        self, amount: Decimal, paid_today: Decimal, risk_flagged: bool
    ) -> list[str]:
        """Why this payment needs step-up verification (empty: it does not)."""
        reasons = []
        if amount >= self.settings.step_up_threshold:
            reasons.append("threshold")
        if paid_today + amount > self.settings.daily_limit:
            reasons.append("daily_limit")
        if risk_flagged:
            reasons.append("risk")
        return reasons

    async def enrolled_kinds(self, resident_id: str) -> list[VerificationKind]:
        """Kinds the resident is enrolled in, PIN first (locked kinds included)."""
        kinds = []
        for kind, verifier in self.registry.items():
            try:
                if await verifier.is_enrolled(resident_id):
                    kinds.append(kind)
            except Exception:  # an unavailable biometric backend just isn't offered
                continue
        return sorted(kinds, key=lambda k: (k is not VerificationKind.PIN, str(k)))

    def locked_until(self, resident_id: str, kind: VerificationKind) -> datetime | None:
        """Until when ``kind`` is locked for the resident, if it is."""
        return self.store.locked_until(resident_id, str(kind), self.clock())

    async def start(self, resident_id: str, kind: VerificationKind) -> Challenge:
        """Issue a challenge of ``kind``."""
        return await self.registry[kind].start(resident_id)

    async def verify(
        self, resident_id: str, challenge: Challenge, evidence: Evidence
    ) -> AttemptOutcome:
        """Decide one attempt and count it towards the lockout."""
        now = self.clock()
        kind = challenge.kind
        if self.store.locked_until(resident_id, str(kind), now) is not None:
            result = VerificationResult(kind, Decision.REJECT, "locked")
            return AttemptOutcome(result, self.settings.lockout_failures, None)
        result = await self.registry[kind].verify(resident_id, challenge, evidence)
        if result.decision is Decision.ACCEPT:
            self.store.record_success(resident_id, str(kind), now)
            return AttemptOutcome(result, 0, None)
        if result.decision is Decision.RETRY:
            return AttemptOutcome(result, 0, None)
        failures, locked = self.store.record_failure(
            resident_id,
            str(kind),
            now,
            self.settings.lockout_failures,
            timedelta(minutes=self.settings.lockout_minutes),
        )
        return AttemptOutcome(result, failures, locked)
