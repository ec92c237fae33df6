"""Learning from success: a bounded, logged, reversible template refresh.

A face or voice drifts over months (glasses, a beard, age, a cold). After a
verification that passed with a *wide* margin, the template may take a small
step towards the new sample, so that the resident keeps matching. The rules
keep this from becoming a way in:

* only a pass far inside the threshold counts (``margin``): a borderline
  match, which an impostor might produce, never moves the template;
* the step is bounded: a voice template moves by at most ``weight`` (10 %)
  of the way to the probe; a face gallery gains at most ``max_refreshed``
  probe vectors beside the enrolled photos, the oldest refreshed one making
  room for the next, and the enrolled photos themselves are never dropped;
* a refreshed template must still match every enrolled face photo, or stay
  close to the previous voice template (``max_drift``), or nothing changes;
* the store keeps the previous version (``TemplateStore.refresh``), audits
  the refresh, and ``TemplateStore.restore_previous`` undoes it; templates stay
  encrypted at rest as at enrollment.

These functions are pure: they decide and compute; the caller stores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RefreshPolicy:
    """Bounds of a refresh.

    Attributes:
        margin: How far inside the threshold the pass must be (distance units
            for face, cosine for voice).
        weight: Voice: the fraction of the way the template moves to the probe.
        max_drift: Voice: least cosine similarity between the refreshed and the
            previous template.
        max_refreshed: Face: most probe vectors kept beside the enrolled ones.
    """

    margin: float
    weight: float = 0.1
    max_drift: float = 0.98
    max_refreshed: int = 2


FACE_POLICY = RefreshPolicy(margin=0.15)
# Voice: per speaker model, in biometrics.voice.models.PROFILES (``refresh``).


def refreshed_voice(
    template: np.ndarray, probe: np.ndarray, score: float, threshold: float,
    policy: RefreshPolicy,
) -> np.ndarray | None:  # fmt: skip
    """The refreshed (1, d) voice template, or ``None`` when the pass is not wide enough.

    Args:
        template: The current template (1 x d or d, unit length).
        probe: The passing probe's voiceprint (unit length).
        score: Its cosine similarity to the template.
        threshold: The match threshold it passed.
        policy: The bounds (the ``refresh`` of the template's model's
            :data:`biometrics.voice.models.PROFILES` entry).
    """
    if score < threshold + policy.margin:
        return None
    old = np.asarray(template, dtype=np.float64).reshape(-1)
    new = (1 - policy.weight) * old + policy.weight * np.asarray(probe, dtype=np.float64)
    new /= np.linalg.norm(new)
    if float(new @ old) / float(np.linalg.norm(old)) < policy.max_drift:
        return None
    return new.astype(np.float32).reshape(1, -1)


def refreshed_face(
    template: np.ndarray, enrolled: int, probe: np.ndarray, distance: float, threshold: float,
    policy: RefreshPolicy = FACE_POLICY,
) -> np.ndarray | None:  # fmt: skip
    """The refreshed face gallery (n x 128), or ``None`` when the pass is not wide enough.

    Args:
        template: The current gallery; its first ``enrolled`` rows are the
            enrollment photos, the rest earlier refreshes (oldest first).
        enrolled: How many rows came from enrollment (never dropped).
        probe: The passing probe's embedding.
        distance: Its distance to the nearest gallery row.
        threshold: The match threshold it passed.
        policy: The bounds.
    """
    if distance > threshold - policy.margin:
        return None
    rows = np.atleast_2d(np.asarray(template, dtype=np.float64))
    base, refreshed = rows[:enrolled], list(rows[enrolled:])
    probe = np.asarray(probe, dtype=np.float64)
    # It must match every enrolled photo, not only the nearest one.
    if float(np.linalg.norm(base - probe[None, :], axis=1).max()) > threshold:
        return None
    refreshed = [*refreshed, probe][-policy.max_refreshed :]
    return np.vstack([base, *refreshed]).astype(np.float32)
