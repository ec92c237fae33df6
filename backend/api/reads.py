"""The reads a conversation turn makes, as plain functions, and an in-process way to call them.

Each function here is the whole body of its HTTP route (``backend/api/routes.py``
calls it): the caller's household check, then the service. So the rule of who may
read what has one home, whether the read arrives over HTTP or in-process.

:class:`InProcessReads` runs them for a :class:`~backend.client.BillingClient` that
lives in the same process as the app (the embedded default), without the HTTP
round trip through ``httpx.ASGITransport``, Starlette and FastAPI: the same bearer
token check (:func:`~backend.api.deps.principal_for_token`; a token verified less than
``BILLTALK_BILLING_TOKEN_RECHECK_S`` ago and not expired is not read again, see
:class:`VerifiedTokens`), the same parameter
validation (the routes' own annotations), the same function, and errors described
as the API's error handlers describe them. Only reads are offered (the payment
preview too: it reads what a payment would do and writes nothing); anything that
changes money or state (payments, step-up, autopay...) always goes through HTTP.

Example::

    reads = InProcessReads(app)
    balance = await reads.call(token, "balance", household_id="hh-A0101")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Query
from pydantic import TypeAdapter, ValidationError

from backend import schemas
from backend.api import models
from backend.api.deps import (
    principal_for_token,
    refused_token,
    require_household,
    require_own_object,
)
from backend.api.errors import ApiError, BodyInvalid, QueryInvalid
from backend.service_layer import services
from backend.service_layer.services import Principal
from backend.service_layer.unit_of_work import UnitOfWork
from backend.settings import BillingSettings

UtilityQ = Annotated[schemas.Utility | None, Query()]
StatusQ = Annotated[schemas.BillStatus | None, Query()]
Limit = Annotated[int, Query(ge=1, le=200)]


def get_resident(caller: Principal, uow: UnitOfWork, resident_id: str) -> schemas.Resident:
    """A resident, with their household, unit and saved payment method (a resident token:
    its own resident only; any other id is 404, as unknown)."""
    if caller.scope == "resident" and caller.resident_id != resident_id:
        raise ApiError(404, "unknown_resident", "no resident with that id")
    return services.get_resident(uow, resident_id)


def balance(caller: Principal, uow: UnitOfWork, household_id: str) -> schemas.Balance:
    """What the household owes, in total and per utility."""
    require_household(caller, household_id)
    # A resident's own household exists (its token refers to it): no read to check that.
    return services.balance(uow, household_id, known=caller.household_id == household_id)


def list_bills(
    caller: Principal,
    uow: UnitOfWork,
    household_id: str,
    utility: str | None = None,
    status: str | None = None,
    limit: int = 12,
) -> list[schemas.BillSummary]:
    """The household's bills, newest first."""
    require_household(caller, household_id)
    return services.list_bills(uow, household_id, utility=utility, status=status, limit=limit)


def get_bill(caller: Principal, uow: UnitOfWork, bill_id: str) -> schemas.BillDetail:
    """A bill with its itemised lines (another household's bill: 404, as unknown).

    The access check runs on the bill's row as the service reads it, before its lines
    are read (no query of its own).
    """

    def own(household_id: str) -> None:
        require_own_object(caller, household_id, "unknown_bill", "bill")

    return services.get_bill(uow, bill_id, check=own)


def get_bills(caller: Principal, uow: UnitOfWork, bill_ids: list[str]) -> list[schemas.BillDetail]:
    """Several bills, each as :func:`get_bill` answers it (the first refused or unknown id
    refuses the whole read, as a caller reading them one by one would stop there); one
    session and a few queries for all. In-process only: over HTTP, one ``GET`` a bill."""

    def own(household_id: str) -> None:
        require_own_object(caller, household_id, "unknown_bill", "bill")

    return services.get_bills(uow, bill_ids, check=own)


def preview_payment(
    caller: Principal,
    uow: UnitOfWork,
    household_id: str,
    body: models.PreviewIn,
    settings: BillingSettings,
) -> schemas.PaymentPreview:
    """What a payment would pay, whether it overpays, and whether it needs step-up
    verification (the household's own caller only). Reads only: no money moves."""
    require_household(caller, household_id)
    return services.preview_payment(
        uow,
        household_id,
        body.amount,
        utility=body.utility,
        settings=settings,
        method=body.method,
        channel=body.channel,
    )


def late_fee_policy(settings: BillingSettings) -> schemas.LateFeePolicy:
    """The late-fee policy in force (off by default); any valid token may read it."""
    p = settings.late_fee_policy()
    return schemas.LateFeePolicy(
        enabled=p.enabled,
        rate_per_day=p.rate_per_day if p.fixed is None else None,
        fixed=p.fixed,
        grace_days=p.grace_days,
        cap_ratio=p.cap_ratio,
        description=p.description,
    )


#: Query parameters checked in-process with the routes' own annotations.
_QUERY: dict[str, TypeAdapter[Any]] = {
    "utility": TypeAdapter(UtilityQ),
    "status": TypeAdapter(StatusQ),
    "limit": TypeAdapter(Limit),
}


