"""Step-up verification in the dialogue: when it is needed, which kinds to offer, lockouts.

Rules:

* **the backend decides** whether a payment needs step-up: the payment preview's
  ``step_up_required`` / ``step_up_reasons`` (``threshold``: the amount is at or
  above the step-up threshold, 200.00 by default; ``daily_limit``: it would take
  the household's payments today past the daily limit; ``risk``: the risk rules
  ask). The threshold and the daily limit live in one place, the backend's
  step-up policy (``BILLTALK_BILLING_STEP_UP_THRESHOLD``,
  ``BILLTALK_BILLING_DAILY_LIMIT``; see ``backend/domain/stepup.py``), and the
  billing API refuses a resident's payment without a proof (403
  ``step_up_required``) whatever the dialogue does;
* every verification outcome is recorded with the backend
  (``POST /api/v1/step-up/verifications``, with the service token), where
  failures on every channel count toward one lockout; a pass returns a
  single-use proof bound to the exact payment, which the payment then carries;
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

from billtalk.logs import get_logger
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

log = get_logger("bot.verification")


@dataclass(frozen=True)
class AttemptOutcome:
    """The result of one attempt, with the lockout bookkeeping applied."""

    result: VerificationResult
    failures: int
    locked_until: datetime | None
    #: The backend's single-use proof for the payment (a pass recorded with a payment).
    proof: str | None = None

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
        settings: Lockout policy.
        clock: Returns the current time.
        billing: A service-scoped ``BillingClient`` to record outcomes with (and get
            proofs from); ``None`` records nothing (tests of the dialogue alone).
    """

    def __init__(
        self,
        registry: Mapping[VerificationKind, Verifier],
        store: ConversationStore,
        settings: DialogueSettings,
        clock: Callable[[], datetime] = utcnow,
        billing: Any = None,
    ) -> None:
        self.registry = dict(registry)
        self.store = store
        self.settings = settings
        self.clock = clock
        self.billing = billing

    @staticmethod
    def step_up_reasons(preview: Any) -> list[str]:
        """Why the backend says this payment needs step-up (empty: it does not).

        ``preview`` is the billing API's payment preview; older backends without
        ``step_up_reasons`` are read through ``risk_flagged``.
        """
        reasons = getattr(preview, "step_up_reasons", None)
        if reasons is not None:
            return [str(r) for r in reasons]
        return ["risk"] if getattr(preview, "risk_flagged", False) else []

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
        self,
        resident_id: str,
        challenge: Challenge,
        evidence: Evidence,
        *,
        payment: Mapping[str, Any] | None = None,
        channel: str = "",
    ) -> AttemptOutcome:
        """Decide one attempt, count it towards the lockout, and record it with the backend.

        Args:
            payment: the confirmed payment (``household_id``, ``utility``, ``amount``,
                ``method``): a pass then carries the backend's proof for it.
            channel: where the attempt was made (every channel counts together).
        """
        now = self.clock()
        kind = challenge.kind
        if self.store.locked_until(resident_id, str(kind), now) is not None:
            result = VerificationResult(kind, Decision.REJECT, "locked")
            return AttemptOutcome(result, self.settings.lockout_failures, None)
        result = await self.registry[kind].verify(resident_id, challenge, evidence)
        if result.decision is Decision.RETRY:
            return AttemptOutcome(result, 0, None)
        passed = result.decision is Decision.ACCEPT
        recorded = await self._record(resident_id, str(kind), passed, payment, channel)
        if recorded is not None and recorded.locked_until is not None:
            # Locked by failures on another channel or kind: nothing passes now.
            locked = VerificationResult(kind, Decision.REJECT, "locked")
            return AttemptOutcome(locked, recorded.failures, recorded.locked_until)
        if passed:
            self.store.record_success(resident_id, str(kind), now)
            return AttemptOutcome(result, 0, None, recorded.proof if recorded else None)
        failures, locked_until = self.store.record_failure(
            resident_id,
            str(kind),
            now,
            self.settings.lockout_failures,
            timedelta(minutes=self.settings.lockout_minutes),
        )
        return AttemptOutcome(result, failures, locked_until)

    async def _record(
        self,
        resident_id: str,
        kind: str,
        passed: bool,
        payment: Mapping[str, Any] | None,
        channel: str,
    ) -> Any:
        """Record the outcome with the backend (``None`` if there is no backend or it is down:
        the payment then meets the API's own step-up check and is refused, not paid)."""
        if self.billing is None:
            return None
        fields: dict[str, Any] = {}
        if payment is not None and payment.get("household_id"):
            fields = {
                "household_id": payment["household_id"],
                "utility": payment.get("utility"),
                "amount": Decimal(str(payment["amount"])),
                "method": payment["method"],
                # A confirmation to turn autopay on (limit = amount) gets an autopay proof.
                "purpose": "autopay" if payment.get("kind") == "autopay" else "payment",
            }
        try:
            return await self.billing.record_verification(
                resident_id, kind=kind, passed=passed, channel=channel[:20], **fields
            )
        except Exception as exc:  # recorded nowhere: the API's check still stands
            log.warning("step_up_record_failed", kind=kind, error=exc.__class__.__name__)
            return None
