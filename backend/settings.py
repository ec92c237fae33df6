"""Billing settings (``BILLTALK_BILLING_*`` environment variables)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.domain.reminders import LateFeePolicy
from backend.domain.stepup import StepUpPolicy


class BillingSettings(BaseSettings):
    """Knobs of the billing backend.

    Attributes:
        late_fee_enabled: charge late fees (off by default).
        late_fee_rate_per_day: share of the amount due charged per day overdue.
        late_fee_fixed: a fixed late fee instead of the daily rate.
        late_fee_grace_days: days overdue before any late fee.
        late_fee_cap_ratio: the most a late fee can be, as a share of the amount due.
        step_up_threshold: a resident-scoped payment at or above this amount needs a
            step-up proof (PIN, face or voice); THE one home of this rule, which the
            dialogue asks about through the payment preview.
        daily_limit: a resident-scoped payment that takes the household's payments
            today above this needs a step-up proof too.
        step_up_proof_ttl_s: lifetime of a step-up proof (single use, bound to one payment).
        step_up_lockout_failures: failed verifications (every kind and channel together)
            before step-up is locked for the resident at the API (default 10: the
            dialogue already locks one kind after 5; this backstop catches a
            resident's failures spread over kinds and channels).
        step_up_lockout_minutes: the window those failures are counted in, and how long
            the lock lasts.
        risk_model_enabled: score payments with the trained IsolationForest too
            (``billtalk risk train``); rules alone when off or untrained.
        risk_model_path: the trained model file (default ``DATA_DIR/risk/model.joblib``).
        risk_timezone: the time zone of the time-of-day feature; empty (the default)
            means the community's own (``BILLTALK_TIMEZONE``, one setting for all).
        rate_payments_per_hour: payment attempts per resident token, API token or
            address per hour before 429.
        rate_link_tries_per_hour: link-code redemptions per address per hour before 429.
        redis_url: rate limits are shared through this Redis when set
            (``BILLTALK_REDIS_URL``), else counted in-process.
        max_body_bytes: larger request bodies are refused with 413.
        resident_token_ttl_minutes: lifetime of resident-scoped tokens.
        token_recheck_s: how long an in-process read (``backend.api.reads``) may rely on
            its own earlier check of the same bearer token before reading the token's row
            again (0: every read checks). A token's expiry always holds to the second; a
            revocation reaches in-process reads within this many seconds, and every HTTP
            request and every write (payments, step-up) at once.
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
    step_up_threshold: Decimal = Decimal("200.00")
    daily_limit: Decimal = Decimal("500.00")
    step_up_proof_ttl_s: int = Field(default=300, ge=10)
    step_up_lockout_failures: int = Field(default=10, ge=1)
    step_up_lockout_minutes: int = Field(default=15, ge=1)
    risk_model_enabled: bool = True
    risk_model_path: str = ""
    risk_timezone: str = ""
    rate_payments_per_hour: int = Field(default=60, ge=1)
    rate_link_tries_per_hour: int = Field(default=30, ge=1)
    redis_url: str = Field(
        default="", validation_alias=AliasChoices("BILLTALK_REDIS_URL", "redis_url")
    )
    max_body_bytes: int = 64 * 1024
    resident_token_ttl_minutes: int = 30
    token_recheck_s: float = Field(default=60.0, ge=0.0)
    link_code_ttl_minutes: int = 15
    link_max_attempts: int = 5

    def step_up_policy(self) -> StepUpPolicy:
        """The configured :class:`StepUpPolicy` (threshold, daily limit, proof, lockout)."""
        return StepUpPolicy(
            threshold=self.step_up_threshold,
            daily_limit=self.daily_limit,
            proof_ttl_s=self.step_up_proof_ttl_s,
            lockout_failures=self.step_up_lockout_failures,
            lockout_minutes=self.step_up_lockout_minutes,
        )

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
