"""Reading untrusted photos: formats, rotation, alpha, and every way a file can be bad."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from biometrics.face.engine import analyze
from biometrics.face.errors import FaceError
from biometrics.face.images import load_image
from biometrics.face.settings import FaceSettings


def _jpeg(img: Image.Image, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, **kwargs)
    return buf.getvalue()


def test_downscales_to_detection_size_and_keeps_scale(photo, settings: FaceSettings) -> None:
    img = load_image(photo("obama"), settings)  # 910 x 1137
    assert max(img.rgb.shape[:2]) == settings.detect_max_side
    assert img.original_size == (910, 1137)
    assert img.scale == pytest.approx(img.rgb.shape[1] / 910)
    assert img.rgb.dtype == np.uint8 and img.rgb.shape[2] == 3


@pytest.mark.parametrize(
    ("orientation", "transpose"),
    [
        (6, Image.Transpose.ROTATE_90),
        (8, Image.Transpose.ROTATE_270),
        (3, Image.Transpose.ROTATE_180),
    ],
)
def test_exif_orientation_is_applied(
    photo, settings: FaceSettings, orientation: int, transpose: Image.Transpose
) -> None:
    """A phone stores pixels sideways plus an Orientation tag; we must rotate them back."""
    upright = Image.open(photo("obama")).convert("RGB")
    stored = upright.transpose(transpose)  # the pixels as the camera wrote them
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _jpeg(stored, exif=exif.tobytes())

    img = load_image(data, settings)
    assert img.original_size == upright.size
    obs = analyze(img, settings)
    plain = analyze(load_image(_jpeg(upright), settings), settings)
    assert obs.encoding is not None and plain.encoding is not None
    assert np.linalg.norm(obs.encoding - plain.encoding) < 0.1


def test_sideways_photo_without_exif_tag_finds_no_face(photo, settings: FaceSettings) -> None:
    """Control for the test above: the rotation is what makes the face findable."""
    stored = Image.open(photo("obama")).convert("RGB").transpose(Image.Transpose.ROTATE_90)
    with pytest.raises(FaceError) as err:
        analyze(load_image(_jpeg(stored), settings), settings)
    assert err.value.code == "no_face"


def test_png_with_alpha_becomes_rgb_on_white(photo, settings: FaceSettings) -> None:
    img = load_image(photo("lacamoire_png"), settings)  # a real RGBA PNG
    assert img.rgb.shape[2] == 3
    assert analyze(img, settings).encoding is not None

    rgba = Image.new("RGBA", (64, 64), (10, 200, 30, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black pixel
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    arr = load_image(buf.getvalue(), settings).rgb
    assert tuple(arr[0, 0]) == (255, 255, 255)
    assert tuple(arr[5, 5]) == (10, 200, 30)


def test_palette_gif_is_converted(settings: FaceSettings) -> None:
    buf = io.BytesIO()
    Image.new("P", (40, 30), 3).save(buf, "GIF")
    assert load_image(buf.getvalue(), settings).rgb.shape == (30, 40, 3)


def test_heic_is_refused_with_a_clear_message(settings: FaceSettings) -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(FaceError) as err:
        load_image(heic, settings)
    assert err.value.code == "unsupported_format"
    assert "HEIC" in err.value.message


def test_video_sent_as_photo_is_refused(settings: FaceSettings) -> None:
    with pytest.raises(FaceError) as err:
        load_image(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 32, settings)
    assert err.value.code == "unsupported_format"


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\xff\xd8\xff\xe0garbage" * 10])
def test_corrupt_bytes(settings: FaceSettings, data: bytes) -> None:
    with pytest.raises(FaceError) as err:
        load_image(data, settings)
    assert err.value.code == "corrupt_image"


@pytest.mark.parametrize("fraction", [0.3, 0.7])
def test_truncated_jpeg_is_corrupt_not_half_grey(
    photo, settings: FaceSettings, fraction: float
) -> None:
    data = Path(photo("obama")).read_bytes()
    with pytest.raises(FaceError) as err:
        load_image(data[: int(len(data) * fraction)], settings)
    assert err.value.code == "corrupt_image"


def test_truncated_file_stays_corrupt_even_if_face_recognition_was_imported(
    photo, settings: FaceSettings
) -> None:
    """face_recognition switches Pillow to accept truncated files process-wide; we undo that."""
    from PIL import ImageFile

    data = Path(photo("obama")).read_bytes()
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(FaceError) as err:
            load_image(data[: len(data) // 2], settings)
        assert err.value.code == "corrupt_image"
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for whoever set it
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def test_decompression_bomb_is_refused_before_decoding(settings: FaceSettings) -> None:
    buf = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buf, "PNG")  # 144 Mpx in a few kB
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(FaceError) as err:
        load_image(buf.getvalue(), settings)
    assert err.value.code == "image_too_large"


def test_too_many_bytes(photo, settings: FaceSettings, tmp_path: Path) -> None:
    tight = FaceSettings(max_bytes=10_000)
    with pytest.raises(FaceError) as err:
        load_image(photo("obama"), tight)
    assert err.value.code == "image_too_large"
    with pytest.raises(FaceError) as err:
        load_image(Path(photo("obama")).read_bytes(), tight)
    assert err.value.code == "image_too_large"


def test_missing_file(settings: FaceSettings, tmp_path: Path) -> None:
    with pytest.raises(FaceError) as err:
        load_image(tmp_path / "nope.jpg", settings)
    assert err.value.code == "corrupt_image"
