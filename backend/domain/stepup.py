"""THE step-up policy: when a payment needs a PIN, face or voice proof first.

One policy object, configured once (``BILLTALK_BILLING_STEP_UP_*`` and
``BILLTALK_BILLING_DAILY_LIMIT``, see :mod:`backend.settings`), enforced by the
billing API on ``POST /api/v1/payments`` and reported by the payment preview,
which is how the dialogue learns whether to ask for verification.

A resident-scoped payment needs a step-up proof when

* its amount is at or above ``threshold`` (default 200.00) - reason ``threshold``;
* it would take the household's payments today (succeeded, pending or held for
  review) above ``daily_limit`` (default 500.00) - reason ``daily_limit``;
* the risk rules ask for it (:mod:`backend.domain.risk`) - reason ``risk``.

A proof (:class:`ProofBinding`) is bound to the exact payment (PSD2 dynamic
linking): household, utility, amount and method; it expires after
``proof_ttl_s`` and pays once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class StepUpPolicy:
    """The step-up rule's numbers.

    Attributes:
        threshold: amounts at or above this need step-up.
        daily_limit: a day's payments above this need step-up.
        proof_ttl_s: seconds a proof stays valid.
        lockout_failures: failed verifications (all kinds and channels) that lock step-up.
        lockout_minutes: the window failures are counted in; the lock's length.
    """

    threshold: Decimal = Decimal("200.00")
    daily_limit: Decimal = Decimal("500.00")
    proof_ttl_s: int = 300
    lockout_failures: int = 10
    lockout_minutes: int = 15

    def reasons(self, amount: Decimal, paid_today: Decimal, risk_wants: bool) -> list[str]:
        """Why a payment needs step-up (empty: it does not), in a fixed order."""
        out = []
        if amount >= self.threshold:
            out.append("threshold")
        if paid_today + amount > self.daily_limit:
            out.append("daily_limit")
        if risk_wants:
            out.append("risk")
        return out


#: What a step-up proof may be used for: a payment, or turning autopay on up to a limit.
PROOF_PURPOSES = ("payment", "autopay")


@dataclass(frozen=True)
class ProofBinding:
    """What a step-up proof pays: exactly this household, utility, amount and method.

    ``purpose`` says what the proof is for: ``payment`` (pays ``amount`` once) or
    ``autopay`` (turns autopay on with the monthly limit ``amount``). A proof of one
    purpose never serves the other, even when every other field matches.
    """

    household_id: str
    utility: str | None
    amount: Decimal
    method: str
    purpose: str = "payment"

    def mismatch(self, other: ProofBinding) -> str | None:
        """The first field on which ``other`` differs (``None``: the same payment)."""
        if self.purpose != other.purpose:
            return "purpose"
        if self.household_id != other.household_id:
            return "household"
        if self.utility != other.utility:
            return "utility"
        if self.amount != other.amount:
            return "amount"
        if self.method != other.method:
            return "method"
        return None
