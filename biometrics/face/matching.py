"""Comparing embeddings and deciding a still photo: pure functions, no dlib."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biometrics.face.settings import FaceSettings


def distances(template: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Distances from ``probe`` (128,) to each enrolled vector of ``template`` (n, 128)."""
    enrolled = np.atleast_2d(np.asarray(template, dtype=np.float64))
    return np.linalg.norm(enrolled - np.asarray(probe, dtype=np.float64)[None, :], axis=1)


def best_distance(template: np.ndarray, probe: np.ndarray) -> float:
    """The distance from ``probe`` to the closest enrolled vector.

    With several enrollment photos the nearest one decides: it is the photo
    taken in conditions most like the probe's.
    """
    return float(distances(template, probe).min())


@dataclass(frozen=True)
class StillDecision:
    """The decision on a still selfie.

    Attributes:
        match: Whether the distance is within the threshold used.
        replay: Whether the probe is a near-duplicate of an enrollment photo.
        distance: Distance to the nearest enrolled vector.
        threshold: The threshold the distance was compared with.
        reason: ``match``, ``no_match``, ``replay_suspected`` or ``still_not_allowed``.
    """

    match: bool
    replay: bool
    distance: float
    threshold: float
    reason: str


def decide_still(template: np.ndarray, probe: np.ndarray, settings: FaceSettings) -> StillDecision:
    """Decide a still selfie for step-up under the payment policy.

    A still is weaker than a video note: it proves only that someone holds a
    photo of the resident. So it must meet the stricter ``still_threshold``,
    and a probe nearly identical to an enrollment photo (``replay_distance``)
    is refused as a replay of that photo. Even an accepted still only counts
    together with the PIN (the verifier sets ``requires_also``).
    """
    dist = best_distance(template, probe)
    threshold = settings.still_threshold
    if not settings.allow_still:
        return StillDecision(False, False, dist, threshold, "still_not_allowed")
    if dist < settings.replay_distance:
        return StillDecision(False, True, dist, threshold, "replay_suspected")
    if dist <= threshold:
        return StillDecision(True, False, dist, threshold, "match")
    return StillDecision(False, False, dist, threshold, "no_match")
