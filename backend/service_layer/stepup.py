"""Step-up verification outcomes, lockouts and single-use proofs bound to a payment.

The dialogue verifies the resident (PIN, face, voice) and reports each outcome
here (:func:`record_verification`, ``POST /api/v1/step-up/verifications``, a
service-token call: a resident's own token cannot vouch for itself). Failures of
every kind and channel count together toward the lockout
(:class:`~backend.domain.stepup.StepUpPolicy`). A passed verification for a
payment returns a proof token bound to that exact payment (household, utility,
amount, method), valid for a few minutes, used once: :func:`consume_proof`, called
by :func:`~backend.service_layer.payments.create_payment` in the same
transaction that records the payment.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend import schemas
from backend.adapters import orm
from backend.domain.stepup import ProofBinding, StepUpPolicy
from backend.service_layer import audit
from backend.service_layer.common import aware, check_utility, utcnow
from backend.service_layer.errors import Forbidden, Invalid, NotFound
from backend.service_layer.unit_of_work import UnitOfWork

KINDS = ("pin", "face", "voice")


class StepUpRequired(Forbidden):
    """A resident-scoped payment needs a valid step-up proof (403 ``step_up_required``)."""

    def __init__(self, message: str, risk: dict[str, object] | None = None) -> None:
        super().__init__("step_up_required", message)
        self.risk = risk


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def lock_state(
    session: Session, resident_id: str, policy: StepUpPolicy, now: datetime
) -> tuple[int, datetime | None]:
    """``(failures counted, locked until)`` for a resident, over every kind and channel.

    Failures count from the later of ``lockout_minutes`` ago and the last passed
    verification; ``lockout_failures`` of them lock step-up until the last one
    plus ``lockout_minutes``.
    """
    window = now - timedelta(minutes=policy.lockout_minutes)
    last_pass = session.scalar(
        select(func.max(orm.StepUpAttempt.attempted_at)).where(
            orm.StepUpAttempt.resident_id == resident_id,
            orm.StepUpAttempt.passed.is_(True),
            orm.StepUpAttempt.attempted_at >= window,
        )
    )
    since = max(window, aware(last_pass)) if last_pass is not None else window
    row = session.execute(
        select(func.count(), func.max(orm.StepUpAttempt.attempted_at)).where(
            orm.StepUpAttempt.resident_id == resident_id,
            orm.StepUpAttempt.passed.is_(False),
            orm.StepUpAttempt.attempted_at > since,
        )
    ).one()
    failures, last = int(row[0] or 0), row[1]
    if failures >= policy.lockout_failures and last is not None:
        return failures, aware(last) + timedelta(minutes=policy.lockout_minutes)
    return failures, None


def record_verification(
    uow: UnitOfWork,
    resident_id: str,
    kind: str,
    passed: bool,
    policy: StepUpPolicy,
    *,
    channel: str = "",
    payment: ProofBinding | None = None,
    now: datetime | None = None,
) -> schemas.StepUpOutcome:
    """Record one verification outcome; a pass for a payment returns its proof.

    While the resident is locked out nothing passes: the outcome says until when.

    Raises:
        NotFound: unknown resident.
        Invalid: unknown kind, or a payment of another household than the resident's.
    """
    if kind not in KINDS:
        raise Invalid("unknown_kind", f"kind must be one of {KINDS}")
    now = now or utcnow()
    with uow:
        resident = uow.repo.resident(resident_id)
        if resident is None:
            raise NotFound("unknown_resident", f"no resident {resident_id!r}")
        if payment is not None:
            check_utility(payment.utility)
            if payment.household_id != resident.household_id:
                raise Invalid("wrong_household", "the payment is not the resident's household's")
        failures, locked = lock_state(uow.session, resident_id, policy, now)
        if locked is not None and locked > now:
            return schemas.StepUpOutcome(
                passed=False, failures=failures, locked_until=locked, proof=None, expires_at=None
            )
        uow.session.add(
            orm.StepUpAttempt(
                resident_id=resident_id,
                household_id=resident.household_id,
                kind=kind,
                channel=channel[:20],
                passed=passed,
                attempted_at=now,
            )
        )
        uow.session.flush()
        actor = f"resident:{resident_id}"
        if not passed:
            failures, locked = lock_state(uow.session, resident_id, policy, now)
            audit.record(
                uow,
                "step_up.failed",
                actor=actor,
                subject=resident.household_id,
                data={
                    "kind": kind,
                    "channel": channel,
                    "failures": failures,
                    "locked": locked is not None,
                },
                at=now,
            )
            uow.commit()
            return schemas.StepUpOutcome(
                passed=False, failures=failures, locked_until=locked, proof=None, expires_at=None
            )
        token = expires = None
        data: dict[str, object] = {"kind": kind, "channel": channel}
        if payment is not None:
            token = f"sup_{secrets.token_urlsafe(24)}"
            expires = now + timedelta(seconds=policy.proof_ttl_s)
            proof = orm.StepUpProof(
                token_hash=_hash(token),
                resident_id=resident_id,
                household_id=payment.household_id,
                utility=payment.utility,
                amount=payment.amount,
                method=payment.method,
                purpose=payment.purpose,
                kind=kind,
                created_at=now,
                expires_at=expires,
            )
            uow.session.add(proof)
            uow.session.flush()
            data.update(
                proof_id=proof.proof_id,
                amount=format(payment.amount, "f"),
                utility=payment.utility,
                method=payment.method,
                purpose=payment.purpose,
            )
        audit.record(
            uow, "step_up.verified", actor=actor, subject=resident.household_id, data=data, at=now
        )
        uow.commit()
    return schemas.StepUpOutcome(
        passed=True, failures=0, locked_until=None, proof=token, expires_at=expires
    )


def consume_proof(
    session: Session, token: str, binding: ProofBinding, now: datetime, payment_id: str
) -> orm.StepUpProof:
    """Check a proof against the payment and mark it used (in the caller's transaction).

    The caller holds the household's row lock, so two payments can't use one proof.

    Raises:
        StepUpRequired: unknown, expired, used, or bound to another payment (says which).
    """
    proof = session.scalars(
        select(orm.StepUpProof).where(orm.StepUpProof.token_hash == _hash(token)).with_for_update()
    ).first()
    if proof is None:
        raise StepUpRequired("the step-up proof is not valid")
    if proof.used_at is not None:
        raise StepUpRequired("the step-up proof was already used; verify again")
    if aware(proof.expires_at) <= now:
        raise StepUpRequired("the step-up proof has expired; verify again")
    bound = ProofBinding(
        proof.household_id, proof.utility, Decimal(proof.amount), proof.method, proof.purpose
    )
    field = bound.mismatch(binding)
    if field == "purpose":
        raise StepUpRequired(
            f"the step-up proof was for {'an ' if proof.purpose == 'autopay' else 'a '}"
            f"{proof.purpose}, not {'an ' if binding.purpose == 'autopay' else 'a '}"
            f"{binding.purpose}; verify again"
        )
    if field is not None:
        raise StepUpRequired(f"the step-up proof was for a different {field}; verify again")
    proof.used_at = now
    proof.payment_id = payment_id
    return proof
