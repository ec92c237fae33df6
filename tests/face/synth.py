"""Synthetic video notes and presentation attacks, made from real photos at test time.

What the synthetic motion proves, honestly: :func:`motion_clip` warps the
region around the nose sideways (or upwards) while the eyes stay put, which is
what the 5-point landmark geometry sees when a real head turns (the nose base
is in front of the eye corners). It proves that the pipeline - decoding, frame
sampling, detection, pose, sequence checking, continuity and identity across
frames - works end to end on real faces. It does *not* prove how real heads,
real phones or real lighting behave; those need recorded clips.

The attack helpers imitate the naive presentation attacks of the issue: a JPEG
re-compression, rescaling, blur, a grey "print" and a phone-screen recapture
(moire, gamma, slight perspective) of the enrolled photo.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from PIL import Image, ImageFilter, ImageOps
from scipy.ndimage import map_coordinates

from biometrics.face.engine import detect_faces
from biometrics.face.pose import head_pose

CLIP_SIZE = 384
FPS = 10

#: Nose displacement (in inter-ocular distances) used for each synthetic motion:
#: positive x moves the nose to the image's right (the resident's left).
MOTION_SHIFT = {
    "turn_left": (0.35, 0.0),
    "turn_right": (-0.35, 0.0),
    "look_up": (0.0, -0.28),
}


def face_crop(rgb: np.ndarray, size: int = CLIP_SIZE, zoom: float = 2.2) -> np.ndarray:
    """A square crop around the (largest) face, resized to ``size`` - a video-note frame."""
    face = detect_faces(rgb, 1 if max(rgb.shape[:2]) <= 400 else 0)[0]
    left, top, right, bottom = face.box
    cx, cy, side = (left + right) / 2, (top + bottom) / 2, (right - left) * zoom
    box = (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
    return np.asarray(Image.fromarray(rgb).crop(box).resize((size, size), Image.Resampling.LANCZOS))


def warp_nose(rgb: np.ndarray, shift_x: float, shift_y: float) -> np.ndarray:
    """Move the nose region by ``(shift_x, shift_y)`` inter-ocular distances; eyes stay."""
    face = detect_faces(rgb, 0)[0]
    pose = head_pose(face.landmarks)
    nose = face.landmarks[4]
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    sigma = 0.55 * pose.iod
    g = np.exp(-((xx - nose[0]) ** 2 + (yy - (nose[1] - 0.3 * pose.iod)) ** 2) / (2 * sigma**2))
    src_x = xx - shift_x * pose.iod * g
    src_y = yy - shift_y * pose.iod * g
    return np.stack(
        [map_coordinates(rgb[..., c], [src_y, src_x], order=1, mode="nearest") for c in range(3)],
        axis=-1,
    ).astype(np.uint8)


def encode_clip(frames: Sequence[np.ndarray], fps: int = FPS, codec: str = "libx264") -> bytes:
    """Encode RGB frames as an MP4 (H.264, like a Telegram video note)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def stored_sideways(frames: Sequence[np.ndarray], fps: int = FPS) -> bytes:
    """An MP4 the way a phone held upright records it: pixels stored rotated 90 degrees
    counter-clockwise, with the track matrix telling players to turn them clockwise."""
    clip = encode_clip([np.ascontiguousarray(np.rot90(f, 1)) for f in frames], fps)
    # tkhd (version 0): the 3x3 display matrix starts 44 bytes after the box type.
    at = clip.index(b"tkhd") + 44
    clockwise = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    return clip[:at] + clockwise + clip[at + 36 :]


def _ramp(n: int) -> np.ndarray:
    return (1 - np.cos(np.linspace(0, np.pi, n))) / 2


