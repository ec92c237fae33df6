"""Every error the API returns is JSON ``{"error": {"code", "message"}}`` with a 4xx status."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.service_layer.errors import ServiceError
from billtalk.logs import get_logger

log = get_logger("backend.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


class ApiError(Exception):
    """An error raised directly by a route or dependency."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class QueryInvalid(Exception):
    """A query parameter refused in-process, as FastAPI's validation would refuse it."""

    def __init__(self, name: str, error: ValidationError) -> None:
        super().__init__(f"{name}: {error}")
        self.errors: list[Any] = [
            {**e, "loc": ("query", name, *e.get("loc", ()))} for e in error.errors()
        ]


class BodyInvalid(Exception):
    """A request body refused in-process, as FastAPI's validation would refuse it."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__(str(error))
        self.errors: list[Any] = [{**e, "loc": ("body", *e.get("loc", ()))} for e in error.errors()]


def describe_error(exc: BaseException) -> tuple[int, str, str]:
    """The status, code and message the API answers ``exc`` with (as the handlers below).

    For callers in the same process that do not go through HTTP
    (:mod:`backend.api.reads`), so an error reads the same either way.
    """
    if isinstance(exc, ServiceError | ApiError):
        return exc.status, exc.code, exc.message
    if isinstance(exc, QueryInvalid | BodyInvalid):
        return _describe(exc.errors)
    if isinstance(exc, DataError):
        return 422, "invalid_input", "the request contains unstorable characters"
    if isinstance(exc, OperationalError):
        log.error("database_unavailable", error=repr(exc)[:300])
        return 503, "database_unavailable", "the database is unavailable; retry"
    log.error("unhandled_error", error=repr(exc))
    return 500, "internal_error", "internal error"


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error body every failure uses."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _describe(errors: list[Any]) -> tuple[int, str, str]:
    first = errors[0] if errors else {}
    types = {e.get("type") for e in errors}
    if "json_invalid" in types:
        return 400, "malformed_json", "the request body is not valid JSON"
    if "invalid_amount" in types:
        e = next(e for e in errors if e.get("type") == "invalid_amount")
        return 422, "invalid_amount", str(e.get("msg", "invalid amount"))
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    if first.get("type") == "missing" and tuple(first.get("loc", ()))[:1] == ("header",):
        return 400, "missing_header", f"missing header {loc.split('.')[-1]}"
    return 422, "validation_error", f"{loc or 'request'}: {first.get('msg', 'invalid')}"[:300]


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the error JSON shape."""

    @app.exception_handler(ServiceError)
    async def _service(_: Request, exc: ServiceError) -> JSONResponse:
        risk = getattr(exc, "risk", None)
        if risk is not None:  # a refused payment still says why (step_up_required, blocked)
            return JSONResponse(
                {"error": {"code": exc.code, "message": exc.message}, "risk": risk},
                status_code=exc.status,
            )
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = _describe(list(exc.errors()))
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL byte PostgreSQL cannot store; the transaction was rolled back
        return error_response(422, "invalid_input", "the request contains unstorable characters")

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database_unavailable", path=request.url.path, error=repr(exc)[:300])
        return error_response(503, "database_unavailable", "the database is unavailable; retry")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug
        log.error("unhandled_error", path=request.url.path, error=repr(exc))
        return error_response(500, "internal_error", "internal error")
