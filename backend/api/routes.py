"""The ``/api/v1`` routes. Each checks the caller's scope and household, then calls a service."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from backend import schemas
from backend.api import models, reads
from backend.api.deps import (
    Caller,
    Gateway,
    Settings,
    Uow,
    require_household,
    require_own_object,
    require_scope,
)
from backend.api.errors import ApiError
from backend.api.reads import Limit, StatusQ, UtilityQ
from backend.service_layer import services
from backend.service_layer.services import Principal
from backend.service_layer.unit_of_work import UnitOfWork


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "Malformed request (bad JSON, missing header)"),
        (401, "Missing or invalid bearer token"),
        (403, "The token may not access this"),
        (404, "Unknown household, bill, payment..."),
        (409, "Conflicts with the current state"),
        (413, "Body too large"),
        (422, "Invalid values (e.g. invalid_amount)"),
        (429, "Too many attempts"),
    )
}

router = APIRouter(prefix="/api/v1", responses=_ERRORS)

PathId = Annotated[str, "path"]


def _limit(request: Request, checks: list[tuple[str, int]], window_s: int = 3600) -> None:
    """Count one hit on each ``(key, limit)``; 429 with ``Retry-After`` past any limit."""
    limiter = request.app.state.limiter
    for key, limit in checks:
        verdict = limiter.hit(key, limit, window_s)
        if not verdict.allowed:
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests; try again in {verdict.retry_after} s",
                {"Retry-After": str(verdict.retry_after)},
            )


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# --- auth and residents -------------------------------------------------------------


@router.post(
    "/auth/resident-token", response_model=schemas.TokenOut, status_code=201, tags=["auth"]
)
def resident_token(
    body: models.ResidentTokenIn, caller: Caller, uow: Uow, settings: Settings
) -> Any:
    """Exchange a service token for a short-lived token scoped to one resident's household."""
    require_scope(caller, "service")
    return services.issue_token(
        uow,
        "resident",
        name="resident-scope",
        resident_id=body.resident_id,
        ttl=timedelta(minutes=settings.resident_token_ttl_minutes),
    )


@router.get("/residents/{resident_id}", response_model=schemas.Resident, tags=["residents"])
def get_resident(resident_id: str, caller: Caller, uow: Uow) -> Any:
    """A resident, with their household, unit and saved payment method."""
    return reads.get_resident(caller, uow, resident_id)


@router.get("/links/{channel}/{external_id}", response_model=schemas.LinkResult, tags=["residents"])
def resolve_link(channel: str, external_id: str, caller: Caller, uow: Uow) -> Any:
    """The resident a chat account (channel + external id) is linked to."""
    require_scope(caller, "service", "staff")
    return services.resolve_link(uow, channel, external_id)


@router.post("/link-codes", response_model=schemas.LinkCodeOut, status_code=201, tags=["residents"])
def create_link_code(body: models.LinkCodeIn, caller: Caller, uow: Uow) -> Any:
    """Create a one-time, expiring code that links a chat account to a resident."""
    if caller.scope == "resident" and caller.resident_id != body.resident_id:
        raise ApiError(404, "unknown_resident", "no resident with that id")
    return services.create_link_code(uow, body.resident_id)


@router.delete("/links/{channel}/{external_id}", status_code=204, tags=["residents"])
def unlink(channel: str, external_id: str, caller: Caller, uow: Uow) -> Response:
    """Unbind a chat account from its resident (audited)."""
    require_scope(caller, "service", "staff")
    services.unlink(uow, channel, external_id, actor=caller.scope)
    return Response(status_code=204)


@router.post("/link-codes/redeem", response_model=schemas.LinkResult, tags=["residents"])
def redeem_link_code(
    body: models.RedeemIn, request: Request, caller: Caller, uow: Uow, settings: Settings
) -> Any:
    """Redeem a link code for a chat account (one-time, expiring, attempt-limited)."""
    require_scope(caller, "service", "staff")
    per_hour = settings.rate_link_tries_per_hour
    _limit(
        request,
        [
            (f"link:user:{body.channel}:{body.external_id}", per_hour),
            (f"link:addr:{_address(request)}", per_hour * 100),
        ],
    )
    return services.redeem_link_code(
        uow, body.code, body.channel, body.external_id, settings=settings
    )


# --- households: balance, bills, usage ------------------------------------------------


