"""Reading untrusted photos safely into RGB arrays for face detection.

Photos come from residents' phones through chat channels, so anything can
arrive: HEIC files, PNGs with alpha, palette GIFs, rotated JPEGs whose pixels
are stored sideways with an EXIF ``Orientation`` tag, truncated uploads and
decompression bombs. :func:`load_image` turns what it can into an upright RGB
array no larger than the detection size and rejects the rest with a
:class:`~biometrics.face.errors.FaceError` whose code says why.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from biometrics.face.errors import FaceError
from biometrics.face.settings import FaceSettings, get_face_settings

#: Formats Pillow decodes that a phone or a chat client plausibly sends.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO"})

_ISO_BMFF_IMAGE_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_ISO_BMFF_AVIF_BRANDS = (b"avif", b"avis")


@dataclass(frozen=True)
class LoadedImage:
    """An upright RGB image ready for detection.

    Attributes:
        rgb: ``uint8`` array of shape ``(height, width, 3)``, long side at most
            the detection size.
        scale: Detection pixels per original pixel (``<= 1``), to express face
            sizes in the resolution the resident actually sent.
        original_size: ``(width, height)`` of the upright original.
    """

    rgb: np.ndarray
    scale: float
    original_size: tuple[int, int]


def _sniff_unsupported(head: bytes) -> FaceError | None:
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _ISO_BMFF_IMAGE_BRANDS:
            return FaceError(
                "unsupported_format",
                "HEIC/HEIF photos are not supported; please send the photo as JPEG "
                "(most phones convert it when sending as a photo rather than a file).",
            )
        if brand in _ISO_BMFF_AVIF_BRANDS:
            return FaceError("unsupported_format", "AVIF images are not supported; send a JPEG.")
        return FaceError("unsupported_format", "this is a video, not a photo")
    return None


def load_image(source: bytes | Path | str, settings: FaceSettings | None = None) -> LoadedImage:
    """Decode, validate, rotate upright and downscale an untrusted photo.

    Args:
        source: The file's bytes, or a path to it.
        settings: Size limits and the detection size; the process settings by default.

    Returns:
        The upright RGB image, downscaled so its long side is at most
        ``settings.detect_max_side``.

    Raises:
        FaceError: ``image_too_large`` (too many bytes or pixels),
            ``unsupported_format`` (HEIC, AVIF, video, SVG...), or
            ``corrupt_image`` (not an image, truncated, undecodable).
    """
    settings = settings or get_face_settings()
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise FaceError("corrupt_image", f"cannot read the file ({exc.strerror})") from None
        if size > settings.max_bytes:
            raise FaceError("image_too_large", _too_many_bytes(size, settings.max_bytes))
        data = path.read_bytes()
    else:
        data = bytes(source)
    if len(data) > settings.max_bytes:
        raise FaceError("image_too_large", _too_many_bytes(len(data), settings.max_bytes))
    if not data:
        raise FaceError("corrupt_image", "the file is empty")
    unsupported = _sniff_unsupported(data[:16])
    if unsupported is not None:
        raise unsupported

    # face_recognition (if anything imported it) flips this global on; a truncated
    # upload must be an error here, not a half-grey picture.
    previous_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _decode(data, settings)
    except FaceError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FaceError("image_too_large", "the image has too many pixels") from None
    except UnidentifiedImageError:
        raise FaceError("corrupt_image", "the file is not an image we can read") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        # Pillow reports truncated/broken data as OSError or SyntaxError.
        raise FaceError(
            "corrupt_image", f"the image is damaged or truncated ({_short(exc)})"
        ) from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous_truncated


def _decode(data: bytes, settings: FaceSettings) -> LoadedImage:
    with Image.open(io.BytesIO(data)) as im:
        if im.format not in ACCEPTED_FORMATS:
            raise FaceError("unsupported_format", f"{im.format or 'this'} images are not supported")
        width, height = im.size
        if width <= 0 or height <= 0:
            raise FaceError("corrupt_image", "the image has no pixels")
        if width * height > settings.max_pixels:
            raise FaceError(
                "image_too_large",
                f"the image has {width * height:,} pixels; "
                f"at most {settings.max_pixels:,} are accepted",
            )
        long_side = max(width, height)
        if im.format == "JPEG" and long_side > settings.detect_max_side:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still leaves
            # enough pixels: much faster than decoding full size and resizing.
            factor = settings.detect_max_side / long_side
            im.draft("RGB", (math.ceil(width * factor), math.ceil(height * factor)))
        im.load()
        upright = ImageOps.exif_transpose(im)
        orig_w, orig_h = (width, height) if upright.size == im.size else (height, width)
        rgb = _to_rgb(upright)
    if max(rgb.size) > settings.detect_max_side:
        rgb.thumbnail(
            (settings.detect_max_side, settings.detect_max_side), Image.Resampling.LANCZOS
        )
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise FaceError("corrupt_image", "the image could not be converted to colour pixels")
    return LoadedImage(
        rgb=np.ascontiguousarray(arr), scale=rgb.size[0] / orig_w, original_size=(orig_w, orig_h)
    )


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels become white, as a chat client would show them.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = float(arr.max()) or 1.0
        im = Image.fromarray((arr * (255.0 / peak)).astype(np.uint8), "L")
    return im.convert("RGB")


def _too_many_bytes(size: int, limit: int) -> str:
    return f"the file is {size / 1e6:.1f} MB; at most {limit / 1e6:.0f} MB is accepted"


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text[:120]
