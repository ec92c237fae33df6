"""Face verification settings (``BILLTALK_FACE_*`` environment variables).

The thresholds here are the ones the product ships with: ``billtalk face
verify`` and the dialogue's step-up verification read the same values. How they
were calibrated is in ``docs/face.md``; the measured error rates are in
``bench/RESULTS.md`` (section ``face``).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FaceSettings(BaseSettings):
    """Knobs of face verification; every one has a calibrated or documented default."""

    model_config = SettingsConfigDict(env_prefix="BILLTALK_FACE_", extra="ignore", frozen=True)

    # --- matching ---------------------------------------------------------------------------
    #: Euclidean distance between 128-d (mirror-averaged) embeddings at or below which two
    #: faces match. Calibrated for FAR <= 0.1% on the calibration half of the benchmark's
    #: identities and reported on the other half (bench/face.py --protocol-only; docs/face.md).
    threshold: float = Field(default=0.52, gt=0.0, lt=2.0)
    #: The stricter threshold a *still* selfie must meet; a still never suffices alone
    #: (it also needs the PIN).
    still_threshold: float = Field(default=0.45, gt=0.0, lt=2.0)
    #: Whether a still selfie (with the PIN) may be used at all for step-up.
    allow_still: bool = True
    #: A probe closer than this to an enrolled photo is a near-duplicate of it (a
    #: re-sent or re-photographed enrollment photo) and is rejected as a replay.
    replay_distance: float = Field(default=0.15, ge=0.0, lt=2.0)
    #: A still probe gets the second (mirror) ResNet pass only when its single-pass
    #: distance lies within this of a decision boundary (still threshold, replay
    #: distance; see replay_mirror_band). The mirror pass moved a distance by at most
    #: 0.047 over all 3,660 calibration-identity trials (bench/face.py --protocol-only),
    #: so beyond 0.05 the single pass decides as the mirror-averaged embedding would.
    mirror_band: float = Field(default=0.05, ge=0.0, lt=2.0)
    #: Above the replay distance the window reaches further: a copy of the enrollment
    #: photo scores, single-pass, up to half its own mirror gap (max 0.144 over the
    #: benchmark's 137 photos) above its averaged distance (engine.mirror_windows).
    replay_mirror_band: float = Field(default=0.15, ge=0.0, lt=2.0)
    #: Whether a live video-note pass with a wide margin adds the clip's typical frame
    #: to the gallery (bounded, audited, reversible: biometrics.refresh.refreshed_face).
    #: Stills never refresh: a still proves only that someone holds a photo.
    learn_from_success: bool = True

    # --- image intake -----------------------------------------------------------------------
    #: Largest accepted file, in bytes.
    max_bytes: int = 15 * 1024 * 1024
    #: Largest accepted image, in pixels (decompression-bomb guard).
    max_pixels: int = 40_000_000
    #: Images are downscaled to this long side before detection.
    detect_max_side: int = 800
    #: HOG detector upsampling for images whose long side is at most ``small_image_side``
    #: (upsampling costs ~4x; large images never need it).
    small_image_upsample: int = 1
    small_image_side: int = 400
    #: Smallest accepted face (detector box width, pixels of the original image).
    min_face_px: int = 60
    #: Smallest accepted variance of the Laplacian over the face crop (blur gate).
    min_sharpness: float = 8.0
    #: Smallest accepted mean luma (0-255) of the centre of the aligned face (dark gate).
    #: The darkest usable real photo of the benchmark scores far above it; a face this
    #: dark is mostly sensor noise, so it is refused with a hint instead of scored.
    min_brightness: float = 35.0

    # --- video-note liveness ----------------------------------------------------------------
    #: How long a challenge can be answered, in seconds.
    challenge_ttl_s: int = 90
    #: How many motions one challenge asks for ("turn left, then look up").
    challenge_steps: int = 2
    #: Longest accepted video note, in seconds, and largest file.
    max_video_s: float = 15.0
    max_video_bytes: int = 20 * 1024 * 1024
    #: Frames analysed per second of video (and at most ``max_frames``).
    sample_fps: float = 6.0
    max_frames: int = 48
    #: Frames whose embedding is computed (evenly spread over the analysed frames).
    encoded_frames: int = 8
    #: Minimum pose change from the baseline for a yaw (left/right) motion, as a
    #: fraction of the inter-ocular distance (see biometrics.face.pose).
    yaw_delta: float = 0.10
    #: Minimum pose change for a pitch (up/down) motion.
    pitch_delta: float = 0.10
    #: Largest embedding distance between consecutive encoded frames of one clip
    #: (above it, the clip cuts between different faces). A head turn between two
    #: encoded frames moves the embedding by up to ~0.5, so this is a gross check;
    #: every encoded frame must also match the template.
    continuity_distance: float = 0.6
    #: Largest distance to the template of any single encoded frame (turned-head
    #: frames score worse than frontal ones; the median must still meet ``threshold``).
    frame_max_distance: float = 0.65
    #: Smallest overlap (IoU) of face boxes in consecutive analysed frames.
    continuity_iou: float = 0.2
    #: Fraction of analysed frames that must contain exactly one face.
    min_face_fraction: float = 0.8
    #: Whether the channel delivers mirrored (selfie-preview) video; flips left/right.
    video_mirrored: bool = False

    # --- execution --------------------------------------------------------------------------
    #: Worker processes for dlib (dlib holds the GIL; work never runs on the event loop).
    workers: int = Field(default=1, ge=1)


@lru_cache(maxsize=1)
def get_face_settings() -> FaceSettings:
    """Return the face settings, read once from the environment."""
    return FaceSettings()
