"""Errors raised by the service layer; the API maps each to its HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    """A use case refused; nothing was written.

    Attributes:
        code: stable machine-readable code (``unknown_household``, ``invalid_amount``...).
        message: a human-readable explanation.
        status: the HTTP status the API answers with.
    """

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotFound(ServiceError):
    """An unknown household, bill, payment, meter..."""

    status = 404


class Forbidden(ServiceError):
    """The caller may not see or change this object."""

    status = 403


class Conflict(ServiceError):
    """The request clashes with the current state (idempotency key reuse, used code...)."""

    status = 409


class Invalid(ServiceError):
    """The request is well-formed but its values are not acceptable."""

    status = 422


class TooManyAttempts(ServiceError):
    """Too many failed attempts; try again later."""

    status = 429
