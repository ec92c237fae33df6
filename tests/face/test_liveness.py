"""Video-note liveness on clips synthesised from real photos at test time.

See ``tests/face/synth.py`` for what synthetic motion does and does not prove.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from biometrics.face.errors import FaceError
from biometrics.face.liveness import Motion, check_liveness, motion_seen, random_motions
from biometrics.face.pose import HeadPose
from biometrics.face.settings import FaceSettings
from biometrics.face.video import FrameSample, analyze_video, decode_frames
from tests.face import synth

LEFT_UP = [Motion.TURN_LEFT, Motion.LOOK_UP]


@pytest.fixture(scope="module")
def analysed(clips, settings: FaceSettings):  # type: ignore[no-untyped-def]
    return {name: analyze_video(data, settings) for name, data in clips.items()}


def _tmpl(encodings, name: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    return encodings[name][None, :]


def test_live_clip_with_the_challenged_motion_passes(analysed, encodings, settings) -> None:  # type: ignore[no-untyped-def]
    result = check_liveness(analysed["obama_left_up"], LEFT_UP, _tmpl(encodings, "obama"), settings)
    assert result.passed, result
    assert result.reason == "match"
    assert result.distance is not None and result.distance <= settings.threshold
    assert result.details["encoded_frames"] >= 5


def test_other_person_and_other_motions_pass(analysed, encodings, settings) -> None:  # type: ignore[no-untyped-def]
    result = check_liveness(
        analysed["rose_right_left"],
        [Motion.TURN_RIGHT, Motion.TURN_LEFT],
        _tmpl(encodings, "rose2"),  # enrolled from a different photo than the clip
        settings,
    )
    assert result.passed, result


def test_motions_in_the_wrong_order_fail(analysed, encodings, settings) -> None:  # type: ignore[no-untyped-def]
    result = check_liveness(
        analysed["obama_left_up"],
        [Motion.LOOK_UP, Motion.TURN_LEFT],
        _tmpl(encodings, "obama"),
        settings,
    )
    assert not result.live and result.reason == "motion_not_seen"


def test_wrong_direction_fails(analysed, encodings, settings) -> None:  # type: ignore[no-untyped-def]
    result = check_liveness(
        analysed["obama_left_up"], [Motion.TURN_RIGHT], _tmpl(encodings, "obama"), settings
    )
    assert not result.live and result.details["missing_motion"] == "turn_right"


def test_mirrored_channel_flips_left_and_right(analysed, encodings) -> None:  # type: ignore[no-untyped-def]
    mirrored = FaceSettings(video_mirrored=True)
    tmpl = _tmpl(encodings, "obama")
    assert check_liveness(
        analysed["obama_left_up"], [Motion.TURN_RIGHT, Motion.LOOK_UP], tmpl, mirrored
    ).passed
    assert not check_liveness(analysed["obama_left_up"], LEFT_UP, tmpl, mirrored).passed


def test_still_photo_turned_into_a_clip_fails(analysed, encodings, settings) -> None:  # type: ignore[no-untyped-def]
    result = check_liveness(analysed["obama_still"], LEFT_UP, _tmpl(encodings, "obama"), settings)
    assert not result.passed
    assert result.reason == "motion_not_seen"
    assert result.distance is not None and result.distance < settings.threshold  # it IS the face


def test_photo_waved_in_front_of_the_camera_fails(analysed, encodings, settings) -> None:  # type: ignore[no-untyped-def]
    """Rotating, shifting and zooming a flat photo does not change the landmark geometry."""
    for motions in ([Motion.TURN_LEFT], [Motion.TURN_RIGHT], [Motion.LOOK_UP]):
        result = check_liveness(
            analysed["obama_waved"], motions, _tmpl(encodings, "obama"), settings
        )
        assert result.reason == "motion_not_seen", (motions, result)


def test_other_person_doing_the_motion_is_live_but_no_match(analysed, encodings, settings) -> None:  # type: ignore[no-untyped-def]
    result = check_liveness(analysed["biden_left_up"], LEFT_UP, _tmpl(encodings, "obama"), settings)
    assert result.live and not result.match
    assert result.reason == "no_match"


def test_clip_cutting_between_two_people_fails(analysed, encodings, settings) -> None:  # type: ignore[no-untyped-def]
    """The resident's photo at the start, then someone else performs the movement."""
    for enrolled in ("obama", "biden"):
        result = check_liveness(
            analysed["obama_cut_to_biden"], LEFT_UP, _tmpl(encodings, enrolled), settings
        )
        assert not result.passed
        assert result.reason == "discontinuous", result


