"""Video-note liveness: a random head-movement challenge, checked on the pose track.

A still photo proves only that someone holds a picture of the resident. A video
note answering a *fresh, random* movement challenge ("turn your head left, then
look up") is much harder to fake: a printed or on-screen photo cannot turn, a
pre-recorded clip does not know the challenge, and the clip must be one
continuous face that matches the enrolled one throughout.

The checks, in order (the first failure decides the reason):

1. ``no_face``: enough sampled frames show a face (``min_face_fraction``);
2. ``multiple_faces``: no frame shows more than one face (an accomplice, or a
   photo held up beside a face);
3. ``discontinuous``: consecutive face boxes overlap (``continuity_iou``) and
   consecutive embeddings are close (``continuity_distance``): no cut between
   clips or people;
4. ``motion_not_seen``: the challenged movements happen, in order, relative to
   the resident's starting pose (see :mod:`biometrics.face.pose`);
5. ``no_match``: the face matches the enrolled template: the median distance
   over the encoded frames is within ``threshold``, and no encoded frame - in
   particular none of those where the head is turned furthest - is further
   than ``frame_max_distance`` (a turned head legitimately scores worse than a
   frontal one, but someone else scores worse still).

Pose from 5 landmarks sees yaw and upward pitch reliably; it cannot see blinks
(no eyelid points) or, reliably, looking down, so those are not offered.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from biometrics.face.matching import best_distance
from biometrics.face.settings import FaceSettings
from biometrics.face.video import FrameSample, VideoAnalysis

#: Frames at the start of the clip whose median pose is the resident's baseline.
BASELINE_FRAMES = 3


class Motion(StrEnum):
    """A head movement the resident can be asked to perform."""

    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"
    LOOK_UP = "look_up"


def random_motions(steps: int) -> tuple[Motion, ...]:
    """A random sequence of ``steps`` movements, no movement twice in a row.

    Drawn with :mod:`secrets`, so the next challenge cannot be predicted.
    """
    choices = list(Motion)
    seq: list[Motion] = []
    for _ in range(max(1, steps)):
        options = [m for m in choices if not seq or m is not seq[-1]]
        seq.append(options[secrets.randbelow(len(options))])
    return tuple(seq)


@dataclass(frozen=True)
class LivenessResult:
    """The verdict on one video note.

    Attributes:
        live: The clip shows one continuous face performing the challenge.
        match: The face is the enrolled resident's.
        reason: ``match`` when both hold, else the first failed check.
        distance: Median distance to the template over encoded frames (or ``None``).
        threshold: The threshold used.
        details: Diagnostics: frame counts, pose deltas, continuity values. No biometric data.
    """

    live: bool
    match: bool
    reason: str
    distance: float | None
    threshold: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether the clip both is live and matches."""
        return self.live and self.match


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def motion_seen(
    frames: Sequence[FrameSample], motions: Sequence[Motion], settings: FaceSettings
) -> tuple[bool, dict[str, Any]]:
    """Whether ``motions`` happen in order in the pose track, relative to the start.

    Returns:
        ``(seen, details)`` where details hold the baseline and the largest pose
        deltas observed (for the log and for tuning).
    """
    posed = [f for f in frames if f.faces == 1 and f.pose is not None]
    if len(posed) < BASELINE_FRAMES + 1:
        return False, {"posed_frames": len(posed)}
    yaws = np.array([f.pose.yaw for f in posed if f.pose is not None])
    pitches = np.array([f.pose.pitch for f in posed if f.pose is not None])
    base_yaw = float(np.median(yaws[:BASELINE_FRAMES]))
    base_pitch = float(np.median(pitches[:BASELINE_FRAMES]))
    d_yaw = yaws - base_yaw
    d_pitch = pitches - base_pitch
    if settings.video_mirrored:
        d_yaw = -d_yaw
    details: dict[str, Any] = {
        "max_yaw_delta": round(float(d_yaw.max()), 3),
        "min_yaw_delta": round(float(d_yaw.min()), 3),
        "min_pitch_delta": round(float(d_pitch.min()), 3),
    }
    # The resident's left is the image's right on an unmirrored front camera:
    # turning left moves the nose towards the image's right (yaw grows).
    hits = {
        Motion.TURN_LEFT: d_yaw >= settings.yaw_delta,
        Motion.TURN_RIGHT: d_yaw <= -settings.yaw_delta,
        Motion.LOOK_UP: d_pitch <= -settings.pitch_delta,
    }
    cursor = BASELINE_FRAMES
    for motion in motions:
        later = np.flatnonzero(hits[Motion(motion)][cursor:])
        if later.size == 0:
            details["missing_motion"] = str(motion)
            return False, details
        cursor += int(later[0]) + 1
    return True, details


def check_liveness(
    analysis: VideoAnalysis,
    motions: Sequence[Motion],
    template: np.ndarray,
    settings: FaceSettings,
) -> LivenessResult:
    """Decide whether a video note is a live, continuous, matching answer to ``motions``."""
    frames = analysis.frames
    threshold = settings.threshold
    n = len(frames)
    with_face = [f for f in frames if f.faces >= 1]
    details: dict[str, Any] = {
        "frames": n,
        "frames_with_face": len(with_face),
        "duration_s": round(analysis.duration_s, 2),
    }

    def fail(reason: str, distance: float | None = None) -> LivenessResult:
        return LivenessResult(False, False, reason, distance, threshold, details)

    if n == 0 or len(with_face) / n < settings.min_face_fraction:
        return fail("no_face")
    if any(f.faces > 1 for f in frames):
        return fail("multiple_faces")

    boxes = [f.box for f in with_face if f.box is not None]
    ious = [_iou(a, b) for a, b in itertools.pairwise(boxes)]
    details["min_box_iou"] = round(min(ious), 3) if ious else None
    encoded = [f.encoding for f in with_face if f.encoding is not None]
    steps = [float(np.linalg.norm(a - b)) for a, b in itertools.pairwise(encoded)]
    details["max_step_distance"] = round(max(steps), 3) if steps else None
    if (ious and min(ious) < settings.continuity_iou) or (
        steps and max(steps) > settings.continuity_distance
    ):
        return fail("discontinuous")

    dists = [best_distance(template, e) for e in encoded]
    if not dists:
        return fail("no_face")
    median = float(np.median(dists))
    details["max_distance"] = round(max(dists), 3)
    details["encoded_frames"] = len(dists)

    seen, motion_details = motion_seen(frames, motions, settings)
    details.update(motion_details)
    if not seen:
        return fail("motion_not_seen", median)
    match = median <= threshold and max(dists) <= settings.frame_max_distance
    return LivenessResult(True, match, "match" if match else "no_match", median, threshold, details)
