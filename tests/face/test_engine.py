"""Detection, quality gates and embeddings on real photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from biometrics.face.engine import analyze, detect_faces
from biometrics.face.errors import FaceError
from biometrics.face.images import load_image
from biometrics.face.matching import best_distance
from biometrics.face.settings import FaceSettings


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=92)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("a", "b"),
    [("obama", "obama2"), ("obama", "obama_oval"), ("biden", "biden2"), ("rose", "rose2")],
)
def test_genuine_pairs_match(encodings, settings: FaceSettings, a: str, b: str) -> None:
    assert best_distance(encodings[a][None, :], encodings[b]) <= settings.threshold


@pytest.mark.parametrize(
    ("a", "b"), [("obama", "biden"), ("obama2", "biden2"), ("rose", "adams"), ("obama", "rose")]
)
def test_impostor_pairs_do_not_match(encodings, settings: FaceSettings, a: str, b: str) -> None:
    assert best_distance(encodings[a][None, :], encodings[b]) > settings.threshold


def test_nearest_enrolled_photo_decides(encodings) -> None:
    template = np.vstack([encodings["biden"], encodings["obama"]])
    assert best_distance(template, encodings["obama2"]) == pytest.approx(
        float(np.linalg.norm(encodings["obama"] - encodings["obama2"]))
    )


@pytest.mark.parametrize("name", ["two_people", "kit_with_rose"])
def test_group_photo_is_multiple_faces(photo, settings: FaceSettings, name: str) -> None:
    with pytest.raises(FaceError) as err:
        analyze(load_image(photo(name), settings), settings)
    assert err.value.code == "multiple_faces"


def test_background_without_a_face(photo, settings: FaceSettings) -> None:
    background = Image.open(photo("obama")).crop((0, 0, 200, 250))  # curtain and window
    with pytest.raises(FaceError) as err:
        analyze(load_image(_jpeg(background), settings), settings)
    assert err.value.code == "no_face"


def test_synthetic_image_without_a_face(settings: FaceSettings) -> None:
    noise = np.random.default_rng(3).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    with pytest.raises(FaceError) as err:
        analyze(load_image(_jpeg(Image.fromarray(noise)), settings), settings)
    assert err.value.code == "no_face"


def test_tiny_face_is_too_small(photo, settings: FaceSettings) -> None:
    src = Image.open(photo("obama")).convert("RGB")
    canvas = Image.new("RGB", (300, 300), (120, 130, 140))
    canvas.paste(src.resize((100, round(100 * src.size[1] / src.size[0]))), (100, 80))
    img = load_image(_jpeg(canvas), settings)
    assert analyze(img, settings, check_quality=False).face_px < settings.min_face_px
    with pytest.raises(FaceError) as err:
        analyze(img, settings)
    assert err.value.code == "face_too_small"


def test_heavily_blurred_face_is_refused(photo, settings: FaceSettings) -> None:
    blurred = Image.open(photo("obama")).filter(ImageFilter.GaussianBlur(6))
    img = load_image(_jpeg(blurred), settings)
    obs = analyze(img, settings, check_quality=False)  # still detectable...
    assert obs.sharpness < settings.min_sharpness
    with pytest.raises(FaceError) as err:  # ...but too blurred to trust
        analyze(img, settings)
    assert err.value.code == "too_blurry"


def test_sharp_photo_passes_the_blur_gate(photo, settings: FaceSettings) -> None:
    assert (
        analyze(load_image(photo("obama"), settings), settings).sharpness
        > 10 * settings.min_sharpness
    )


def test_upsampling_finds_smaller_faces(photo, settings: FaceSettings) -> None:
    small = Image.open(photo("obama")).convert("RGB").resize((182, 227))
    rgb = np.asarray(small)
    assert len(detect_faces(rgb, 1)) == 1
    assert len(detect_faces(rgb, 1)) >= len(detect_faces(rgb, 0))


def test_observation_repr_hides_the_embedding(photo, settings: FaceSettings) -> None:
    obs = analyze(load_image(photo("obama"), settings), settings)
    assert obs.encoding is not None
    text = repr(obs)
    assert f"{obs.encoding[0]:.4f}"[:6] not in text and "encoded=True" in text
