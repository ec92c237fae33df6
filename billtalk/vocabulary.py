"""The names every layer shares: utilities and payment methods, defined once.

The billing domain, the API schemas, the NLU's entity values and the actions all
derive their lists from here (``../shared/CONTRACTS.md``, "Utility names and
entity values"). A new utility or method is added in this one place.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Utility = Literal["electricity", "water", "gas", "property_fee"]
PaymentMethod = Literal["card", "bank_transfer", "wallet", "alipay", "wechat_pay"]

#: The utilities, in the order bills are listed and paid (oldest first within each).
UTILITIES: Final[tuple[str, ...]] = get_args(Utility)
#: The payment methods.
PAYMENT_METHODS: Final[tuple[str, ...]] = get_args(PaymentMethod)