#: The reads with a JSON body (POST routes that write nothing), by the route's body model.
_BODIES: dict[str, type[models.Body]] = {"preview_payment": models.PreviewIn}


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    #: The token's own expiry (``None``: never), aware UTC.
    expires_at: datetime | None
    #: Until when (``time.monotonic``) this check may stand in for a read of the token's row.
    recheck_at: float


class VerifiedTokens:
    """Bearer tokens this process verified lately, so that in-process reads need not read
    each token's row again for every read.

    A token is remembered only after :func:`~backend.service_layer.access.verify_token`
    accepted it (known, not revoked, not expired; a refused token is never remembered and
    is checked again every time), under the SHA-256 of the whole token, the same digest
    the database looks it up by (a different token cannot share an entry unless SHA-256
    collides; the token itself is not kept). What is remembered is the principal (scope,
    household, resident), which no code path changes for an issued token, so every read's
    own household check (:func:`~backend.api.deps.require_household`,
    :func:`~backend.api.deps.require_own_object`) runs against the same caller the
    database would give. A remembered check is used only while both hold:

    * the token has not expired: its expiry is kept and compared with the clock on every
      use, so an expired token is refused to the second, as before;
    * it was read less than ``recheck_s`` ago: a token revoked in the database is refused
      by in-process reads at most ``recheck_s`` later (``0``: every read checks).

    Everything else checks the token's row on every request as before: HTTP requests and
    every write (payments, step-up, autopay: never in-process). Size-bounded (cleared when
    full; tokens are re-checked then).

    Args:
        recheck_s: how long a check stands for the token's row (revocation bound).
        max_entries: tokens remembered at most.
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        recheck_s: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recheck_s = recheck_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Verified] = {}
        self._lock = threading.Lock()
        #: Reads answered from a remembered check, and token rows read.
        self.hits = 0
        self.checks = 0

    def principal(self, uow: UnitOfWork, token: str) -> Principal:
        """The caller ``token`` stands for, as :func:`~backend.api.deps.principal_for_token`
        gives it (401 when unknown, expired or revoked)."""
        if len(token) > 200 or self.recheck_s <= 0:
            return principal_for_token(uow, token)
        key = services.hash_token(token)
        found = self._entries.get(key)
        now = self._clock()
        if found is not None and now < found.recheck_at:
            if found.expires_at is None or datetime.now(UTC) < found.expires_at:
                self.hits += 1
                return found.principal
            with self._lock:
                self._entries.pop(key, None)
        verified = services.verify_token(uow, token)
        self.checks += 1
        if verified is None:
            raise refused_token()
        principal, expires_at = verified
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = _Verified(principal, expires_at, now + self.recheck_s)
        return principal


class InProcessReads:
    """Call the read functions above in-process, with the HTTP route's checks.

    Args:
        app: the billing API app (``backend.api.create_app``): its engine and settings.
    """

    def __init__(self, app: FastAPI) -> None:
        self.engine = app.state.engine
        self.settings: BillingSettings = app.state.billing_settings
        # One per app, shared by every client of it (each resident's scoped client has
        # its own InProcessReads).
        tokens: VerifiedTokens | None = getattr(app.state, "verified_tokens", None)
        if tokens is None:
            tokens = app.state.verified_tokens = VerifiedTokens(self.settings.token_recheck_s)
        self.tokens = tokens
        self._reads: dict[str, Callable[..., Any]] = {
            "get_resident": get_resident,
            "balance": balance,
            "list_bills": list_bills,
            "get_bill": get_bill,
            "get_bills": get_bills,
            "preview_payment": self._preview_payment,
        }

    async def call(
        self, token: str, name: str, *, callers: dict[str, Any] | None = None, **params: Any
    ) -> Any:
        """Run read ``name`` for the bearer ``token`` in a worker thread.

        ``callers``: the callers already authenticated in this turn, by token (see
        :func:`backend.client.one_turn`); a token found there is not checked again,
        one checked here is added.

        Raises:
            What the route raises for the same request (``ApiError``, ``ServiceError``,
            database errors), or :class:`~backend.api.errors.QueryInvalid` where
            FastAPI would refuse a query parameter; :func:`backend.api.errors.describe_error`
            gives each the status, code and message the API answers with.
        """
        return await anyio.to_thread.run_sync(self._call, token, name, params, callers)

    def _call(
        self, token: str, name: str, params: dict[str, Any], callers: dict[str, Any] | None
    ) -> Any:
        uow = UnitOfWork(self.engine)
        caller = callers.get(token) if callers is not None else None
        if caller is None:
            caller = self.tokens.principal(uow, token)
            if callers is not None:
                callers[token] = caller
        if name == "late_fee_policy":
            return late_fee_policy(self.settings)
        for key, adapter in _QUERY.items():
            if key in params:
                try:
                    params[key] = adapter.validate_python(params[key])
                except ValidationError as exc:
                    raise QueryInvalid(key, exc) from None
        body = _BODIES.get(name)
        if body is not None:  # the JSON body the route would get, checked by its model
            try:
                params["body"] = body.model_validate(params["body"])
            except ValidationError as exc:
                raise BodyInvalid(exc) from None
        return self._reads[name](caller, uow, **params)

    def _preview_payment(
        self, caller: Principal, uow: UnitOfWork, household_id: str, body: models.PreviewIn
    ) -> schemas.PaymentPreview:
        return preview_payment(caller, uow, household_id, body, self.settings)
