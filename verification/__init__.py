"""Step-up verification: the interface every verifier (PIN, face, voice) implements.

The dialogue asks for step-up verification before a high-value payment. It
starts a :class:`Challenge` with a :class:`Verifier`, shows the challenge to the
resident (a PIN prompt, a head movement to perform on video, digits to speak),
collects :class:`Evidence` from the channel and asks the verifier for a
:class:`VerificationResult`.

Verifiers decide *one attempt*. Policy that spans attempts (5 failures lock a
kind for 15 minutes, falling back to the PIN and staff) lives in the dialogue's
verification service, so that it is the same for every kind.

Nothing here carries biometric data beyond the evidence bytes of one attempt;
results carry scores and decisions only, which is what the conversation log
stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

MediaKind = Literal["text", "image", "video", "audio"]


class VerificationKind(StrEnum):
    """The kinds of step-up verification."""

    PIN = "pin"
    FACE = "face"
    VOICE = "voice"


class Decision(StrEnum):
    """What a verifier decided about one attempt."""

    ACCEPT = "accept"
    REJECT = "reject"
    #: The evidence could not be judged (no face, corrupt audio...): ask again.
    RETRY = "retry"


@dataclass(frozen=True)
class Challenge:
    """One verification attempt's challenge, as shown to the resident.

    Attributes:
        kind: Which verifier issued it.
        challenge_id: Random id; a result is only valid for its own challenge.
        prompt_key: Key of the response template that asks for the evidence
            (e.g. ``"verify_voice_prompt"``), rendered by the dialogue.
        params: Values for the template, e.g. ``{"digits": "4 7 1 9 0 2"}`` or
            ``{"motion": "turn_left"}``. Never secret.
        issued_at: When the challenge was issued (UTC).
        expires_at: After this instant the challenge is refused (UTC).
        accepts: The media kinds the channel may send as evidence.
        state: Verifier-private values needed to check the answer (for example
            the expected digits). Persisted with the conversation; never shown.
    """

    kind: VerificationKind
    challenge_id: str
    prompt_key: str
    issued_at: datetime
    expires_at: datetime
    accepts: tuple[MediaKind, ...]
    params: Mapping[str, str] = field(default_factory=dict)
    state: Mapping[str, Any] = field(default_factory=dict)

    def is_expired(self, now: datetime) -> bool:
        """Whether the challenge can no longer be answered at ``now``."""
        return now >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, for persisting with the conversation state."""
        data = asdict(self)
        data["kind"] = str(self.kind)
        data["issued_at"] = self.issued_at.isoformat()
        data["expires_at"] = self.expires_at.isoformat()
        data["accepts"] = list(self.accepts)
        data["params"] = dict(self.params)
        data["state"] = dict(self.state)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Challenge:
        """Rebuild a challenge persisted with :meth:`to_dict`."""
        return cls(
            kind=VerificationKind(data["kind"]),
            challenge_id=str(data["challenge_id"]),
            prompt_key=str(data["prompt_key"]),
            issued_at=datetime.fromisoformat(data["issued_at"]),
            expires_at=datetime.fromisoformat(data["expires_at"]),
            accepts=tuple(data["accepts"]),
            params=dict(data.get("params", {})),
            state=dict(data.get("state", {})),
        )


@dataclass(frozen=True)
class Evidence:
    """What the resident sent in answer to a challenge.

    Attributes:
        media: ``text`` for a PIN, ``image`` for a selfie, ``video`` for a video
            note, ``audio`` for a voice note.
        data: The raw bytes (UTF-8 for text). Never logged or stored.
        mime_type: The channel's media type, when known (``video/mp4``,
            ``audio/ogg``...).
    """

    media: MediaKind
    data: bytes
    mime_type: str | None = None

    def __repr__(self) -> str:  # keep evidence out of logs and tracebacks
        return (
            f"Evidence(media={self.media!r}, bytes={len(self.data)}, mime_type={self.mime_type!r})"
        )


@dataclass(frozen=True)
class VerificationResult:
    """The decision on one attempt; safe to log (scores, never biometric data).

    Attributes:
        kind: The verifier's kind.
        decision: Accept, reject, or retry (evidence unusable).
        reason: A stable code for the decision, e.g. ``"match"``, ``"no_match"``,
            ``"wrong_digits"``, ``"liveness_failed"``, ``"expired"``,
            ``"no_face"``, ``"audio_too_short"``.
        score: The similarity or distance the decision rests on, if any.
        threshold: The threshold the score was compared with, if any.
        liveness: The liveness verdict, for kinds that check it.
        requires_also: When set, this attempt counts only together with another
            factor of that kind (a still selfie needs the PIN as well).
        details: Extra numeric or textual diagnostics, never biometric data.
    """

    kind: VerificationKind
    decision: Decision
    reason: str
    score: float | None = None
    threshold: float | None = None
    liveness: bool | None = None
    requires_also: VerificationKind | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether the attempt was accepted."""
        return self.decision is Decision.ACCEPT

    def to_log(self) -> dict[str, Any]:
        """The form written to the conversation log."""
        return {
            "kind": str(self.kind),
            "decision": str(self.decision),
            "reason": self.reason,
            "score": self.score,
            "threshold": self.threshold,
            "liveness": self.liveness,
            "requires_also": str(self.requires_also) if self.requires_also else None,
            "details": dict(self.details),
        }


@runtime_checkable
class Verifier(Protocol):
    """A way for a resident to prove it is them, for one attempt at a time."""

    kind: VerificationKind

    async def is_enrolled(self, resident_id: str) -> bool:
        """Whether the resident has enrolled for this kind (set a PIN, enrolled a face...)."""
        ...

    async def start(self, resident_id: str) -> Challenge:
        """Issue a fresh challenge for the resident."""
        ...

    async def verify(
        self, resident_id: str, challenge: Challenge, evidence: Evidence
    ) -> VerificationResult:
        """Decide one attempt. Must refuse an expired challenge (reason ``expired``)."""
        ...
