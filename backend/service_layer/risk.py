"""Risk features from the household's own history, and the assessment of a payment.

:func:`features` reads what :class:`~backend.domain.risk.RiskFeatures` needs in
three small queries (the household's payments, its recent failed step-ups, its
chat accounts' recent failed link codes); :func:`assess_payment` adds the model's
score (when trained and enabled) and applies the rules of
:mod:`backend.domain.risk`. :func:`training_rows` rebuilds the features of every
past payment as of its own time, for ``billtalk risk train``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from backend.adapters import orm
from backend.adapters import risk_model as model_store
from backend.domain.risk import RiskAssessment, RiskFeatures, assess
from backend.service_layer.common import aware
from backend.service_layer.unit_of_work import UnitOfWork
from backend.settings import BillingSettings
from billtalk.settings import get_settings


def model_path(settings: BillingSettings) -> Path:
    """Where the trained model lives (``risk_model_path`` or ``DATA_DIR/risk/model.joblib``)."""
    if settings.risk_model_path:
        return Path(settings.risk_model_path)
    return Path(get_settings().data_dir) / "risk" / "model.joblib"


def _hour(now: datetime, settings: BillingSettings) -> int:
    try:
        zone = settings.risk_timezone or get_settings().timezone
        return now.astimezone(ZoneInfo(zone)).hour
    except Exception:  # an unknown zone name: fall back to UTC
        return now.hour


def features(
    session: Session,
    household_id: str,
    amount: Decimal,
    method: str,
    channel: str,
    amount_due: Decimal,
    now: datetime,
    settings: BillingSettings,
) -> RiskFeatures:
    """The features of a payment request, from the household's history before ``now``."""
    rows = session.execute(
        select(
            orm.Payment.amount,
            orm.Payment.method,
            orm.Payment.channel,
            orm.Payment.status,
            orm.Payment.created_at,
        ).where(orm.Payment.household_id == household_id, orm.Payment.created_at <= now)
    ).all()
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
    today = datetime.combine(now.date(), time(0, 0), tzinfo=UTC)
    history = []
    methods: set[str] = set()
    channels: set[str] = set()
    per_hour = per_day = 0
    paid_today = Decimal(0)
    for amt, meth, chan, status, created in sorted(rows, key=lambda r: aware(r.created_at)):
        created = aware(created)
        if created >= day_ago:
            per_day += 1
            if created >= hour_ago:
                per_hour += 1
        if created >= today and status in ("succeeded", "pending", "review"):
            paid_today += amt
        if status in ("succeeded", "reversed"):
            history.append(amt)
            methods.add(meth)
            channels.add(chan or "api")
    failed_step_ups = (
        select(func.count())
        .select_from(orm.StepUpAttempt)
        .where(
            orm.StepUpAttempt.household_id == household_id,
            orm.StepUpAttempt.passed.is_(False),
            orm.StepUpAttempt.attempted_at >= day_ago,
        )
        .scalar_subquery()
    )
    failed_links = (
        select(func.count())
        .select_from(orm.LinkAttempt)
        .join(
            orm.ChannelLink,
            and_(
                orm.ChannelLink.channel == orm.LinkAttempt.channel,
                orm.ChannelLink.external_id == orm.LinkAttempt.external_id,
            ),
        )
        .join(orm.Resident, orm.Resident.resident_id == orm.ChannelLink.resident_id)
        .where(orm.Resident.household_id == household_id, orm.LinkAttempt.attempted_at >= day_ago)
        .scalar_subquery()
    )
    counts = session.execute(select(failed_step_ups, failed_links)).one()
    return RiskFeatures(
        amount=amount,
        amount_due=amount_due,
        history=tuple(history),
        per_hour=per_hour,
        per_day=per_day,
        new_channel=bool(history) and channel not in channels,
        channel=channel,
        new_method=bool(history) and method not in methods,
        method=method,
        hour=_hour(now, settings),
        failed_step_ups=int(counts[0] or 0),
        failed_links=int(counts[1] or 0),
        paid_today=paid_today,
    )


def model_score(f: RiskFeatures, settings: BillingSettings) -> int | None:
    """The IsolationForest's 0-100 score, or ``None`` (disabled or not trained)."""
    if not settings.risk_model_enabled:
        return None
    model = model_store.load(model_path(settings))
    return None if model is None else model.score(f.vector())


def assess_payment(
    f: RiskFeatures,
    settings: BillingSettings,
    *,
    enforce: bool,
    proof_valid: bool = False,
    proof_kind: str | None = None,
) -> RiskAssessment:
    """Score and decide one payment (rules in the documented order, plus the model)."""
    policy = settings.step_up_policy()
    return assess(
        f,
        policy_reasons=policy.reasons(f.amount, f.paid_today, False),
        model_score=model_score(f, settings),
        enforce=enforce,
        proof_valid=proof_valid,
        proof_kind=proof_kind,
    )


def training_rows(uow: UnitOfWork, settings: BillingSettings) -> list[RiskFeatures]:
    """The features of every past succeeded payment, each as of its own time."""
    with uow.reading():
        rows = uow.session.execute(
            select(
                orm.Payment.household_id,
                orm.Payment.amount,
                orm.Payment.method,
                orm.Payment.channel,
                orm.Payment.status,
                orm.Payment.created_at,
            )
        ).all()
    by_household: dict[str, list[tuple[datetime, Decimal, str, str, str]]] = defaultdict(list)
    for hid, amount, method, channel, status, created in rows:
        by_household[hid].append((aware(created), amount, method, channel or "api", status))
    out = []
    for payments in by_household.values():
        payments.sort()
        history: list[Decimal] = []
        methods: set[str] = set()
        channels: set[str] = set()
        times: list[datetime] = []
        for created, amount, method, channel, status in payments:
            if status in ("succeeded", "reversed"):
                per_hour = sum(1 for t in times if t >= created - timedelta(hours=1))
                per_day = sum(1 for t in times if t >= created - timedelta(days=1))
                out.append(
                    RiskFeatures(
                        amount=amount,
                        amount_due=amount,
                        history=tuple(history),
                        per_hour=per_hour,
                        per_day=per_day,
                        new_channel=bool(history) and channel not in channels,
                        channel=channel,
                        new_method=bool(history) and method not in methods,
                        method=method,
                        hour=_hour(created, settings),
                    )
                )
                history.append(amount)
                methods.add(method)
                channels.add(channel)
            times.append(created)
    return out
