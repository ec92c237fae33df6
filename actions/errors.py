"""The billing client's errors, as the actions see them.

Re-exported from ``backend.client`` so that actions and the engine catch the
same classes the client raises.
"""

from __future__ import annotations

try:
    from backend.client import (
        BackendUnavailable,
        BillingError,
        Conflict,
        Forbidden,
        NotFound,
        ValidationFailed,
    )
except ImportError:  # pragma: no cover - until backend.client lands (TEMPORARY)

    class BillingError(Exception):  # type: ignore[no-redef]
        def __init__(self, code: str, message: str, status: int = 400) -> None:
            super().__init__(message)
            self.code = code
            self.message = message
            self.status = status

    class NotFound(BillingError):  # type: ignore[no-redef]
        pass

    class Forbidden(BillingError):  # type: ignore[no-redef]
        pass

    class Conflict(BillingError):  # type: ignore[no-redef]
        pass

    class ValidationFailed(BillingError):  # type: ignore[no-redef]
        pass

    class BackendUnavailable(BillingError):  # type: ignore[no-redef]
        pass


__all__ = [
    "BackendUnavailable",
    "BillingError",
    "Conflict",
    "Forbidden",
    "NotFound",
    "ValidationFailed",
]