def motion_frames(
    base: np.ndarray, motions: Sequence[str], fps: int = FPS, hold_s: float = 0.8
) -> list[np.ndarray]:
    """Frames of ``base`` doing ``motions`` in order, each out and back, after a still start."""
    frames = [base] * int(0.6 * fps)
    for motion in motions:
        sx, sy = MOTION_SHIFT[motion]
        ramp = list(_ramp(int(0.4 * fps)))
        amounts = ramp + [1.0] * int(hold_s * fps / 2) + ramp[::-1]
        for a in amounts:
            frames.append(warp_nose(base, sx * a, sy * a))
    frames += [base] * int(0.3 * fps)
    return frames


def motion_clip(base: np.ndarray, motions: Sequence[str], fps: int = FPS) -> bytes:
    """An MP4 of ``base`` performing ``motions`` (see :func:`motion_frames`)."""
    return encode_clip(motion_frames(base, motions, fps), fps)


def still_clip(base: np.ndarray, seconds: float = 3.0, fps: int = FPS, noise: float = 3.0) -> bytes:
    """A photo filmed without movement (sensor noise added so frames are not identical)."""
    rng = np.random.default_rng(0)
    frames = [
        np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
        for _ in range(int(seconds * fps))
    ]
    return encode_clip(frames, fps)


def waved_photo_clip(base: np.ndarray, seconds: float = 3.0, fps: int = FPS) -> bytes:
    """A flat photo moved in front of the camera: rotated, shifted and zoomed over time."""
    img = Image.fromarray(base)
    frames = []
    n = int(seconds * fps)
    for i in range(n):
        phase = 2 * np.pi * i / n
        angle = 12 * np.sin(phase)
        zoom = 1.0 + 0.12 * np.sin(2 * phase)
        moved = img.rotate(
            angle,
            resample=Image.Resampling.BILINEAR,
            translate=(20 * np.sin(phase), 10 * np.cos(phase)),
        )
        w, h = moved.size
        cw, ch = int(w / zoom), int(h / zoom)
        crop = moved.crop(((w - cw) // 2, (h - ch) // 2, (w + cw) // 2, (h + ch) // 2)).resize(
            (w, h)
        )
        frames.append(np.asarray(crop))
    return encode_clip(frames, fps)


def cut_clip(
    first: np.ndarray, second: np.ndarray, motions: Sequence[str], fps: int = FPS
) -> bytes:
    """A clip that starts on one face and cuts to another one performing ``motions``."""
    frames = [first] * int(1.0 * fps) + motion_frames(second, motions, fps)
    return encode_clip(frames, fps)


# --- presentation attacks on a still ------------------------------------------------------


def to_jpeg(img: Image.Image, quality: int = 90) -> bytes:
    """Encode an image as JPEG bytes."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def attack_variants(photo: bytes) -> dict[str, bytes]:
    """Naive presentation attacks built from the enrolled photo's bytes."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(photo))).convert("RGB")
    w, h = img.size
    half = img.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BILINEAR)
    grey = ImageOps.autocontrast(ImageOps.grayscale(img), cutoff=2).convert("RGB")
    print_like = Image.blend(grey, Image.new("RGB", img.size, (235, 230, 220)), 0.15)
    arr = np.asarray(img).astype(np.float64) / 255.0
    yy, xx = np.mgrid[0:h, 0:w]
    moire = 1.0 + 0.06 * np.sin(0.9 * xx + 0.35 * yy)[..., None]
    screen = np.clip((arr**0.8) * moire * np.array([0.95, 1.0, 1.08]), 0, 1)
    screen_img = Image.fromarray((screen * 255).astype(np.uint8))
    screen_img = screen_img.transform(
        img.size,
        Image.Transform.QUAD,
        (w * 0.03, h * 0.02, w * 0.01, h * 0.98, w * 0.99, h * 0.97, w * 0.96, h * 0.04),
        Image.Resampling.BILINEAR,
    ).filter(ImageFilter.GaussianBlur(0.8))
    return {
        "jpeg_q15": to_jpeg(img, 15),
        "rescaled_half": to_jpeg(half, 85),
        "blurred": to_jpeg(img.filter(ImageFilter.GaussianBlur(1.5)), 85),
        "grey_print": to_jpeg(print_like, 80),
        "screen_recapture": to_jpeg(screen_img, 80),
    }