@router.get("/households/{household_id}/balance", response_model=schemas.Balance, tags=["billing"])
def get_balance(household_id: str, caller: Caller, uow: Uow) -> Any:
    """What the household owes, in total and per utility."""
    return reads.balance(caller, uow, household_id)


@router.get(
    "/households/{household_id}/bills", response_model=list[schemas.BillSummary], tags=["billing"]
)
def list_bills(
    household_id: str,
    caller: Caller,
    uow: Uow,
    utility: UtilityQ = None,
    status: StatusQ = None,
    limit: Limit = 12,
) -> Any:
    """The household's bills, newest first."""
    return reads.list_bills(caller, uow, household_id, utility=utility, status=status, limit=limit)


@router.get("/bills/{bill_id}", response_model=schemas.BillDetail, tags=["billing"])
def get_bill(bill_id: str, caller: Caller, uow: Uow) -> Any:
    """A bill with its itemised lines."""
    return reads.get_bill(caller, uow, bill_id)


@router.get("/households/{household_id}/usage", response_model=schemas.UsageSeries, tags=["usage"])
def usage(
    household_id: str,
    caller: Caller,
    uow: Uow,
    utility: Annotated[schemas.Utility, Query()],
    start: Annotated[date, Query()],
    end: Annotated[date, Query()],
) -> Any:
    """Billed usage per period between ``start`` and ``end``."""
    require_household(caller, household_id)
    return services.usage_series(uow, household_id, utility, start, end)


@router.get("/households/{household_id}/forecast", response_model=schemas.Forecast, tags=["usage"])
def forecast(
    household_id: str, caller: Caller, uow: Uow, utility: Annotated[schemas.Utility, Query()]
) -> Any:
    """Next month's expected usage and cost."""
    require_household(caller, household_id)
    return services.forecast(uow, household_id, utility)


# --- readings -----------------------------------------------------------------------


@router.post(
    "/households/{household_id}/readings",
    response_model=schemas.ReadingResult,
    status_code=201,
    tags=["readings"],
)
def submit_reading(household_id: str, body: models.ReadingIn, caller: Caller, uow: Uow) -> Any:
    """Submit a meter reading (validated; implausible jumps are flagged for staff)."""
    require_household(caller, household_id)
    return services.record_reading(
        uow, household_id, body.utility, body.value, source=body.source, taken_at=body.taken_at
    )


@router.get(
    "/households/{household_id}/readings", response_model=list[schemas.Reading], tags=["readings"]
)
def list_readings(
    household_id: str,
    caller: Caller,
    uow: Uow,
    utility: Annotated[schemas.Utility | None, Query()] = None,
    limit: Limit = 24,
) -> Any:
    """The household's meter readings, newest first."""
    require_household(caller, household_id)
    if utility == "property_fee":
        raise ApiError(422, "unknown_utility", "property_fee has no meter")
    return services.list_readings(uow, household_id, utility=utility, limit=limit)


@router.get("/readings/flagged", tags=["staff"])
def flagged_readings(caller: Caller, uow: Uow, limit: Limit = 100) -> list[dict[str, Any]]:
    """Staff: readings waiting for review."""
    require_scope(caller, "staff")
    return services.flagged_readings(uow, limit)


@router.post("/readings/{reading_id}/review", response_model=schemas.Reading, tags=["staff"])
def review_reading(
    reading_id: Annotated[int, "path"], body: models.ReviewIn, caller: Caller, uow: Uow
) -> Any:
    """Staff: approve or reject a flagged reading."""
    require_scope(caller, "staff")
    if not 0 < reading_id < 2**63:
        raise ApiError(404, "unknown_reading", "no such reading")
    return services.review_reading(uow, reading_id, approve=body.approve)


# --- payments -----------------------------------------------------------------------


@router.post(
    "/households/{household_id}/payment-preview",
    response_model=schemas.PaymentPreview,
    tags=["payments"],
)
def preview_payment(
    household_id: str, body: models.PreviewIn, caller: Caller, uow: Uow, settings: Settings
) -> Any:
    """What a payment would pay, whether it overpays, and whether it needs step-up verification."""
    return reads.preview_payment(caller, uow, household_id, body, settings)


