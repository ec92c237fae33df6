"""Enrollment, deletion and offline comparison: the service layer of face biometrics.

Plain functions over a :class:`~biometrics.store.TemplateStore`; the CLI, the
console and the dialogue's enrollment flow call these. Templates go only into
the store (encrypted, audited) and are never returned or logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from billtalk.logs import get_logger
from biometrics.face.engine import FaceObservation, analyze
from biometrics.face.errors import FaceError, FaceErrorCode
from biometrics.face.images import load_image
from biometrics.face.matching import best_distance
from biometrics.face.settings import FaceSettings, get_face_settings
from biometrics.store import TemplateStore

KIND = "face"
MAX_ENROLL_PHOTOS = 5
log = get_logger("biometrics.face")


class EnrollmentError(FaceError):
    """A photo of an enrollment batch was unusable; ``index`` says which (0-based)."""

    def __init__(self, code: FaceErrorCode, message: str, index: int | None = None) -> None:
        super().__init__(code, message)
        self.index = index

    def __reduce__(self) -> tuple[type[EnrollmentError], tuple[str, str, int | None]]:  # type: ignore[override]
        return (type(self), (self.code, self.message, self.index))


@dataclass(frozen=True)
class Enrollment:
    """The outcome of an enrollment: counts and quality numbers only.

    Attributes:
        resident_id: Who was enrolled.
        samples: How many photos make up the template.
        max_pair_distance: The largest distance between two of the photos
            (0 for one photo); a consistency check, not a template.
        photos_merged: Video enrollment: selfies sent earlier in the same step
            that joined the gallery.
        photos_left_out: Video enrollment: earlier selfies left out (unusable,
            or not the person of the clip).
    """

    resident_id: str
    samples: int
    max_pair_distance: float
    photos_merged: int = 0
    photos_left_out: int = 0


def observe(source: bytes | Path | str, settings: FaceSettings | None = None) -> FaceObservation:
    """Load a photo and observe its single face (quality gates on, embedding computed)."""
    settings = settings or get_face_settings()
    return analyze(load_image(source, settings), settings)


def enroll(
    store: TemplateStore,
    resident_id: str,
    photos: Sequence[bytes | Path | str],
    *,
    actor: str,
    settings: FaceSettings | None = None,
) -> Enrollment:
    """Enroll (or re-enroll) a resident's face from 1-5 photos.

    Every photo must pass the quality gates (one face, big enough, sharp), and
    all photos must show the same person (each pair within ``threshold``), so
    that a wrong photo in the batch cannot widen who matches. The previous
    template, if any, is replaced. The store audits the enrollment.

    Args:
        store: Where the encrypted template goes.
        resident_id: The resident being enrolled.
        photos: 1 to 5 photos (bytes or paths).
        actor: Who performed it, for the audit trail (``"staff:alice"``,
            ``"resident:<id>"``).
        settings: Face settings; the process settings by default.

    Raises:
        EnrollmentError: A photo is unusable (its ``index`` and code say which
            and why), the photos disagree (``inconsistent_photos``), or there
            are not 1-5 photos (``bad_request``).
    """
    settings = settings or get_face_settings()
    if not 1 <= len(photos) <= MAX_ENROLL_PHOTOS:
        raise EnrollmentError("bad_request", f"enroll with 1 to {MAX_ENROLL_PHOTOS} photos")
    vectors = []
    for i, photo in enumerate(photos):
        try:
            obs = observe(photo, settings)
        except FaceError as exc:
            raise EnrollmentError(exc.code, f"photo {i + 1}: {exc.message}", i) from None
        assert obs.encoding is not None
        vectors.append(obs.encoding)
    template = np.vstack(vectors)
    worst = 0.0
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            worst = max(worst, best_distance(template[i : i + 1], template[j]))
    if worst > settings.threshold:
        raise EnrollmentError(
            "inconsistent_photos",
            "the photos do not all show the same person; use your own photos only",
        )
    store.save(resident_id, KIND, template, actor=actor)
    log.info("face_enrolled", resident_id=resident_id, samples=len(vectors), actor=actor)
    return Enrollment(resident_id, len(vectors), round(worst, 4))


#: Enrollment frames taken from a video note, and how frontal they must be (|yaw|, |pitch|
#: change from the clip's median, inter-ocular units; a 20-degree turn is ~0.13).
VIDEO_ENROLL_FRAMES = 3
#: Frontal frames spread over an enrollment clip that must all show the gallery's person.
CONSISTENCY_FRAMES = 6
FRONTAL_YAW = 0.06


def enroll_from_video(
    store: TemplateStore,
    resident_id: str,
    data: bytes,
    *,
    actor: str,
    settings: FaceSettings | None = None,
    frames: int = VIDEO_ENROLL_FRAMES,
    photos: Sequence[bytes | Path | str] = (),
) -> Enrollment:
    """Enroll a resident's face from a video note: a small gallery of its best frames.

    Every sampled frame goes through the same quality gates as a photo
    (exactly one face, big enough, bright enough, sharp). Of the frames that
    pass, the near-frontal ones (head yaw within ``FRONTAL_YAW`` of the clip's
    median) are ranked by sharpness and up to ``frames`` of them, at least half
    a second apart, become the gallery (nearest decides at verification, as
    with several photos). Frames of one clip must agree (each pair within the
    threshold, the gallery's frames and ``CONSISTENCY_FRAMES`` frontal frames
    spread over the clip), so a clip that cuts to another person enrolls no one.

    ``photos`` are selfies the resident sent earlier in the same enrollment
    step (at most ``MAX_ENROLL_PHOTOS``). Each goes through the photo quality
    gates again and joins the gallery only if it is within the threshold of
    *every* frame kept from the clip (the clip's person, never a second one);
    the others are left out and counted. They add views the clip may lack
    (other light, another day) without widening who matches.

    Raises:
        EnrollmentError: ``corrupt_video`` / ``video_too_long`` (from decoding),
            ``no_face`` when fewer than two usable frames were found (the code
            of the most common refusal is in the message), or
            ``inconsistent_photos``.
    """
    from biometrics.face.images import LoadedImage
    from biometrics.face.pose import head_pose
    from biometrics.face.video import decode_frames

    settings = settings or get_face_settings()
    try:
        _, decoded = decode_frames(data, settings)
    except FaceError as exc:
        raise EnrollmentError(exc.code, exc.message) from None
    usable: list[tuple[float, float, float, FaceObservation, np.ndarray]] = []
    refused: dict[str, int] = {}
    for t, rgb in decoded:
        image = LoadedImage(rgb, 1.0, (rgb.shape[1], rgb.shape[0]))
        try:
            obs = analyze(image, settings, encode_face=False)
        except FaceError as exc:
            refused[exc.code] = refused.get(exc.code, 0) + 1
            continue
        usable.append((t, head_pose(obs.face.landmarks).yaw, obs.sharpness, obs, rgb))
    if len(usable) < 2:
        worst = max(refused, key=lambda k: refused[k]) if refused else "no_face"
        raise EnrollmentError(
            "no_face",
            f"too few clear frames of one face ({worst}); film your face in good light, "
            "holding the phone still, and try again",
        )
    median_yaw = float(np.median([u[1] for u in usable]))
    frontal = [u for u in usable if abs(u[1] - median_yaw) <= FRONTAL_YAW] or usable
    chosen: list[tuple[float, float, float, FaceObservation, np.ndarray]] = []
    for u in sorted(frontal, key=lambda u: -u[2]):
        if all(abs(u[0] - c[0]) >= 0.5 for c in chosen):
            chosen.append(u)
        if len(chosen) == frames:
            break
    from biometrics.face.engine import encode_chips, encode_plain, face_chip

    vectors = encode_chips(
        [face_chip(rgb, obs.face) for _, _, _, obs, rgb in sorted(chosen, key=lambda c: c[0])]
    )
    template = np.vstack(vectors)
    # The whole clip must show one person, not only the frames kept: a few more frontal
    # frames spread over the clip (one ResNet pass each) are compared too.
    spread = np.unique(np.linspace(0, len(frontal) - 1, min(CONSISTENCY_FRAMES, len(frontal))))
    checked = [*vectors]
    for i in spread.round().astype(int):
        _, _, _, obs, rgb = frontal[int(i)]
        checked.append(encode_plain(face_chip(rgb, obs.face)))
    worst_pair = max(
        (
            float(np.linalg.norm(checked[i] - checked[j]))
            for i in range(len(checked))
            for j in range(i + 1, len(checked))
        ),
        default=0.0,
    )
    if worst_pair > settings.threshold:
        raise EnrollmentError(
            "inconsistent_photos", "the video shows more than one person; film only your face"
        )
    merged, left_out = _matching_selfies(photos[:MAX_ENROLL_PHOTOS], template, settings)
    left_out += max(0, len(photos) - MAX_ENROLL_PHOTOS)
    if merged:
        template = np.vstack([template, *merged])
    store.save(resident_id, KIND, template, actor=actor)
    log.info(
        "face_enrolled",
        resident_id=resident_id,
        samples=len(template),
        actor=actor,
        video=True,
        photos_merged=len(merged),
        photos_left_out=left_out,
    )
    return Enrollment(resident_id, len(template), round(worst_pair, 4), len(merged), left_out)


def _matching_selfies(
    photos: Sequence[bytes | Path | str], frames: np.ndarray, settings: FaceSettings
) -> tuple[list[np.ndarray], int]:
    """The embeddings of ``photos`` that match every row of ``frames``; and how many did not."""
    kept: list[np.ndarray] = []
    left_out = 0
    for photo in photos:
        try:
            obs = observe(photo, settings)
        except FaceError:
            left_out += 1
            continue
        assert obs.encoding is not None
        farthest = float(np.linalg.norm(frames - obs.encoding[None, :], axis=1).max())
        if farthest > settings.threshold:
            left_out += 1
            continue
        kept.append(obs.encoding)
    return kept, left_out


def delete(store: TemplateStore, resident_id: str, *, actor: str) -> int:
    """Delete the resident's face template completely (audited). Returns how many were removed."""
    removed = store.delete(resident_id, KIND, actor=actor)
    log.info("face_deleted", resident_id=resident_id, removed=removed, actor=actor)
    return removed
