"""Head pose from the 5 dlib landmarks (two corners of each eye, base of the nose).

The 5-point model gives no eyelids, so blinks cannot be seen; it does give a
triangle (left eye, right eye, nose) whose shape changes when the head turns:

* **yaw** (turning left or right): the nose base sits in front of the eyes, so
  when the head turns it moves sideways relative to the midpoint of the eyes.
  We measure that offset along the eye line, divided by the inter-ocular
  distance: about ``0.35 * tan(yaw)``, so a 20 degree turn moves it by ~0.13.
* **pitch** (looking up): the nose base moves up towards the eye line, so the
  offset perpendicular to the eye line (also divided by the inter-ocular
  distance) shrinks, by ~0.15 for a 20 degree tilt. Looking *down* changes it
  much less (foreshortening and the forward nose cancel out), so we do not ask
  for it.

Both values are unchanged by in-plane rotation, scaling and moving the face, so
tilting the phone or walking closer is not mistaken for a head movement; and
they are unchanged by any *affine* warp of the image, which is what moving a
flat printed photo in front of the camera mostly produces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HeadPose:
    """Head-pose features of one face.

    Attributes:
        yaw: Nose offset along the eye line, in inter-ocular distances; grows
            when the nose moves towards the *image's* right.
        pitch: Nose offset below the eye line, in inter-ocular distances;
            shrinks when the head tilts back (looks up).
        roll_deg: In-plane rotation of the eye line, degrees.
        iod: Inter-ocular distance in pixels (eye centre to eye centre).
    """

    yaw: float
    pitch: float
    roll_deg: float
    iod: float


def head_pose(landmarks: np.ndarray) -> HeadPose:
    """Compute :class:`HeadPose` from a ``(5, 2)`` array of dlib 5-point landmarks.

    dlib's order is: two corners of one eye (points 0, 1), two corners of the
    other (2, 3), nose base (4). We sort the eyes by ``x`` so the result does
    not depend on that order.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (5, 2):
        raise ValueError("expected 5 landmarks of (x, y)")
    eye_a = pts[0:2].mean(axis=0)
    eye_b = pts[2:4].mean(axis=0)
    left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    axis = right - left
    iod = float(np.hypot(*axis))
    if iod < 1e-6:
        raise ValueError("degenerate landmarks")
    u = axis / iod
    v = np.array([-u[1], u[0]])  # perpendicular, pointing down the face
    offset = pts[4] - (left + right) / 2.0
    return HeadPose(
        yaw=float(offset @ u) / iod,
        pitch=float(offset @ v) / iod,
        roll_deg=float(np.degrees(np.arctan2(u[1], u[0]))),
        iod=iod,
    )