@router.post(
    "/payments",
    response_model=schemas.Payment,
    status_code=201,
    tags=["payments"],
    responses={
        409: {"description": "Idempotency-Key reused with a different body"},
        403: {
            "model": ErrorBody,
            "description": "step_up_required (no valid step-up proof), payment_blocked, "
            "or the token may not access this household",
        },
    },
)
def create_payment(
    body: models.PaymentIn,
    request: Request,
    caller: Caller,
    uow: Uow,
    gateway: Gateway,
    settings: Settings,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=100)],
) -> Any:
    """Pay. Replaying the same ``Idempotency-Key`` and body returns the first response.

    Every answer carries ``risk`` (score, level, action, reasons). A resident-scoped
    payment at or above the step-up threshold (or past the daily limit, or when
    the risk rules ask) needs ``step_up_proof``: without a valid one it is refused
    with 403 ``step_up_required`` and no money moves. ``action: review`` holds the
    payment (status ``review``) for staff. Payment attempts are rate limited per
    resident, per token and per address (429 with ``Retry-After``).
    """
    require_household(caller, body.household_id)
    per_hour = settings.rate_payments_per_hour
    checks = [(f"pay:token:{caller.token_id}", per_hour)]
    if caller.resident_id:
        checks.append((f"pay:resident:{caller.resident_id}", per_hour))
    checks.append((f"pay:addr:{_address(request)}", per_hour * 100))
    _limit(request, checks)
    response, replayed = services.create_payment(
        uow,
        gateway,
        body.household_id,
        body.amount,
        body.method,
        idempotency_key,
        utility=body.utility,
        payment_token=body.payment_token,
        source="resident" if caller.scope == "resident" else caller.scope,
        step_up_proof=body.step_up_proof,
        channel=body.channel,
        actor=f"resident:{caller.resident_id}" if caller.resident_id else caller.scope,
        settings=settings,
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return JSONResponse(response, status_code=201, headers=headers)


@router.get(
    "/households/{household_id}/payments", response_model=list[schemas.Payment], tags=["payments"]
)
def list_payments(household_id: str, caller: Caller, uow: Uow, limit: Limit = 5) -> Any:
    """The household's payments, newest first."""
    require_household(caller, household_id)
    return services.list_payments(uow, household_id, limit=limit)


def _payment_access(uow: UnitOfWork, caller: Principal, payment_id: str) -> None:
    household_id = services.payment_household(uow, payment_id)
    require_own_object(caller, household_id, "unknown_payment", "payment")


@router.get("/payments/{payment_id}", response_model=schemas.Payment, tags=["payments"])
def get_payment(payment_id: str, caller: Caller, uow: Uow) -> Any:
    """One payment."""
    _payment_access(uow, caller, payment_id)
    return services.get_payment(uow, payment_id)


@router.get("/payments/{payment_id}/receipt", response_model=schemas.Receipt, tags=["payments"])
def get_receipt(payment_id: str, caller: Caller, uow: Uow) -> Any:
    """The receipt (e-invoice) of a succeeded payment."""
    _payment_access(uow, caller, payment_id)
    return services.get_receipt(uow, payment_id)


@router.get(
    "/payments/{payment_id}/receipt.pdf",
    tags=["payments"],
    responses={200: {"content": {"application/pdf": {}}}},
    response_class=Response,
)
def get_receipt_pdf(payment_id: str, caller: Caller, uow: Uow) -> Response:
    """The receipt as a PDF."""
    from backend.service_layer.receipts import receipt_pdf

    _payment_access(uow, caller, payment_id)
    return Response(receipt_pdf(uow, payment_id), media_type="application/pdf")


@router.post("/payments/{payment_id}/refund", response_model=schemas.Payment, tags=["staff"])
def refund(
    payment_id: str, body: models.RefundIn, caller: Caller, uow: Uow, gateway: Gateway
) -> Any:
    """Staff: refund all or part of a payment (compensating ledger entry)."""
    require_scope(caller, "staff")
    return services.refund_payment(uow, gateway, payment_id, body.amount, reason=body.reason)


@router.post("/payments/{payment_id}/reverse", response_model=schemas.Payment, tags=["staff"])
def reverse(
    payment_id: str, body: models.ReverseIn, caller: Caller, uow: Uow, gateway: Gateway
) -> Any:
    """Staff: reverse a payment entirely (compensating ledger entry)."""
    require_scope(caller, "staff")
    return services.refund_payment(uow, gateway, payment_id, reverse=True, reason=body.reason)


@router.get("/reviews/payments", response_model=list[schemas.Payment], tags=["staff"])
def review_queue(caller: Caller, uow: Uow, limit: Limit = 100) -> Any:
    """Staff: payments the risk rules held for review, oldest first."""
    require_scope(caller, "staff")
    return services.held_payments(uow, limit=limit)


@router.post("/payments/{payment_id}/approve", response_model=schemas.Payment, tags=["staff"])
def approve_payment(
    payment_id: str, body: models.PaymentReviewIn, caller: Caller, uow: Uow, gateway: Gateway
) -> Any:
    """Staff: approve a payment held for review; it is charged now."""
    require_scope(caller, "staff")
    return services.review_payment(
        uow,
        gateway,
        payment_id,
        approve=True,
        staff=f"token-{caller.token_id}",
        reason=body.reason,
    )


@router.post("/payments/{payment_id}/decline", response_model=schemas.Payment, tags=["staff"])
def decline_payment(
    payment_id: str, body: models.PaymentReviewIn, caller: Caller, uow: Uow, gateway: Gateway
) -> Any:
    """Staff: decline a payment held for review; nothing is charged and the resident is told."""
    require_scope(caller, "staff")
    return services.review_payment(
        uow,
        gateway,
        payment_id,
        approve=False,
        staff=f"token-{caller.token_id}",
        reason=body.reason,
    )


# --- step-up and audit ------------------------------------------------------------------


@router.post(
    "/step-up/verifications",
    response_model=schemas.StepUpOutcome,
    status_code=201,
    tags=["security"],
)
def record_verification(
    body: models.VerificationIn, caller: Caller, uow: Uow, settings: Settings
) -> Any:
    """Service: record a PIN, face or voice verification's outcome.

    Failures of every kind and channel count together toward the lockout. A pass
    with ``payment`` returns ``proof``: a single-use token, valid for a few minutes,
    that pays exactly that household, utility, amount and method.
    """
    from backend.domain.stepup import ProofBinding
    from backend.service_layer import stepup

    require_scope(caller, "service")
    payment = None
    if body.payment is not None:
        payment = ProofBinding(
            body.payment.household_id,
            body.payment.utility,
            body.payment.amount,
            body.payment.method,
            body.payment.purpose,
        )
    return stepup.record_verification(
        uow,
        body.resident_id,
        body.kind,
        body.passed,
        settings.step_up_policy(),
        channel=body.channel,
        payment=payment,
    )


@router.get("/step-up/policy", tags=["security"])
def step_up_policy(caller: Caller, settings: Settings) -> dict[str, Any]:
    """The step-up policy in force: threshold, daily limit, proof lifetime, lockout."""
    p = settings.step_up_policy()
    return {
        "threshold": format(p.threshold, "f"),
        "daily_limit": format(p.daily_limit, "f"),
        "proof_ttl_s": p.proof_ttl_s,
        "lockout_failures": p.lockout_failures,
        "lockout_minutes": p.lockout_minutes,
    }


@router.post("/audit/events", status_code=201, tags=["security"])
def audit_event(body: models.AuditEventIn, caller: Caller, uow: Uow) -> dict[str, int]:
    """Service, staff: append an entry to the audit log (staff actions, biometrics...)."""
    from backend.service_layer import audit

    require_scope(caller, "service", "staff")
    seq = audit.append(
        uow, body.kind, actor=body.actor or caller.scope, subject=body.subject, data=body.data
    )
    return {"seq": seq}


@router.get("/audit/verify", response_model=schemas.AuditVerification, tags=["security"])
def audit_verify(caller: Caller, uow: Uow) -> Any:
    """Staff: check the audit log's hash chain."""
    from backend.service_layer import audit

    require_scope(caller, "staff")
    return audit.verify(uow)


# --- autopay and policy ---------------------------------------------------------------


@router.get(
    "/households/{household_id}/autopay",
    response_model=dict[str, schemas.AutopaySetting],
    tags=["autopay"],
)
def get_autopay(household_id: str, caller: Caller, uow: Uow) -> Any:
    """Autopay settings per utility."""
    require_household(caller, household_id)
    return services.get_autopay(uow, household_id)


@router.put(
    "/households/{household_id}/autopay/{utility}",
    response_model=schemas.AutopaySetting,
    tags=["autopay"],
)
def set_autopay(
    household_id: str,
    utility: schemas.Utility,
    body: models.AutopayIn,
    caller: Caller,
    uow: Uow,
    settings: Settings,
) -> Any:
    """Turn autopay on or off for one utility.

    Autopay moves money without asking again, so a resident turning it on with a monthly
    limit at or above the step-up amount needs a step-up proof for exactly that limit
    (403 ``step_up_required`` otherwise), like a payment of that amount.
    """
    require_household(caller, household_id)
    return services.set_autopay(
        uow,
        household_id,
        utility,
        body.enabled,
        method=body.method,
        max_amount=body.max_amount,
        step_up=settings.step_up_policy() if caller.scope == "resident" else None,
        step_up_proof=body.step_up_proof,
    )


@router.get("/late-fee-policy", response_model=schemas.LateFeePolicy, tags=["billing"])
def late_fee_policy(caller: Caller, settings: Settings) -> Any:
    """The late-fee policy in force (off by default)."""
    return reads.late_fee_policy(settings)


# --- reminders outbox -----------------------------------------------------------------


@router.get("/notices", response_model=list[schemas.Notice], tags=["reminders"])
def pending_notices(caller: Caller, uow: Uow, limit: Limit = 50) -> Any:
    """Arrears reminders waiting for delivery (residents: only their own)."""
    hid = caller.household_id if caller.scope == "resident" else None
    return services.pending_notices(uow, limit=limit, household_id=hid)


@router.post("/notices/{notice_id}/delivered", response_model=schemas.Notice, tags=["reminders"])
def mark_delivered(
    notice_id: Annotated[int, "path"], body: models.DeliveredIn, caller: Caller, uow: Uow
) -> Any:
    """Mark a notice delivered (exactly once; a repeat answers 409)."""
    require_scope(caller, "service", "staff")
    if not 0 < notice_id < 2**63:
        raise ApiError(404, "unknown_notice", "no such notice")
    notice, fresh = services.mark_notice_delivered(uow, notice_id, body.channel)
    if not fresh:
        raise ApiError(409, "already_delivered", f"notice {notice_id} was already delivered")
    return notice


# --- ledger and reports ---------------------------------------------------------------


@router.get("/ledger/trial-balance", response_model=schemas.TrialBalance, tags=["ledger"])
def trial_balance(caller: Caller, uow: Uow) -> Any:
    """Total debits and credits of the ledger; ``balanced`` must always be true."""
    require_scope(caller, "service", "staff")
    return services.trial_balance(uow)


@router.get("/ledger/check", tags=["ledger"])
def ledger_check(caller: Caller, uow: Uow) -> dict[str, Any]:
    """Staff: every household's bills and credits checked against the ledger."""
    require_scope(caller, "staff")
    return services.ledger_check(uow)


@router.get("/reports/usage-revenue", tags=["reports"])
def report_usage_revenue(
    caller: Caller,
    uow: Uow,
    start: Annotated[date | None, Query()] = None,
    end: Annotated[date | None, Query()] = None,
) -> list[dict[str, Any]]:
    """Staff: usage and revenue by utility, building and month."""
    require_scope(caller, "staff")
    return services.report_usage_revenue(uow, start=start, end=end)


@router.get("/reports/arrears", tags=["reports"])
def report_arrears(caller: Caller, uow: Uow) -> dict[str, Any]:
    """Staff: households in arrears, with aging buckets."""
    require_scope(caller, "staff")
    return services.report_arrears(uow)


@router.get("/reports/forecasts", tags=["reports"])
def report_forecasts(caller: Caller, uow: Uow, limit: Limit = 50) -> list[dict[str, Any]]:
    """Staff: next month's usage forecast per meter."""
    require_scope(caller, "staff")
    return services.report_forecasts(uow, limit=limit)


# --- gateway webhook ------------------------------------------------------------------


@router.post(
    "/gateway/webhook", tags=["gateway"], responses={400: {"description": "Bad signature"}}
)
async def gateway_webhook(
    request: Request,
    uow: Uow,
    x_billtalk_signature: Annotated[str | None, Header()] = None,
) -> dict[str, str]:
    """A payment gateway's signed notification (HMAC-SHA256; idempotent by event id)."""
    from starlette.concurrency import run_in_threadpool

    from backend.gateway.base import GatewayResult
    from backend.gateway.webhooks import WebhookError, parse_webhook

    body = await request.body()
    try:
        event = parse_webhook(body, x_billtalk_signature)
    except WebhookError as exc:
        raise ApiError(400, exc.code, exc.message) from exc
    if event.type.startswith("refund."):
        return {"result": "ignored"}
    result = GatewayResult(
        event.status, event.reference, event.failure_code, "", event.amount, event.currency
    )
    outcome = await run_in_threadpool(
        services.apply_webhook, uow, event.event_id, event.reference, result
    )
    return {"result": outcome}
