"""Enrollment from a video note: a small gallery of quality-checked, near-frontal frames."""

from __future__ import annotations

import numpy as np
import pytest

from biometrics.face.matching import best_distance
from biometrics.face.service import EnrollmentError, enroll_from_video
from biometrics.face.settings import FaceSettings
from biometrics.store import TemplateStore
from tests.face import synth


def test_a_video_note_enrolls_a_gallery_that_matches_other_photos(  # type: ignore[no-untyped-def]
    store: TemplateStore, clips, encodings, settings: FaceSettings
) -> None:
    result = enroll_from_video(store, "r1", clips["obama_left_up"], actor="test", settings=settings)
    assert result.samples == 3
    template = store.load("r1", "face")
    assert template is not None and template.shape == (3, 128)
    assert best_distance(template, encodings["obama2"]) <= settings.threshold
    assert best_distance(template, encodings["biden"]) > settings.threshold
    assert [e["action"] for e in store.audit_trail("r1")] == ["enroll"]


def test_a_clip_cutting_between_two_people_is_not_enrolled(  # type: ignore[no-untyped-def]
    store: TemplateStore, video_bases, settings: FaceSettings
) -> None:
    # Half the clip each: the sharpest frontal frames come from both people.
    clip = synth.encode_clip([video_bases["obama"]] * 12 + [video_bases["biden"]] * 12, synth.FPS)
    with pytest.raises(EnrollmentError) as err:
        enroll_from_video(store, "r2", clip, actor="test", settings=settings, frames=4)
    assert err.value.code == "inconsistent_photos"
    assert not store.is_enrolled("r2", "face")


def test_a_dark_clip_is_refused_with_a_reason(  # type: ignore[no-untyped-def]
    store: TemplateStore, video_bases, settings: FaceSettings
) -> None:
    dark = (video_bases["obama"].astype(np.float64) * 0.1).astype(np.uint8)
    with pytest.raises(EnrollmentError) as err:
        enroll_from_video(store, "r3", synth.encode_clip([dark] * 18, synth.FPS), actor="t")
    assert err.value.code == "no_face"
    assert "too_dark" in err.value.message or "no_face" in err.value.message


def test_selfies_sent_earlier_join_the_clip_gallery_if_they_show_its_person(  # type: ignore[no-untyped-def]
    store: TemplateStore, clips, photo, encodings, settings: FaceSettings
) -> None:
    earlier = [photo("obama2").read_bytes(), photo("biden").read_bytes(), b"not an image"]
    result = enroll_from_video(
        store, "r4", clips["obama_left_up"], actor="test", settings=settings, photos=earlier
    )
    # The clip's 3 frames and the other Obama photo; Biden and the broken file are left out.
    assert (result.samples, result.photos_merged, result.photos_left_out) == (4, 1, 2)
    template = store.load("r4", "face")
    assert template is not None and template.shape == (4, 128)
    assert best_distance(template, encodings["biden"]) > settings.threshold
    assert store.enrolled_samples("r4", "face") == 4
