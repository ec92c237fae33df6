"""Probe-time quality gates: a dark, blurred or tiny face is refused with a reason, not scored."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageFilter

from biometrics.face.engine import brightness, face_chip
from biometrics.face.errors import FaceError
from biometrics.face.images import load_image
from biometrics.face.service import enroll, observe
from biometrics.face.settings import FaceSettings
from biometrics.face.verifier import FaceVerifier
from biometrics.store import TemplateStore
from verification import Decision, Evidence


def _jpeg(path: Path, change) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    change(Image.open(path).convert("RGB")).save(out, "JPEG", quality=92)
    return out.getvalue()


def _dark(im: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(im).enhance(0.12)


def _blurred(im: Image.Image) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(6))


def _tiny(im: Image.Image) -> Image.Image:
    return im.resize((im.width // 6, im.height // 6))


@pytest.mark.parametrize(
    ("change", "code"), [(_dark, "too_dark"), (_blurred, "too_blurry"), (_tiny, "face_too_small")]
)
def test_degraded_probes_are_refused_with_a_code_and_a_hint(  # type: ignore[no-untyped-def]
    photo, settings: FaceSettings, change, code: str
) -> None:
    with pytest.raises(FaceError) as err:
        observe(_jpeg(photo("obama"), change), settings)
    assert err.value.code == code
    assert "try again" in err.value.message or "move closer" in err.value.message


def test_the_dark_gate_is_far_below_every_real_test_photo(photo, settings: FaceSettings) -> None:  # type: ignore[no-untyped-def]
    from biometrics.face.engine import detect_faces

    for name in ("obama", "obama2", "biden", "rose", "rose2", "adams", "biden2"):
        image = load_image(photo(name), settings)
        faces = detect_faces(image.rgb, 1 if max(image.rgb.shape[:2]) <= 400 else 0)
        value = brightness(face_chip(image.rgb, faces[0]))
        assert value > 2 * settings.min_brightness, (name, value)


def test_the_verifier_asks_again_instead_of_rejecting_a_dark_selfie(  # type: ignore[no-untyped-def]
    store: TemplateStore, executor, photo, settings: FaceSettings
) -> None:
    enroll(store, "r1", [photo("obama")], actor="test", settings=settings)
    verifier = FaceVerifier(store, settings=settings, executor=executor)

    async def attempt():  # type: ignore[no-untyped-def]
        challenge = await verifier.start("r1")
        data = _jpeg(photo("obama2"), _dark)
        return await verifier.verify("r1", challenge, Evidence("image", data, "image/jpeg"))

    result = asyncio.run(attempt())
    assert result.decision is Decision.RETRY and result.reason == "too_dark"
    assert result.score is None
