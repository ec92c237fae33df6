"""The face :class:`~verification.Verifier`: video-note liveness, or a weak still.

Policy (see ``docs/face.md``): face verification is one factor, beside
possession of the linked chat account. A video note answering a fresh random
movement challenge, continuous and matching the enrolled face, is accepted on
its own. A still selfie proves only that someone has a photo of the resident:
it must meet the stricter still threshold, must not be a near-copy of an
enrollment photo, and even then counts only together with the PIN
(``requires_also=PIN``). Lockout after repeated failures is the dialogue's
verification service's job, the same for every kind.

Every attempt is logged as kind, score, liveness and decision; never images or
templates.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta

import numpy as np

from billtalk.logs import get_logger
from biometrics.face.engine import mirror_windows
from biometrics.face.errors import FaceError
from biometrics.face.liveness import Motion, check_liveness, random_motions
from biometrics.face.matching import best_distance, decide_still
from biometrics.face.pool import make_executor, observe_image, observe_video, run_in
from biometrics.face.service import KIND
from biometrics.face.settings import FaceSettings, get_face_settings
from biometrics.face.video import VideoAnalysis
from biometrics.refresh import refreshed_face
from biometrics.store import TemplateStore
from verification import (
    Challenge,
    Decision,
    Evidence,
    VerificationKind,
    VerificationResult,
)

log = get_logger("biometrics.face.verifier")

#: Codes of unusable evidence: the resident should simply try again.
_RETRY_CODES = frozenset(
    {
        "no_face",
        "multiple_faces",
        "face_too_small",
        "too_blurry",
        "too_dark",
        "corrupt_image",
        "corrupt_video",
        "unsupported_format",
        "image_too_large",
        "video_too_long",
    }
)


class FaceVerifier:
    """Step-up verification by face, for the dialogue's verification service.

    Args:
        store: The encrypted template store.
        settings: Face settings; the process settings by default.
        executor: Where dlib work runs; by default a process pool of
            ``settings.workers`` processes, created on first use.
        clock: Returns the current UTC time (tests pass a fixed clock).
    """

    kind = VerificationKind.FACE

    def __init__(
        self,
        store: TemplateStore,
        *,
        settings: FaceSettings | None = None,
        executor: Executor | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or get_face_settings()
        self._executor = executor
        self._own_executor = executor is None
        self._clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls) -> FaceVerifier:
        """A verifier on the configured template store, with its own process pool."""
        return cls(TemplateStore.from_settings())

    @property
    def executor(self) -> Executor:
        """The executor running dlib work (created lazily)."""
        if self._executor is None:
            self._executor = make_executor(self.settings.workers)
        return self._executor

    def close(self) -> None:
        """Shut down the process pool if this verifier created it."""
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def is_enrolled(self, resident_id: str) -> bool:
        """Whether the resident has an enrolled face template."""
        return await asyncio.to_thread(self.store.is_enrolled, resident_id, KIND)

    async def start(self, resident_id: str) -> Challenge:
        """Issue a random movement challenge for a video note.

        ``params["motion"]`` is the sequence of movements joined with ``","``
        (e.g. ``"turn_left,look_up"``), for the prompt template
        ``verify_face_prompt``. A still image is accepted too, but only as a
        weaker factor that needs the PIN.
        """
        now = self._clock()
        motions = random_motions(self.settings.challenge_steps)
        accepts: tuple[str, ...] = ("video", "image") if self.settings.allow_still else ("video",)
        return Challenge(
            kind=self.kind,
            challenge_id=secrets.token_urlsafe(16),
            prompt_key="verify_face_prompt",
            issued_at=now,
            expires_at=now + timedelta(seconds=self.settings.challenge_ttl_s),
            accepts=accepts,  # type: ignore[arg-type]
            params={"motion": ",".join(str(m) for m in motions), "steps": str(len(motions))},
            state={"motions": [str(m) for m in motions], "resident_id": resident_id},
        )

    async def verify(
        self, resident_id: str, challenge: Challenge, evidence: Evidence
    ) -> VerificationResult:
        """Decide one attempt: a video note (liveness) or a still selfie (weak).

        Returns a result with ``reason`` among ``match``, ``no_match``,
        ``liveness_failed`` (with ``details["liveness"]`` saying which check),
        ``replay_suspected``, ``still_not_allowed``, ``expired``,
        ``wrong_challenge``, ``not_enrolled``, ``unsupported_media`` and the
        :class:`~biometrics.face.errors.FaceError` codes (``no_face``,
        ``multiple_faces``...).
        """
        result = await self._decide(resident_id, challenge, evidence)
        log.info("face_verification_attempt", resident_id=resident_id, **result.to_log())
        return result

    async def _decide(
        self, resident_id: str, challenge: Challenge, evidence: Evidence
    ) -> VerificationResult:
        known = {str(m) for m in Motion}
        motions = [Motion(m) for m in challenge.state.get("motions", ()) if m in known]
        if (
            challenge.kind is not self.kind
            or challenge.state.get("resident_id") != resident_id
            or not motions
        ):
            return self._result(Decision.REJECT, "wrong_challenge")
        if challenge.is_expired(self._clock()):
            return self._result(Decision.REJECT, "expired")
        if evidence.media not in challenge.accepts:
            return self._result(Decision.RETRY, "unsupported_media")
        template = await asyncio.to_thread(self.store.load, resident_id, KIND)
        if template is None:
            return self._result(Decision.REJECT, "not_enrolled")
        try:
            if evidence.media == "video":
                analysis = await run_in(self.executor, observe_video, evidence.data, self.settings)
                verdict = check_liveness(analysis, motions, template, self.settings)
                if verdict.passed:
                    refreshed = await asyncio.to_thread(
                        self._learn, resident_id, template, analysis, verdict.distance
                    )
                    return self._result(
                        Decision.ACCEPT,
                        "match",
                        verdict.distance,
                        verdict.threshold,
                        True,
                        details={**verdict.details, "gallery_refreshed": refreshed},
                    )
                if verdict.live:
                    return self._result(
                        Decision.REJECT,
                        "no_match",
                        verdict.distance,
                        verdict.threshold,
                        True,
                        details=verdict.details,
                    )
                decision = Decision.RETRY if verdict.reason == "no_face" else Decision.REJECT
                return self._result(
                    decision,
                    "liveness_failed",
                    verdict.distance,
                    verdict.threshold,
                    False,
                    details={**verdict.details, "liveness": verdict.reason},
                )
            windows = mirror_windows(self.settings)
            obs = await run_in(
                self.executor, observe_image, evidence.data, self.settings, template, windows
            )
        except FaceError as exc:
            decision = Decision.RETRY if exc.code in _RETRY_CODES else Decision.REJECT
            return self._result(decision, exc.code)
        assert obs.encoding is not None
        still = decide_still(template, obs.encoding, self.settings)
        if still.match:
            return self._result(
                Decision.ACCEPT,
                "match",
                still.distance,
                still.threshold,
                False,
                requires_also=VerificationKind.PIN,
                details={"evidence": "still"},
            )
        return self._result(
            Decision.REJECT,
            still.reason,
            still.distance,
            still.threshold,
            False,
            details={"evidence": "still"},
        )

    def _learn(
        self, resident_id: str, template: np.ndarray, analysis: VideoAnalysis, median: float | None
    ) -> bool:
        """After a live pass with a wide margin, add the clip's typical frame to the gallery.

        Only a video note that answered a fresh movement challenge, stayed one
        continuous face and matched gets here; a still never does (it may be a
        photo of the resident). The frame added is the encoded frame at the
        median distance (the one the decision rested on), and
        :func:`biometrics.refresh.refreshed_face` bounds the change: the median
        must be ``FACE_POLICY.margin`` inside the threshold, the frame must match
        every enrolled row, the enrolled rows are kept and at most
        ``max_refreshed`` refreshed rows sit beside them. The store keeps the
        previous gallery (``restore_previous``) and audits the refresh.
        Returns whether the gallery changed.
        """
        if not self.settings.learn_from_success or median is None:
            return False
        enrolled = self.store.enrolled_samples(resident_id, KIND)
        encoded = [f.encoding for f in analysis.frames if f.faces == 1 and f.encoding is not None]
        if enrolled is None or not encoded or enrolled > len(template):
            return False
        dists = [best_distance(template, e) for e in encoded]
        probe = encoded[int(np.argsort(dists)[(len(dists) - 1) // 2])]
        new = refreshed_face(template, enrolled, probe, median, self.settings.threshold)
        if new is None:
            return False
        self.store.refresh(
            resident_id,
            KIND,
            new,
            actor="verifier:face",
            detail={"distance_milli": round(median * 1000), "gallery": int(new.shape[0])},
        )
        log.info("face_template_refreshed", resident_id=resident_id, gallery=int(new.shape[0]))
        return True

    def _result(
        self,
        decision: Decision,
        reason: str,
        score: float | None = None,
        threshold: float | None = None,
        liveness: bool | None = None,
        *,
        requires_also: VerificationKind | None = None,
        details: dict[str, object] | None = None,
    ) -> VerificationResult:
        return VerificationResult(
            kind=self.kind,
            decision=decision,
            reason=reason,
            score=None if score is None else round(score, 4),
            threshold=threshold,
            liveness=liveness,
            requires_also=requires_also,
            details=dict(details or {}),
        )
