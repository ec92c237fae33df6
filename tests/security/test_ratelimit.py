"""Abuse limits: 429 with Retry-After on the API; the limiter shared through Redis."""

from __future__ import annotations

import uuid

import pytest

from backend.settings import BillingSettings
from billtalk.ratelimit import MemoryLimiter, RedisLimiter, get_limiter
from tests.security.conftest import LiveApi, daytime_zone

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def billing_settings() -> BillingSettings:
    """Tight limits: 3 payment attempts and 2 link-code tries per hour."""
    return BillingSettings(
        risk_timezone=daytime_zone(12),
        risk_model_enabled=False,
        rate_payments_per_hour=3,
        rate_link_tries_per_hour=2,
    )


def test_payment_attempts_per_resident_get_429_with_retry_after(live: LiveApi) -> None:
    codes = [live.pay(live.resident1, f"rl-{i}", amount="1.00").status_code for i in range(4)]
    assert codes == [201, 201, 201, 429]
    r = live.pay(live.resident1, "rl-5", amount="1.00")
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert 0 < int(r.headers["Retry-After"]) <= 3600
    # another resident is not slowed down
    other = live.pay(live.resident2, "rl-other", amount="1.00", household_id=live.community.h2)
    assert other.status_code == 201, other.text


def test_link_code_tries_per_chat_account(live: LiveApi) -> None:
    def redeem(code: str, user: str) -> int:
        return live.http.post(
            "/api/v1/link-codes/redeem",
            json={"code": code, "channel": "telegram", "external_id": user},
            headers=live.h(live.service),
        ).status_code

    assert [redeem("000000", "7") for _ in range(3)] == [422, 422, 429]
    assert redeem("000000", "8") == 422  # a different chat account has its own budget


def test_memory_windows() -> None:
    now = [1000.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    verdicts = [limiter.hit("k", 2, 60) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[-1].retry_after == 20  # the window [960, 1020) ends in 20 s
    now[0] = 1020.0
    assert limiter.hit("k", 2, 60).allowed


def test_memory_forgets_ended_windows() -> None:
    """One-off senders do not pile up: ended windows are swept as hits go by."""
    now = [1000.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    for i in range(9_999):
        limiter.hit(f"once-{i}", 30, 60)
    assert limiter.remembered() == 9_999
    now[0] = 1100.0  # every one of those windows has ended
    limiter.hit("late", 30, 60)  # the 10,000th hit sweeps
    assert limiter.remembered() == 1
    assert limiter.hit("late", 30, 60).count == 2  # a live window is kept


def test_redis_shares_one_limit_between_processes() -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # pragma: no cover - the CI machine has Redis
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    key = f"test:{uuid.uuid4().hex}"
    a, b = RedisLimiter(REDIS_URL), RedisLimiter(REDIS_URL)
    assert [a.hit(key, 3, 60).allowed, b.hit(key, 3, 60).allowed] == [True, True]
    assert a.hit(key, 3, 60).allowed and not b.hit(key, 3, 60).allowed
    assert isinstance(get_limiter(REDIS_URL), RedisLimiter)
    assert isinstance(get_limiter(""), MemoryLimiter)


def test_redis_down_fails_open() -> None:
    limiter = RedisLimiter("redis://127.0.0.1:1/0")
    assert limiter.hit("k", 1, 60).allowed and limiter.hit("k", 1, 60).allowed
