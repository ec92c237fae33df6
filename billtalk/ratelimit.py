"""Rate limits: fixed windows counted in Redis (shared) or in this process.

One small interface for the API (``backend.api``) and the chat channels (the
dialogue engine's flood control), kept in the kernel so both may use it::

    limiter = get_limiter()                      # Redis if BILLTALK_REDIS_URL is set
    verdict = limiter.hit("msg:telegram:42", limit=30, window_s=60)
    if not verdict.allowed:
        ...  # API: 429 with Retry-After: verdict.retry_after; chat: a polite reply

Keys are free-form strings; by convention ``<what>:<who>`` (``pay:resident:r-A0101-1``,
``pay:token:17``, ``pay:addr:10.0.0.5``, ``link:addr:...``, ``msg:telegram:42``).
A fixed window counts hits since the window started; the first hit over the
limit gets ``retry_after`` = seconds until the window ends. With Redis, ``INCR``
and ``EXPIRE`` run in one pipeline, so every process and machine sharing the Redis
shares the limit; if Redis cannot be reached the limiter fails open (logs a
warning) rather than refusing every resident.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from billtalk.logs import get_logger

log = get_logger("billtalk.ratelimit")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one hit: allowed, hits in the window, seconds to wait if refused."""

    allowed: bool
    count: int
    retry_after: int


class RateLimiter(Protocol):
    """Count one hit on ``key`` and say whether it is within ``limit`` per ``window_s``."""

    def hit(self, key: str, limit: int, window_s: int) -> Verdict: ...


class MemoryLimiter:
    """Fixed windows in this process's memory (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        #: key -> (window index, hits in it, when that window ends)
        self._windows: dict[str, tuple[int, int, float]] = {}
        self._lock = threading.Lock()
        self._hits = 0

    def hit(self, key: str, limit: int, window_s: int) -> Verdict:
        """See :class:`RateLimiter`."""
        now = self.clock()
        window = int(now // window_s)
        with self._lock:
            self._hits += 1
            if self._hits % 10_000 == 0:
                self._sweep(now)
            start, count, _ = self._windows.get(key, (window, 0, 0.0))
            if start != window:
                start, count = window, 0
            count += 1
            self._windows[key] = (start, count, (start + 1) * window_s)
        retry = max(1, math.ceil((start + 1) * window_s - now))
        return Verdict(count <= limit, count, 0 if count <= limit else retry)

    def _sweep(self, now: float) -> None:
        # Forget windows that have ended: a key seen again starts a new window anyway.
        for key in [k for k, (_, _, end) in self._windows.items() if end <= now]:
            del self._windows[key]

    def remembered(self) -> int:
        """Keys whose window is still remembered (ended ones are swept every 10,000 hits)."""
        return len(self._windows)


class RedisLimiter:
    """Fixed windows in Redis (``INCR`` + ``EXPIRE``), shared by every process."""

    def __init__(self, url: str, *, prefix: str = "billtalk:rl:") -> None:
        import redis

        self.redis: Any = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.prefix = prefix

    def hit(self, key: str, limit: int, window_s: int) -> Verdict:
        """See :class:`RateLimiter`."""
        now = time.time()
        window = int(now // window_s)
        name = f"{self.prefix}{key}:{window_s}:{window}"
        try:
            pipe = self.redis.pipeline()
            pipe.incr(name)
            pipe.expire(name, window_s + 1)
            count = int(pipe.execute()[0])
        except Exception as exc:  # Redis down: fail open, loudly
            log.warning("rate_limit_unavailable", error=exc.__class__.__name__)
            return Verdict(True, 0, 0)
        retry = max(1, math.ceil((window + 1) * window_s - now))
        return Verdict(count <= limit, count, 0 if count <= limit else retry)


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def get_limiter(redis_url: str | None = None) -> RateLimiter:
    """The process's limiter: Redis at ``redis_url`` (default ``BILLTALK_REDIS_URL``).

    Without a Redis URL, an in-process :class:`MemoryLimiter`.
    """
    if redis_url is None:
        from billtalk.settings import get_settings

        redis_url = get_settings().redis_url
    key = redis_url or ""
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = RedisLimiter(redis_url) if redis_url else MemoryLimiter()
            _limiters[key] = limiter
        return limiter
