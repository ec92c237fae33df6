"""``BillingClient``: the typed async client the assistant uses to reach the billing API.

It talks HTTP to a remote ``base_url``, or in-process to the FastAPI app through
:class:`httpx.ASGITransport` (the embedded default). Every method returns typed
pydantic models with :class:`~decimal.Decimal` amounts and raises a
:class:`BillingError` subclass on failure.

Example::

    client = BillingClient.embedded()            # in-process, service token
    me = await client.resident_scope("r-A0101-1")  # one resident's household only
    balance = await me.get_balance(me.household_id)
    print(balance.total_due)                     # Decimal('123.45')

Amounts sent to the API are serialised as strings (``"12.34"``); passing a
``float`` raises :class:`TypeError` before any request is made.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from backend.schemas import (
    AllocationOut,
    AutopaySetting,
    Balance,
    BillDetail,
    BillLine,
    BillSummary,
    Forecast,
    LateFeePolicy,
    LinkCodeOut,
    LinkResult,
    Notice,
    Payment,
    PaymentPreview,
    Reading,
    ReadingResult,
    Receipt,
    Resident,
    StepUpOutcome,
    TrialBalance,
    UsagePoint,
    UsageSeries,
)

__all__ = [
    "AllocationOut",
    "AutopaySetting",
    "BackendUnavailable",
    "Balance",
    "BillDetail",
    "BillLine",
    "BillSummary",
    "BillingClient",
    "BillingError",
    "Conflict",
    "Forbidden",
    "Forecast",
    "LateFeePolicy",
    "LinkResult",
    "NotFound",
    "Notice",
    "Payment",
    "PaymentPreview",
    "Reading",
    "ReadingResult",
    "Receipt",
    "Resident",
    "StepUpOutcome",
    "StepUpRequired",
    "TrialBalance",
    "UsagePoint",
    "UsageSeries",
    "ValidationFailed",
    "one_turn",
]

M = TypeVar("M", bound=BaseModel)

#: An id that reads the same as a URL path segment (anything else goes over HTTP).
_PLAIN_ID = re.compile(r"[A-Za-z0-9_:-][A-Za-z0-9_.:-]*")

#: The callers whose tokens were checked in the current :func:`one_turn` block.
_TURN_CALLERS: ContextVar[dict[str, Any] | None] = ContextVar("billing_turn", default=None)


@contextmanager
def one_turn() -> Iterator[None]:
    """One conversation turn: in-process reads check each bearer token once in the block.

    The first in-process read of a token checks it (unknown, expired, revoked: refused;
    a check of the same token less than ``BILLTALK_BILLING_TOKEN_RECHECK_S`` old stands
    for it while the token has not expired, :class:`backend.api.reads.VerifiedTokens`);
    later reads in the same block (the same task) reuse that caller. So a revocation
    reaches in-process reads within the recheck interval; every read over HTTP, and every
    write (payments, step-up), still checks the token itself.
    """
    reset = _TURN_CALLERS.set({})
    try:
        yield
    finally:
        _TURN_CALLERS.reset(reset)


class BillingError(Exception):
    """The billing API refused a request.

    Attributes:
        code: the API's machine-readable error code (``unknown_household``...).
        message: a human-readable explanation.
        status: the HTTP status (0 when the API could not be reached).
    """

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class NotFound(BillingError):
    """404: unknown household, bill, payment, resident..."""


class Forbidden(BillingError):
    """401/403: missing or invalid token, or another household's data."""


class StepUpRequired(Forbidden):
    """403 ``step_up_required``: the payment needs a valid step-up proof first."""


class Conflict(BillingError):
    """409: idempotency-key reuse, used link code, already delivered notice..."""


class ValidationFailed(BillingError):
    """400/413/422/429: bad input (e.g. ``invalid_amount``, ``reading_backwards``)."""


class BackendUnavailable(BillingError):
    """The API could not be reached, timed out, or failed (5xx)."""


def _money(value: Decimal | str | int) -> str:
    """Serialise an amount as the API wants it: a string, never a float."""
    if isinstance(value, float | bool):
        raise TypeError("amounts must be Decimal or str, never float")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


