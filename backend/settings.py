"""Billing settings (``BILLTALK_BILLING_*`` environment variables)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.domain.reminders import LateFeePolicy


class BillingSettings(BaseSettings):
    """Knobs of the billing backend.

    Attributes:
        late_fee_enabled: charge late fees (off by default).
        late_fee_rate_per_day: share of the amount due charged per day overdue.
        late_fee_fixed: a fixed late fee instead of the daily rate.
        late_fee_grace_days: days overdue before any late fee.
        late_fee_cap_ratio: the most a late fee can be, as a share of the amount due.
        high_value_threshold: payments at or above this are flagged for step-up
            verification in the payment preview.
        daily_limit: a household's payments in one day above this are flagged.
        max_body_bytes: larger request bodies are refused with 413.
        resident_token_ttl_minutes: lifetime of resident-scoped tokens.
        link_code_ttl_minutes: lifetime of link codes created through the API.
        link_max_attempts: failed link-code attempts per chat account per 15 minutes.
    """

    model_config = SettingsConfigDict(
        env_prefix="BILLTALK_BILLING_", env_file=".env", extra="ignore", frozen=True
    )

    late_fee_enabled: bool = False
    late_fee_rate_per_day: Decimal = Decimal("0.0005")
    late_fee_fixed: Decimal | None = None
    late_fee_grace_days: int = Field(default=7, ge=0)
    late_fee_cap_ratio: Decimal = Decimal("0.10")
    high_value_threshold: Decimal = Decimal("1000.00")
    daily_limit: Decimal = Decimal("5000.00")
    max_body_bytes: int = 64 * 1024
    resident_token_ttl_minutes: int = 30
    link_code_ttl_minutes: int = 15
    link_max_attempts: int = 5

    def late_fee_policy(self) -> LateFeePolicy:
        """The configured :class:`LateFeePolicy`."""
        return LateFeePolicy(
            enabled=self.late_fee_enabled,
            rate_per_day=self.late_fee_rate_per_day,
            fixed=self.late_fee_fixed,
            grace_days=self.late_fee_grace_days,
            cap_ratio=self.late_fee_cap_ratio,
        )


@lru_cache(maxsize=1)
def get_billing_settings() -> BillingSettings:
    """The billing settings, read once from the environment."""
    return BillingSettings()