def test_phone_recording_stored_sideways_is_upright(video_bases, encodings, settings) -> None:  # type: ignore[no-untyped-def]
    """Phones store portrait video sideways plus a display rotation; HOG needs upright faces."""
    upright = synth.motion_frames(video_bases["obama"], ["turn_left", "look_up"])
    clip = synth.stored_sideways(upright)
    _, frames = decode_frames(clip, settings)
    first = frames[0][1].astype(int)
    assert np.abs(first - upright[0].astype(int)).mean() < 20  # as recorded, not as stored
    assert np.abs(first - np.rot90(upright[0], 1).astype(int)).mean() > 40
    analysis = analyze_video(clip, settings)
    result = check_liveness(analysis, LEFT_UP, _tmpl(encodings, "obama"), settings)
    assert result.passed, result


def test_corrupt_and_truncated_video(clips, settings: FaceSettings) -> None:
    for data in (b"", b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 500, clips["obama_left_up"][:1500]):
        with pytest.raises(FaceError) as err:
            decode_frames(data, settings)
        assert err.value.code == "corrupt_video"


def test_too_long_video_is_refused(clips) -> None:
    with pytest.raises(FaceError) as err:
        decode_frames(clips["obama_left_up"], FaceSettings(max_video_s=1.0))
    assert err.value.code == "video_too_long"


def test_frames_are_sampled_at_the_configured_rate(clips, settings: FaceSettings) -> None:
    duration, frames = decode_frames(clips["obama_still"], settings)
    assert duration == pytest.approx(3.0, abs=0.2)
    times = [t for t, _ in frames]
    assert len(frames) == pytest.approx(duration * settings.sample_fps, abs=2)
    assert all(b > a for a, b in itertools.pairwise(times))


# --- the decision logic on hand-made pose tracks (no video needed) ---------------------------


def _track(yaws: list[float], pitches: list[float] | None = None) -> list[FrameSample]:
    pitches = pitches or [0.75] * len(yaws)
    return [
        FrameSample(t=i / 6, faces=1, box=(100, 100, 200, 200), pose=HeadPose(y, p, 0.0, 50.0))
        for i, (y, p) in enumerate(zip(yaws, pitches, strict=True))
    ]


def test_motion_needs_the_baseline_then_the_movement(settings: FaceSettings) -> None:
    left = _track([0, 0, 0, 0.05, 0.12, 0.15, 0.05, 0])
    assert motion_seen(left, [Motion.TURN_LEFT], settings)[0]
    assert not motion_seen(left, [Motion.TURN_RIGHT], settings)[0]
    small = _track([0, 0, 0, 0.04, 0.06, 0.05, 0])  # a nod, not a turn
    assert not motion_seen(small, [Motion.TURN_LEFT], settings)[0]
    up = _track([0] * 7, [0.75, 0.75, 0.75, 0.7, 0.6, 0.62, 0.75])
    assert motion_seen(up, [Motion.LOOK_UP], settings)[0]


def test_sequence_must_happen_in_order(settings: FaceSettings) -> None:
    track = _track([0, 0, 0, 0, 0, 0, 0.15, 0.15], [0.75, 0.75, 0.75, 0.6, 0.6, 0.75, 0.75, 0.75])
    assert motion_seen(track, [Motion.LOOK_UP, Motion.TURN_LEFT], settings)[0]
    assert not motion_seen(track, [Motion.TURN_LEFT, Motion.LOOK_UP], settings)[0]


def test_random_motions_vary_and_never_repeat_back_to_back() -> None:
    seqs = {random_motions(2) for _ in range(200)}
    assert len(seqs) == 6  # every ordered pair of distinct motions
    assert all(a is not b for a, b in seqs)
