"""Request bodies of the API.

Amounts are JSON **strings** with at most two decimal places (``"12.34"``). A
JSON number (``12.34``) is refused with 422 ``invalid_amount``: a float must
never enter a money path, and JSON numbers are floats in most clients.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from backend.domain.money import InvalidAmount, parse_amount
from backend.schemas import Method, Utility

AMOUNT_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
QUANTITY_PATTERN = r"^[0-9]{1,11}(\.[0-9]{1,3})?$"


def _amount(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "invalid_amount", 'amounts must be JSON strings such as "12.34", not numbers'
        )
    try:
        return parse_amount(value)
    except InvalidAmount as exc:
        raise PydanticCustomError("invalid_amount", str(exc)) from exc


def _quantity(value: Any) -> Decimal:
    import re

    if not isinstance(value, str):
        raise PydanticCustomError(
            "invalid_amount", 'meter values must be JSON strings such as "1234.5", not numbers'
        )
    if not re.fullmatch(QUANTITY_PATTERN, value):
        raise PydanticCustomError(
            "invalid_amount", "a meter value is a plain non-negative decimal with at most 3 places"
        )
    return Decimal(value)


AmountIn = Annotated[
    Decimal,
    BeforeValidator(_amount),
    WithJsonSchema({"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["12.34"]}),
]
QuantityIn = Annotated[
    Decimal,
    BeforeValidator(_quantity),
    WithJsonSchema({"type": "string", "pattern": QUANTITY_PATTERN, "examples": ["1234.5"]}),
]
Id = Annotated[str, Field(min_length=1, max_length=80)]
Channel = Annotated[str, Field(max_length=20, pattern=r"^[a-z0-9_-]*$")]


class Body(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid")


class PaymentIn(Body):
    """``POST /api/v1/payments``."""

    household_id: Id
    utility: Utility | None = None
    amount: AmountIn
    method: Method
    payment_token: Annotated[str, Field(min_length=1, max_length=80)] | None = Field(
        default=None, description="Sandbox test token or card number; default: the saved method"
    )
    step_up_proof: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        default=None,
        description="A step-up proof bound to exactly this payment "
        "(POST /api/v1/step-up/verifications); single use",
    )
    channel: Channel | None = Field(
        default=None, description="Where the resident asked (terminal, telegram, speaker...)"
    )


class PreviewIn(Body):
    """``POST /api/v1/households/{id}/payment-preview``."""

    amount: AmountIn
    utility: Utility | None = None
    method: Method | None = None
    channel: Channel | None = None


class ProofPaymentIn(Body):
    """The exact payment a step-up proof will be bound to (or the autopay it turns on)."""

    household_id: Id
    utility: Utility | None = None
    amount: AmountIn
    method: Method
    purpose: Literal["payment", "autopay"] = Field(
        default="payment",
        description="payment: pays `amount` once; autopay: turns autopay on with the monthly "
        "limit `amount`. A proof never serves the other purpose.",
    )


class VerificationIn(Body):
    """``POST /api/v1/step-up/verifications`` (service): one verification's outcome."""

    resident_id: Id
    kind: Literal["pin", "face", "voice"]
    passed: bool
    channel: Channel = ""
    payment: ProofPaymentIn | None = Field(
        default=None, description="The payment to bind a proof to (a pass returns the proof)"
    )


class PaymentReviewIn(Body):
    """``POST /api/v1/payments/{id}/approve`` or ``/decline`` (staff)."""

    reason: Annotated[str, Field(max_length=200)] = ""


class AuditEventIn(Body):
    """``POST /api/v1/audit/events`` (service, staff): an entry from another package."""

    kind: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z_]+(\.[a-z_]+)*$")]
    actor: Annotated[str, Field(max_length=80)] = ""
    subject: Annotated[str, Field(max_length=120)] = ""
    data: dict[str, Any] = Field(default_factory=dict)


class RefundIn(Body):
    """``POST /api/v1/payments/{id}/refund`` (staff)."""

    amount: AmountIn | None = None
    reason: Annotated[str, Field(max_length=200)] = ""


class ReverseIn(Body):
    """``POST /api/v1/payments/{id}/reverse`` (staff)."""

    reason: Annotated[str, Field(max_length=200)] = ""


class ReadingIn(Body):
    """``POST /api/v1/households/{id}/readings``."""

    utility: Annotated[str, Field(pattern="^(electricity|water|gas)$")]
    value: QuantityIn
    source: Annotated[str, Field(pattern="^(smart_meter|meter_reader|resident)$")] = "resident"
    taken_at: datetime | None = None


class ReviewIn(Body):
    """``POST /api/v1/readings/{id}/review`` (staff)."""

    approve: bool


class AutopayIn(Body):
    """``PUT /api/v1/households/{id}/autopay/{utility}``."""

    enabled: bool
    method: Method | None = None
    max_amount: AmountIn | None = None
    #: A resident turning autopay on up to the step-up amount or more needs a proof bound
    #: to (household, utility, limit, method), from ``POST /api/v1/step-up/verifications``.
    step_up_proof: str | None = Field(default=None, min_length=1, max_length=100)


class ResidentTokenIn(Body):
    """``POST /api/v1/auth/resident-token`` (service)."""

    resident_id: Id


class LinkCodeIn(Body):
    """``POST /api/v1/link-codes``."""

    resident_id: Id


class RedeemIn(Body):
    """``POST /api/v1/link-codes/redeem``."""

    code: Annotated[str, Field(min_length=1, max_length=20)]
    channel: Annotated[str, Field(min_length=1, max_length=20)]
    external_id: Annotated[str, Field(min_length=1, max_length=80)]


class DeliveredIn(Body):
    """``POST /api/v1/notices/{id}/delivered``."""

    channel: Annotated[str, Field(min_length=1, max_length=20)]