class BillingClient:
    """Async client of the billing API.

    Args:
        base_url: the API's base URL (e.g. ``http://127.0.0.1:8080``); ignored when
            ``app`` is given.
        token: a bearer token (service, staff or resident scope).
        app: the FastAPI app to call in-process through ``httpx.ASGITransport``.
        timeout: seconds per request.
        http: an existing :class:`httpx.AsyncClient` to share (advanced).
        in_process_reads: with ``app``, make the reads a conversation turn makes
            (the resident, balance, bills, a bill, a payment's preview, the late-fee
            policy) without
            the HTTP hop:
            :mod:`backend.api.reads` runs the route's own function with the same
            token check, household scoping and errors. Writes always go over HTTP.
    """

    def __init__(
        self,
        base_url: str | None,
        token: str,
        *,
        app: Any = None,
        timeout: float = 10.0,
        http: httpx.AsyncClient | None = None,
        in_process_reads: bool = True,
    ) -> None:
        self.base_url = base_url or "http://billtalk.internal"
        self.token = token
        self.app = app
        self._reads: Any = None
        if app is not None and in_process_reads:
            from backend.api.reads import InProcessReads

            self._reads = InProcessReads(app)
        self.household_id: str | None = None
        self.resident_id: str | None = None
        #: When a resident-scoped client's token expires (None: never, or not scoped).
        self.token_expires_at: datetime | None = None
        self._owns_http = http is None
        if http is None:
            transport = httpx.ASGITransport(app=app) if app is not None else None
            http = httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=timeout)
        self._http = http

    @classmethod
    def embedded(
        cls, database_url: str | None = None, *, billing_settings: Any = None
    ) -> BillingClient:
        """An in-process client with the service token, on the embedded database.

        ``billing_settings`` (a :class:`~backend.settings.BillingSettings`) overrides
        the billing knobs from the environment, e.g. the step-up policy in tests.
        Migrates the database, builds the app, and uses ``BILLTALK_SERVICE_TOKEN``
        if set, otherwise mints (and stores, hashed) a fresh service token.
        """
        from backend.api import create_app
        from backend.service_layer import services
        from backend.service_layer.unit_of_work import UnitOfWork
        from billtalk.settings import get_settings

        settings = get_settings()
        url = database_url or settings.database_url
        app = create_app(url, migrate=True, billing_settings=billing_settings)
        uow = UnitOfWork(app.state.engine)
        token = settings.service_token
        if token:
            if services.authenticate(uow, token) is None:
                services.issue_token(uow, "service", name="embedded", token=token)
        else:
            token = services.issue_token(uow, "service", name="embedded").token
        return cls(None, token, app=app)

    async def aclose(self) -> None:
        """Close the HTTP connection pool (if this client created it)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> BillingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plumbing --------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        hdrs = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = await self._http.request(method, path, json=json, params=clean, headers=hdrs)
        except httpx.HTTPError as exc:
            raise BackendUnavailable("unavailable", f"billing API unreachable: {exc}", 0) from exc
        if resp.status_code >= 400:
            raise self._error(resp)
        return resp

    @staticmethod
    def _error(resp: httpx.Response) -> BillingError:
        try:
            err = resp.json()["error"]
            code, message = str(err["code"]), str(err["message"])
        except Exception:
            code, message = "http_error", resp.text[:200]
        return BillingClient._classify(resp.status_code, code, message)

    @staticmethod
    def _classify(status: int, code: str, message: str) -> BillingError:
        """The exception for an API error answer."""
        if status == 404:
            return NotFound(code, message, status)
        if status == 403 and code == "step_up_required":
            return StepUpRequired(code, message, status)
        if status in (401, 403):
            return Forbidden(code, message, status)
        if status == 409:
            return Conflict(code, message, status)
        if status >= 500:
            return BackendUnavailable(code, message, status)
        return ValidationFailed(code, message, status)

    async def _read(self, name: str, **params: Any) -> Any:
        """Read ``name`` in-process (:mod:`backend.api.reads`), errors as over HTTP."""
        from backend.api.errors import describe_error

        try:
            return await self._reads.call(self.token, name, callers=_TURN_CALLERS.get(), **params)
        except Exception as exc:
            status, code, message = describe_error(exc)
            raise self._classify(status, code, message) from exc

    def _in_process(self, *ids: str) -> bool:
        """Whether reads go in-process (ids that are plain URL path segments only)."""
        return self._reads is not None and all(_PLAIN_ID.fullmatch(i) and i.strip(".") for i in ids)

    async def _get(self, model: type[M], path: str, **params: Any) -> M:
        resp = await self._request("GET", path, params=params)
        return model.model_validate(resp.json())

    async def _get_list(self, model: type[M], path: str, **params: Any) -> list[M]:
        resp = await self._request("GET", path, params=params)
        return TypeAdapter(list[model]).validate_python(resp.json())  # type: ignore[valid-type]

    # -- auth and residents ------------------------------------------------------------

    async def resident_scope(self, resident_id: str) -> BillingClient:
        """A client whose short-lived token can only see ``resident_id``'s household.

        It shares this client's connection pool; it does not need closing.
        """
        resp = await self._request(
            "POST", "/api/v1/auth/resident-token", json={"resident_id": resident_id}
        )
        data = resp.json()
        scoped = BillingClient(
            self.base_url,
            data["token"],
            app=self.app,
            http=self._http,
            in_process_reads=self._reads is not None,
        )
        scoped.household_id = data["household_id"]
        scoped.resident_id = resident_id
        if data.get("expires_at"):
            scoped.token_expires_at = datetime.fromisoformat(data["expires_at"])
        return scoped

    async def get_resident(self, resident_id: str) -> Resident:
        """A resident, their household and unit, and the saved payment method."""
        if self._in_process(resident_id):
            resident: Resident = await self._read("get_resident", resident_id=resident_id)
            return resident
        return await self._get(Resident, f"/api/v1/residents/{resident_id}")

    async def redeem_link_code(self, code: str, *, channel: str, external_id: str) -> LinkResult:
        """Link a chat account to the resident a one-time code was issued for."""
        resp = await self._request(
            "POST",
            "/api/v1/link-codes/redeem",
            json={"code": code, "channel": channel, "external_id": external_id},
        )
        return LinkResult.model_validate(resp.json())

    async def create_link_code(self, resident_id: str) -> LinkCodeOut:
        """Create a one-time, expiring link code for a resident."""
        resp = await self._request("POST", "/api/v1/link-codes", json={"resident_id": resident_id})
        return LinkCodeOut.model_validate(resp.json())

    async def resolve_link(self, channel: str, external_id: str) -> LinkResult:
        """The resident a chat account is linked to (raises :class:`NotFound` if none)."""
        return await self._get(LinkResult, f"/api/v1/links/{channel}/{external_id}")

    # -- balance and bills -------------------------------------------------------------

    async def get_balance(self, household_id: str) -> Balance:
        """What the household owes, per utility, with credits and open bills."""
        if self._in_process(household_id):
            result: Balance = await self._read("balance", household_id=household_id)
            return result
        return await self._get(Balance, f"/api/v1/households/{household_id}/balance")

    async def list_bills(
        self,
        household_id: str,
        *,
        utility: str | None = None,
        status: str | None = None,
        limit: int = 12,
    ) -> list[BillSummary]:
        """The household's bills, newest first."""
        if self._in_process(household_id):
            params = {"utility": utility, "status": status}
            bills: list[BillSummary] = await self._read(
                "list_bills",
                household_id=household_id,
                limit=limit,
                **{k: v for k, v in params.items() if v is not None},
            )
            return bills
        return await self._get_list(
            BillSummary,
            f"/api/v1/households/{household_id}/bills",
            utility=utility,
            status=status,
            limit=limit,
        )

    async def get_bill(self, bill_id: str) -> BillDetail:
        """A bill with its itemised lines and usage comparisons."""
        if self._in_process(bill_id):
            bill: BillDetail = await self._read("get_bill", bill_id=bill_id)
            return bill
        return await self._get(BillDetail, f"/api/v1/bills/{bill_id}")

    async def get_bills(self, bill_ids: Sequence[str]) -> list[BillDetail]:
        """Several bills, each as :meth:`get_bill` gives it, in order: one in-process read
        for all (one thread hop, one session), else one request a bill. The first unknown
        or refused id raises as :meth:`get_bill` would."""
        if bill_ids and self._in_process(*bill_ids):
            bills: list[BillDetail] = await self._read("get_bills", bill_ids=list(bill_ids))
            return bills
        return [await self.get_bill(bill_id) for bill_id in bill_ids]

    # -- payments ----------------------------------------------------------------------

    async def preview_payment(
        self,
        household_id: str,
        *,
        amount: Decimal | str,
        utility: str | None = None,
        method: str | None = None,
        channel: str | None = None,
    ) -> PaymentPreview:
        """What a payment would pay and whether it needs step-up verification.

        ``step_up_required`` / ``step_up_reasons`` are the backend's step-up policy's
        answer: the one place that decides.
        """
        body: dict[str, Any] = {"amount": _money(amount), "utility": utility}
        if method is not None:
            body["method"] = method
        if channel is not None:
            body["channel"] = channel
        if self._in_process(household_id):  # a read: no money moves
            preview: PaymentPreview = await self._read(
                "preview_payment", household_id=household_id, body=body
            )
            return preview
        resp = await self._request(
            "POST", f"/api/v1/households/{household_id}/payment-preview", json=body
        )
        return PaymentPreview.model_validate(resp.json())

    async def record_verification(
        self,
        resident_id: str,
        *,
        kind: str,
        passed: bool,
        channel: str = "",
        household_id: str | None = None,
        utility: str | None = None,
        amount: Decimal | str | None = None,
        method: str | None = None,
        purpose: str = "payment",
    ) -> StepUpOutcome:
        """Service: record a step-up verification's outcome (every channel's failures
        count toward one lockout). A pass for a payment (``household_id``, ``utility``,
        ``amount``, ``method``) returns its single-use ``proof``; ``purpose``
        ``autopay`` binds it to turning autopay on with the limit ``amount`` instead."""
        body: dict[str, Any] = {
            "resident_id": resident_id,
            "kind": kind,
            "passed": passed,
            "channel": channel,
        }
        if household_id is not None and amount is not None and method is not None:
            body["payment"] = {
                "household_id": household_id,
                "utility": utility,
                "amount": _money(amount),
                "method": method,
                "purpose": purpose,
            }
        resp = await self._request("POST", "/api/v1/step-up/verifications", json=body)
        return StepUpOutcome.model_validate(resp.json())

    async def create_payment(
        self,
        household_id: str,
        *,
        amount: Decimal | str,
        method: str,
        utility: str | None = None,
        idempotency_key: str | None = None,
        payment_token: str | None = None,
        step_up_proof: str | None = None,
        channel: str | None = None,
    ) -> Payment:
        """Pay. Reuse the same ``idempotency_key`` for retries of the same payment.

        ``step_up_proof`` (from :meth:`record_verification`) is needed by resident
        tokens at or above the step-up threshold; without it the API answers
        :class:`StepUpRequired`. The answer's ``risk`` says how risky it looked.
        """
        body: dict[str, Any] = {
            "household_id": household_id,
            "utility": utility,
            "amount": _money(amount),
            "method": method,
        }
        if payment_token is not None:
            body["payment_token"] = payment_token
        if step_up_proof is not None:
            body["step_up_proof"] = step_up_proof
        if channel is not None:
            body["channel"] = channel
        resp = await self._request(
            "POST",
            "/api/v1/payments",
            json=body,
            headers={"Idempotency-Key": idempotency_key or f"cli-{uuid.uuid4().hex}"},
        )
        return Payment.model_validate(resp.json())

    async def list_payments(self, household_id: str, limit: int = 5) -> list[Payment]:
        """The household's payments, newest first."""
        return await self._get_list(
            Payment, f"/api/v1/households/{household_id}/payments", limit=limit
        )

    async def get_payment(self, payment_id: str) -> Payment:
        """One payment."""
        return await self._get(Payment, f"/api/v1/payments/{payment_id}")

    async def held_payments(self, limit: int = 100) -> list[Payment]:
        """Staff: payments held for review by the risk rules, oldest first."""
        return await self._get_list(Payment, "/api/v1/reviews/payments", limit=limit)

    async def review_payment(self, payment_id: str, *, approve: bool, reason: str = "") -> Payment:
        """Staff: approve (charge now) or decline (nothing charged) a held payment."""
        action = "approve" if approve else "decline"
        resp = await self._request(
            "POST", f"/api/v1/payments/{payment_id}/{action}", json={"reason": reason}
        )
        return Payment.model_validate(resp.json())

    async def audit_event(
        self, kind: str, *, actor: str = "", subject: str = "", data: dict[str, Any] | None = None
    ) -> int:
        """Service, staff: append an entry to the tamper-evident audit log; returns its seq."""
        resp = await self._request(
            "POST",
            "/api/v1/audit/events",
            json={"kind": kind, "actor": actor, "subject": subject, "data": data or {}},
        )
        return int(resp.json()["seq"])

    async def get_receipt(self, payment_id: str) -> Receipt:
        """The receipt of a succeeded payment."""
        return await self._get(Receipt, f"/api/v1/payments/{payment_id}/receipt")

    async def get_receipt_pdf(self, payment_id: str) -> bytes:
        """The receipt as PDF bytes."""
        resp = await self._request("GET", f"/api/v1/payments/{payment_id}/receipt.pdf")
        return resp.content

    # -- readings and usage ------------------------------------------------------------

    async def submit_reading(
        self,
        household_id: str,
        *,
        utility: str,
        value: Decimal | str,
        source: str = "resident",
        taken_at: datetime | None = None,
    ) -> ReadingResult:
        """Submit a meter reading; raises :class:`ValidationFailed` (``reading_backwards``)."""
        if isinstance(value, float | bool):
            raise TypeError("meter values must be Decimal or str, never float")
        body: dict[str, Any] = {"utility": utility, "value": str(value), "source": source}
        if taken_at is not None:
            body["taken_at"] = taken_at.isoformat()
        resp = await self._request("POST", f"/api/v1/households/{household_id}/readings", json=body)
        return ReadingResult.model_validate(resp.json())

    async def list_readings(
        self, household_id: str, *, utility: str | None = None, limit: int = 24
    ) -> list[Reading]:
        """The household's meter readings, newest first."""
        return await self._get_list(
            Reading, f"/api/v1/households/{household_id}/readings", utility=utility, limit=limit
        )

    async def usage(
        self, household_id: str, *, utility: str, start: date, end: date
    ) -> UsageSeries:
        """Billed usage per period from ``start`` to ``end``."""
        return await self._get(
            UsageSeries,
            f"/api/v1/households/{household_id}/usage",
            utility=utility,
            start=start.isoformat(),
            end=end.isoformat(),
        )

    async def forecast(self, household_id: str, *, utility: str) -> Forecast:
        """Next month's expected usage and cost."""
        return await self._get(
            Forecast, f"/api/v1/households/{household_id}/forecast", utility=utility
        )

    # -- autopay and policy ------------------------------------------------------------

    async def get_autopay(self, household_id: str) -> dict[str, AutopaySetting]:
        """Autopay settings per utility."""
        resp = await self._request("GET", f"/api/v1/households/{household_id}/autopay")
        return TypeAdapter(dict[str, AutopaySetting]).validate_python(resp.json())

    async def set_autopay(
        self,
        household_id: str,
        *,
        utility: str,
        enabled: bool,
        method: str | None = None,
        max_amount: Decimal | str | None = None,
        step_up_proof: str | None = None,
    ) -> AutopaySetting:
        """Turn autopay on or off for one utility.

        ``step_up_proof``: the backend's proof for exactly this limit, needed when a
        resident turns autopay on at or above the step-up amount.
        """
        body: dict[str, Any] = {"enabled": enabled, "method": method}
        if max_amount is not None:
            body["max_amount"] = _money(max_amount)
        if step_up_proof:
            body["step_up_proof"] = step_up_proof
        resp = await self._request(
            "PUT", f"/api/v1/households/{household_id}/autopay/{utility}", json=body
        )
        return AutopaySetting.model_validate(resp.json())

    async def late_fee_policy(self) -> LateFeePolicy:
        """The late-fee policy in force."""
        if self._in_process():
            policy: LateFeePolicy = await self._read("late_fee_policy")
            return policy
        return await self._get(LateFeePolicy, "/api/v1/late-fee-policy")

    # -- reminders outbox --------------------------------------------------------------

    async def pending_notices(self, limit: int = 50) -> list[Notice]:
        """Arrears reminders waiting for delivery, oldest first."""
        return await self._get_list(Notice, "/api/v1/notices", limit=limit)

    async def mark_notice_delivered(self, notice_id: int, channel: str) -> Notice:
        """Mark a notice delivered; raises :class:`Conflict` if it already was."""
        resp = await self._request(
            "POST", f"/api/v1/notices/{notice_id}/delivered", json={"channel": channel}
        )
        return Notice.model_validate(resp.json())

    # -- ledger ------------------------------------------------------------------------

    async def trial_balance(self) -> TrialBalance:
        """The ledger's trial balance."""
        return await self._get(TrialBalance, "/api/v1/ledger/trial-balance")

    async def healthz(self) -> bool:
        """Whether the API answers ``/healthz`` with 200."""
        try:
            resp = await self._http.get("/healthz")
        except httpx.HTTPError:
            return False
        return resp.status_code == 200
