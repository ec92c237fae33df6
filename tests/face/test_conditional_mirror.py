"""The mirror pass runs only near a decision boundary, and never changes a decision."""

from __future__ import annotations

import numpy as np

from biometrics.face.engine import mirror_windows, needs_mirror
from biometrics.face.matching import best_distance
from biometrics.face.pool import observe_image
from biometrics.face.settings import FaceSettings


def test_needs_mirror_only_within_the_windows(settings: FaceSettings) -> None:
    windows = mirror_windows(settings)
    assert np.allclose(windows, ((0.40, 0.50), (0.10, 0.30)))
    assert needs_mirror(0.47, windows)
    assert needs_mirror(0.12, windows)
    assert needs_mirror(0.28, windows)  # a copy of the enrollment photo scores high single-pass
    assert not needs_mirror(0.35, windows)
    assert not needs_mirror(0.05, windows)
    assert not needs_mirror(0.80, windows)


def test_far_probes_take_one_pass_and_decide_as_the_mirror_averaged_one(  # type: ignore[no-untyped-def]
    photo, encodings, settings: FaceSettings
) -> None:
    boundaries = (settings.still_threshold, settings.replay_distance)
    windows = mirror_windows(settings)
    for enrolled, probe in (("obama", "obama2"), ("obama", "biden"), ("rose", "rose2")):
        template = encodings[enrolled][None, :]
        data = photo(probe).read_bytes()
        quick = observe_image(data, settings, template, windows)
        full = observe_image(data, settings)
        assert quick.encoding is not None and full.encoding is not None
        d_quick = best_distance(template, quick.encoding)
        d_full = best_distance(template, full.encoding)
        assert abs(d_quick - d_full) <= settings.mirror_band
        for b in boundaries:
            assert (d_quick <= b) == (d_full <= b)
        if quick.mirrored:
            assert np.allclose(quick.encoding, full.encoding)
        else:
            assert not needs_mirror(d_quick, windows)


def test_a_probe_near_the_boundary_gets_the_mirror_pass(  # type: ignore[no-untyped-def]
    photo, encodings, settings: FaceSettings
) -> None:
    template = encodings["obama"][None, :]
    data = photo("obama2").read_bytes()
    full = observe_image(data, settings)
    assert full.encoding is not None
    d = best_distance(template, full.encoding)
    # A boundary placed right at this probe's distance forces the second pass.
    near = observe_image(data, settings, template, ((d - 0.15, d + 0.15),))
    assert near.mirrored and near.encoding is not None
    assert np.allclose(near.encoding, full.encoding)
    far = observe_image(data, settings, template, ((d + 0.4, d + 0.6),))
    assert not far.mirrored


def test_a_batch_of_chips_encodes_as_one_by_one(photo, settings: FaceSettings) -> None:  # type: ignore[no-untyped-def]
    """Video frames are encoded in one ResNet batch: the same vectors, only cheaper.

    The same up to float32 rounding: OpenBLAS sums a batch's products in another
    order than a single chip's (about 1e-7 here, against thresholds near 0.5).
    """
    from biometrics.face.engine import analyze, encode_chip, encode_chips, face_chip
    from biometrics.face.images import load_image

    chips = []
    for name in ("obama", "biden"):
        image = load_image(photo(name).read_bytes(), settings)
        chips.append(face_chip(image.rgb, analyze(image, settings, encode_face=False).face))
    batch = encode_chips(chips)
    assert len(batch) == 2
    for chip, vector in zip(chips, batch, strict=True):
        assert np.allclose(vector, encode_chip(chip), rtol=0, atol=1e-6)
    assert encode_chips([]) == []
