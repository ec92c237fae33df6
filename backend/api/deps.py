"""Typed FastAPI dependencies: the unit of work, the gateway and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.api.errors import ApiError
from backend.gateway.base import PaymentGateway
from backend.service_layer import services
from backend.service_layer.services import Principal
from backend.service_layer.unit_of_work import UnitOfWork
from backend.settings import BillingSettings

_bearer = HTTPBearer(auto_error=False, description="A billtalk API token")


async def get_uow(request: Request) -> UnitOfWork:
    """A fresh unit of work over the app's engine (one per request).

    This and the two getters below are ``async`` although they do no I/O: FastAPI
    runs a plain ``def`` dependency in its thread pool, a thread hop per request
    for a constructor call.
    """
    return UnitOfWork(request.app.state.engine)


async def get_gateway(request: Request) -> PaymentGateway:
    """The app's payment gateway."""
    gateway: PaymentGateway = request.app.state.gateway
    return gateway


async def get_billing_settings(request: Request) -> BillingSettings:
    """The app's billing settings."""
    settings: BillingSettings = request.app.state.billing_settings
    return settings


Uow = Annotated[UnitOfWork, Depends(get_uow)]
Gateway = Annotated[PaymentGateway, Depends(get_gateway)]
Settings = Annotated[BillingSettings, Depends(get_billing_settings)]


def get_principal(
    uow: Uow,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """Authenticate the bearer token (401 when missing, unknown, expired or revoked)."""
    if credentials is None:
        code = "missing_token" if not authorization else "invalid_token"
        raise ApiError(401, code, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    return principal_for_token(uow, credentials.credentials)


def principal_for_token(uow: UnitOfWork, token: str) -> Principal:
    """The caller a bearer token stands for (401 when unknown, expired or revoked).

    Every request's token check, over HTTP (:func:`get_principal`) or in-process
    (:mod:`backend.api.reads`).
    """
    if len(token) > 200:
        raise ApiError(401, "invalid_token", "invalid token", {"WWW-Authenticate": "Bearer"})
    principal = services.authenticate(uow, token)
    if principal is None:
        raise refused_token()
    return principal


def refused_token() -> ApiError:
    """The 401 for a token that is unknown, expired or revoked."""
    return ApiError(
        401, "invalid_token", "invalid or expired token", {"WWW-Authenticate": "Bearer"}
    )


Caller = Annotated[Principal, Depends(get_principal)]


def require_scope(principal: Principal, *scopes: str) -> None:
    """Raise 403 unless the caller has one of ``scopes``."""
    if principal.scope not in scopes:
        raise ApiError(403, "forbidden", f"this needs a {' or '.join(scopes)} token")


def require_household(principal: Principal, household_id: str) -> None:
    """Raise 403 unless the caller may access ``household_id`` (residents: only their own)."""
    if not principal.can_see(household_id):
        raise ApiError(403, "forbidden", "this token cannot access that household")


def require_own_object(principal: Principal, household_id: str, code: str, what: str) -> None:
    """Residents get 404 (not 403) for other households' objects: no existence leak."""
    if not principal.can_see(household_id):
        raise ApiError(404, code, f"no {what} with that id")
