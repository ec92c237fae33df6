"""Head pose from 5 landmarks: invariances and the direction of each movement."""

from __future__ import annotations

import numpy as np
import pytest

from biometrics.face.pose import head_pose

# dlib 5-point order: one eye's two corners, the other eye's two corners, nose base.
FRONTAL = np.array([[70.0, 100.0], [90.0, 100.0], [130.0, 100.0], [110.0, 100.0], [100.0, 130.0]])


def _transform(pts: np.ndarray, matrix: np.ndarray, shift: np.ndarray) -> np.ndarray:
    return pts @ matrix.T + shift


def test_frontal_face_has_centred_nose() -> None:
    pose = head_pose(FRONTAL)
    assert pose.yaw == pytest.approx(0.0)
    assert pose.pitch == pytest.approx(30 / 40)
    assert pose.iod == pytest.approx(40.0)


@pytest.mark.parametrize("angle", [-25.0, 10.0, 40.0])
@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_invariant_to_rotation_scale_and_shift(angle: float, scale: float) -> None:
    """Tilting the phone, moving closer or off-centre is not a head movement."""
    a = np.radians(angle)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = head_pose(_transform(FRONTAL, rot, np.array([33.0, -12.0])))
    assert moved.yaw == pytest.approx(0.0, abs=1e-9)
    assert moved.pitch == pytest.approx(0.75)
    assert moved.roll_deg == pytest.approx(angle)


def test_nose_moving_right_is_positive_yaw_and_up_is_smaller_pitch() -> None:
    turned = FRONTAL.copy()
    turned[4, 0] += 6
    up = FRONTAL.copy()
    up[4, 1] -= 6
    assert head_pose(turned).yaw == pytest.approx(6 / 40)
    assert head_pose(up).pitch == pytest.approx(24 / 40)


def test_eye_order_does_not_matter() -> None:
    swapped = FRONTAL[[2, 3, 0, 1, 4]]
    assert head_pose(swapped) == head_pose(FRONTAL)


def test_degenerate_landmarks_are_rejected() -> None:
    with pytest.raises(ValueError):
        head_pose(np.zeros((5, 2)))
    with pytest.raises(ValueError):
        head_pose(np.zeros((68, 2)))
