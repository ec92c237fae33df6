"""The PIN verifier: a 6-digit PIN chosen by the resident, stored as an argon2 hash.

The PIN is never logged, echoed or kept in conversation state: the engine masks
PIN answers entirely in the conversation log, and only the argon2 hash is stored
(``bot_pins``).
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.messages import utcnow
from bot.store import ConversationStore
from verification import (
    Challenge,
    Decision,
    Evidence,
    VerificationKind,
    VerificationResult,
)

PIN_RE = re.compile(r"^\d{6}$")
# OWASP minimum for argon2id (19 MiB, 2 passes): ~0.1 s a hash on a shared 2-core box.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class WeakPinError(ValueError):
    """The chosen PIN is not acceptable.

    Attributes:
        reason: ``format`` (not 6 digits) or ``weak`` (all one digit, a run such as 123456).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def looks_like_pin(text: str) -> bool:
    """Whether ``text`` (spaces ignored) is exactly six digits."""
    return bool(PIN_RE.match(text.replace(" ", "").strip()))


def check_new_pin(pin: str) -> str:
    """Validate a PIN the resident wants to set; returns it normalised.

    Raises:
        WeakPinError: it is not six digits, or is trivially guessable.
    """
    pin = pin.replace(" ", "").strip()
    if not PIN_RE.match(pin):
        raise WeakPinError("format")
    digits = [int(c) for c in pin]
    steps = {b - a for a, b in itertools.pairwise(digits)}
    if len(set(digits)) == 1 or steps in ({1}, {-1}):
        raise WeakPinError("weak")
    return pin


def hash_pin(pin: str) -> str:
    """The argon2 hash of a (validated) PIN."""
    return _HASHER.hash(pin)


def pin_matches(pin_hash: str, pin: str) -> bool:
    """Whether ``pin`` matches ``pin_hash``."""
    try:
        return _HASHER.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


class PinVerifier:
    """Step-up verification with the resident's 6-digit PIN.

    Args:
        store: The dialogue store holding PIN hashes.
        clock: Returns the current time (tests inject one).
        ttl: How long a PIN challenge stays open.
    """

    kind = VerificationKind.PIN

    def __init__(
        self,
        store: ConversationStore,
        clock: Callable[[], datetime] = utcnow,
        ttl: timedelta = timedelta(minutes=5),
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl

    async def is_enrolled(self, resident_id: str) -> bool:
        """Whether the resident has set a PIN."""
        return self.store.get_pin_hash(resident_id) is not None

    async def set_pin(self, resident_id: str, pin: str) -> None:
        """Set or replace the resident's PIN.

        Raises:
            WeakPinError: the PIN is not acceptable.
        """
        self.store.set_pin_hash(resident_id, hash_pin(check_new_pin(pin)), self.clock())

    async def start(self, resident_id: str) -> Challenge:
        """A PIN prompt."""
        now = self.clock()
        return Challenge(
            kind=self.kind,
            challenge_id=secrets.token_hex(8),
            prompt_key="verify_pin_prompt",
            issued_at=now,
            expires_at=now + self.ttl,
            accepts=("text",),
        )

    async def verify(
        self, resident_id: str, challenge: Challenge, evidence: Evidence
    ) -> VerificationResult:
        """Check the PIN in ``evidence`` (UTF-8 text)."""
        if challenge.kind is not self.kind:
            return VerificationResult(self.kind, Decision.REJECT, "wrong_kind")
        if challenge.is_expired(self.clock()):
            return VerificationResult(self.kind, Decision.RETRY, "expired")
        if evidence.media != "text":
            return VerificationResult(self.kind, Decision.RETRY, "wrong_media")
        pin = evidence.data.decode("utf-8", errors="replace").replace(" ", "").strip()
        if not PIN_RE.match(pin):
            return VerificationResult(self.kind, Decision.RETRY, "not_six_digits")
        pin_hash = self.store.get_pin_hash(resident_id)
        if pin_hash is None:
            return VerificationResult(self.kind, Decision.REJECT, "not_enrolled")
        if pin_matches(pin_hash, pin):
            return VerificationResult(self.kind, Decision.ACCEPT, "match")
        return VerificationResult(self.kind, Decision.REJECT, "no_match")
