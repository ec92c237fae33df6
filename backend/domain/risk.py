"""Risk scoring of a payment: features, rules in a fixed order, and the decision.

Pure functions over :class:`RiskFeatures` (built by
:mod:`backend.service_layer.risk` from the household's own history and the
request). The optional IsolationForest score (:mod:`backend.adapters.risk_model`)
is passed in as ``model_score``; without a trained model the rules decide alone.

**Score.** Each rule that fires adds points and a human-readable reason (e.g.
"8 payments in the last hour", "4.2× this household's largest payment"); the
rules' score is their sum capped at 100. With a model, the score is
``max(rules, (rules + model) / 2)``: the model can raise a score, never lower it.

**Level.** ``normal`` below 50, ``elevated`` from 50, ``highest`` from 80.

**Action.** Rules are evaluated in a fixed, documented order, as card-fraud
systems do (step-up, allow, block, review):

1. *step-up*: the step-up policy's reasons (amount at or above the threshold,
   past the daily limit) or an ``elevated`` level ask for a step-up proof. A
   resident-scoped payment without a valid proof stops here: ``step_up``.
2. *allow*: a ``normal`` level, or an ``elevated`` one whose step-up was
   verified: ``allow`` (nothing further is checked).
3. *block*: a card-testing burst (``BLOCK_BURST_PER_HOUR`` payments within the
   hour) or a score of ``BLOCK_SCORE`` or more: ``block`` (refused, no money moves).
4. *review*: a ``highest`` level: ``review`` (held for staff approval).
5. otherwise ``allow``.

Trusted callers (service and staff tokens, autopay, the demo seeder) are scored
and recorded, and always get ``allow``: the rules protect resident-scoped access.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

Level = Literal["normal", "elevated", "highest"]
Action = Literal["allow", "step_up", "review", "block"]

ELEVATED = 50
HIGHEST = 80
BLOCK_SCORE = 95
BLOCK_BURST_PER_HOUR = 10

#: The feature vector's order (the model's columns).
FEATURE_NAMES = (
    "log_amount",
    "ratio_to_max",
    "z_score",
    "overpaid",
    "per_hour",
    "per_day",
    "new_channel",
    "new_method",
    "night",
    "failed_step_ups",
    "failed_links",
)


@dataclass(frozen=True)
class RiskFeatures:
    """What is known about one payment request, from the household's own history.

    Attributes:
        amount: the amount asked for.
        amount_due: what the household (or the utility paid) owes now.
        history: past successful payment amounts of the household (oldest first).
        per_hour: payments (any status) by the household in the last hour.
        per_day: payments (any status) by the household in the last 24 hours.
        new_channel: the channel (terminal, telegram, speaker, api...) never paid from before.
        channel: that channel's name.
        new_method: the method never used by the household before.
        method: the method's name.
        hour: the hour of day (0-23, local time) of the request.
        failed_step_ups: failed step-up verifications of the household in the last 24 hours.
        failed_links: failed link-code attempts of the household's chat accounts (24 hours).
        paid_today: the household's payments today (succeeded, pending or held), for the
            step-up policy's daily limit.
    """

    amount: Decimal
    amount_due: Decimal
    history: tuple[Decimal, ...] = ()
    per_hour: int = 0
    per_day: int = 0
    new_channel: bool = False
    channel: str = ""
    new_method: bool = False
    method: str = ""
    hour: int = 12
    failed_step_ups: int = 0
    failed_links: int = 0
    paid_today: Decimal = Decimal(0)

    @property
    def largest(self) -> Decimal:
        """The largest past payment (0 without history)."""
        return max(self.history, default=Decimal(0))

    def ratio_to_max(self) -> float:
        """Amount over the largest past payment (1.0 without history)."""
        return float(self.amount / self.largest) if self.largest > 0 else 1.0

    def z_score(self) -> float:
        """Standard deviations above the household's mean payment (0 with < 3 payments)."""
        if len(self.history) < 3:
            return 0.0
        n = len(self.history)
        mean = sum(self.history, Decimal(0)) / n
        var = sum(((h - mean) ** 2 for h in self.history), Decimal(0)) / (n - 1)
        std = max(float(var.sqrt()), float(mean) * 0.05, 1.0)
        return (float(self.amount) - float(mean)) / std

    def overpayment(self) -> Decimal:
        """How much more than is due the payment is (0 if not more)."""
        return max(self.amount - self.amount_due, Decimal(0))

    def vector(self) -> list[float]:
        """The model's input, in :data:`FEATURE_NAMES` order (statistics, not money)."""
        return [
            math.log1p(float(self.amount)),
            min(self.ratio_to_max(), 50.0),
            max(min(self.z_score(), 50.0), -50.0),
            1.0 if self.overpayment() > 0 else 0.0,
            float(self.per_hour),
            float(self.per_day),
            1.0 if self.new_channel else 0.0,
            1.0 if self.new_method else 0.0,
            1.0 if self.hour < 6 else 0.0,
            float(self.failed_step_ups),
            float(self.failed_links),
        ]


