"""The billing client's errors, as the actions see them.

Re-exported from ``backend.client`` so that actions and the engine catch the
same classes the client raises.
"""

from __future__ import annotations

from backend.client import (
    BackendUnavailable,
    BillingError,
    Conflict,
    Forbidden,
    NotFound,
    StepUpRequired,
    ValidationFailed,
)

__all__ = [
    "BackendUnavailable",
    "BillingError",
    "Conflict",
    "Forbidden",
    "NotFound",
    "StepUpRequired",
    "ValidationFailed",
]