@dataclass(frozen=True)
class RiskAssessment:
    """The risk of one payment, as returned with every payment answer."""

    score: int
    level: Level
    action: Action
    reasons: list[str] = field(default_factory=list)
    rules_score: int = 0
    model_score: int | None = None
    step_up: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """``{"score", "level", "action", "reasons"}`` for the API."""
        return {
            "score": self.score,
            "level": self.level,
            "action": self.action,
            "reasons": list(self.reasons),
        }


def _money(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01")), "f")


def rule_points(f: RiskFeatures) -> tuple[int, list[str]]:
    """The rules' score (0-100) and their human-readable reasons."""
    points = 0
    reasons: list[str] = []

    def add(p: int, reason: str) -> None:
        nonlocal points
        points += p
        reasons.append(reason)

    ratio = f.ratio_to_max()
    if len(f.history) >= 2 and ratio >= 3:
        add(30 if ratio >= 5 else 20, f"{ratio:.1f}× this household's largest payment")
    z = f.z_score()
    if z >= 3:
        add(10, f"{z:.1f} standard deviations above this household's usual payment")
    over = f.overpayment()
    if over > 0:
        add(15, f"pays {_money(over)} more than is due")
    if f.per_hour >= 3:
        burst = 80 if f.per_hour >= BLOCK_BURST_PER_HOUR else 50 if f.per_hour >= 6 else 20
        add(burst, f"{f.per_hour} payments in the last hour")
    elif f.per_day >= 6:
        add(15, f"{f.per_day} payments in the last 24 hours")
    if f.new_channel and f.history:
        add(10, f"first payment from {f.channel or 'this channel'}")
    if f.new_method and f.history:
        add(10, f"first payment by {f.method.replace('_', ' ') or 'this method'}")
    if f.hour < 6:
        add(10, f"at {f.hour:02d}:00, outside usual hours")
    if f.failed_step_ups >= 2:
        add(25, f"{f.failed_step_ups} failed verifications in the last 24 hours")
    elif f.failed_step_ups == 1:
        add(10, "a failed verification in the last 24 hours")
    if f.failed_links >= 3:
        add(15, f"{f.failed_links} wrong link codes in the last 24 hours")
    return min(points, 100), reasons


def level_of(score: int) -> Level:
    """``normal`` < 50 ≤ ``elevated`` < 80 ≤ ``highest``."""
    if score >= HIGHEST:
        return "highest"
    if score >= ELEVATED:
        return "elevated"
    return "normal"


def assess(
    f: RiskFeatures,
    *,
    policy_reasons: list[str],
    model_score: int | None = None,
    enforce: bool = True,
    proof_valid: bool = False,
    proof_kind: str | None = None,
) -> RiskAssessment:
    """Score a payment and decide, evaluating the rules in the documented order.

    Args:
        policy_reasons: the step-up policy's reasons (``threshold``, ``daily_limit``).
        model_score: the IsolationForest's 0-100 score, if a model is trained.
        enforce: whether the decision applies (resident-scoped callers). Trusted
            callers (service, staff, autopay, the demo seeder) are scored and
            recorded, and always get ``allow``.
        proof_valid: a valid step-up proof bound to this payment was presented.
        proof_kind: how the resident verified (for the reason text).
    """
    rules, reasons = rule_points(f)
    score = rules if model_score is None else max(rules, (rules + model_score + 1) // 2)
    if model_score is not None and model_score >= 50:
        reasons.append(f"unusual for this community (model score {model_score})")
    level = level_of(score)
    step_up = list(policy_reasons)
    if level != "normal" and "risk" not in step_up:
        step_up.append("risk")

    def done(action: Action, extra: list[str] | None = None) -> RiskAssessment:
        return RiskAssessment(
            score, level, action, reasons + (extra or []), rules, model_score, step_up
        )

    if not enforce:
        return done("allow")
    # 1. step-up
    verified: list[str] = []
    if step_up:
        if not proof_valid:
            return done("step_up")
        verified = [f"verified by {proof_kind or 'step-up'}"]
    # 2. allow
    if level == "normal" or (level == "elevated" and verified):
        return done("allow", verified)
    # 3. block
    if f.per_hour >= BLOCK_BURST_PER_HOUR or score >= BLOCK_SCORE:
        return done("block", verified)
    # 4. review
    if level == "highest":
        return done("review", verified)
    return done("allow", verified)
