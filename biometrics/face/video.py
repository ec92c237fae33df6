"""Decoding a video note and observing the face in it, frame by frame.

Telegram video notes are short square MP4 clips (H.264, 240-640 px). We decode
them with PyAV (FFmpeg bundled in the wheel; no system ffmpeg), take frames at
a fixed rate, find the face and its 5 landmarks in each, and compute the 128-d
embedding on a few evenly spread frames. The liveness decision on the result is
made by :mod:`biometrics.face.liveness`, which needs no dlib.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from biometrics.face.engine import detect_faces, encode_chips, face_chip
from biometrics.face.errors import FaceError
from biometrics.face.pose import HeadPose, head_pose
from biometrics.face.settings import FaceSettings, get_face_settings


@dataclass(frozen=True)
class FrameSample:
    """What was seen in one analysed frame. Holds biometric data: never log it.

    Attributes:
        t: Time of the frame in the clip, seconds.
        faces: How many faces the detector found.
        box: The (largest-score) face box ``(left, top, right, bottom)``, if any.
        pose: Its head pose, if any.
        encoding: Its 128-d embedding, on the frames chosen for encoding.
    """

    t: float
    faces: int
    box: tuple[int, int, int, int] | None = None
    pose: HeadPose | None = None
    encoding: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class VideoAnalysis:
    """The frames of one clip, in time order."""

    duration_s: float
    frames: list[FrameSample]


def decode_frames(
    data: bytes, settings: FaceSettings | None = None
) -> tuple[float, list[tuple[float, np.ndarray]]]:
    """Decode a clip into RGB frames sampled at ``settings.sample_fps``.

    Returns:
        The clip's duration in seconds and ``(time, rgb)`` pairs, each frame's
        long side at most ``settings.detect_max_side``.

    Raises:
        FaceError: ``corrupt_video`` (undecodable, no video stream, too few
            frames) or ``video_too_long``.
    """
    import av

    settings = settings or get_face_settings()
    if not data:
        raise FaceError("corrupt_video", "the video is empty")
    if len(data) > settings.max_video_bytes:
        raise FaceError("video_too_long", "the video file is too large; record a few seconds only")
    frames: list[tuple[float, np.ndarray]] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise FaceError("corrupt_video", "the file has no video")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            duration = _duration(container, stream)
            if duration is not None and duration > settings.max_video_s:
                raise FaceError(
                    "video_too_long",
                    f"the video is {duration:.0f} s long; "
                    f"record at most {settings.max_video_s:.0f} s",
                )
            step = 1.0 / settings.sample_fps
            next_t = 0.0
            last_t = 0.0
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else last_t + step
                last_t = t
                if t > settings.max_video_s:
                    raise FaceError(
                        "video_too_long", f"record at most {settings.max_video_s:.0f} s"
                    )
                if t + 1e-6 < next_t:
                    continue
                while next_t <= t + 1e-6:  # a fixed time grid, whatever the clip's frame rate
                    next_t += step
                width, height = frame.width, frame.height
                scale = min(1.0, settings.detect_max_side / max(width, height))
                if scale < 1.0:
                    frame = frame.reformat(
                        width=int(width * scale) // 2 * 2, height=int(height * scale) // 2 * 2
                    )
                rgb: np.ndarray = frame.to_ndarray(format="rgb24")
                # Phones record sideways and store a display rotation (counter-clockwise
                # degrees, as FFmpeg's autorotate applies it); faces must be upright for HOG.
                quarter = round(float(getattr(frame, "rotation", 0) or 0) / 90) % 4
                if quarter:
                    rgb = np.ascontiguousarray(np.rot90(rgb, quarter))
                frames.append((t, rgb))
                if len(frames) >= settings.max_frames:
                    break
    except FaceError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise FaceError(
            "corrupt_video", f"the video could not be decoded ({exc.__class__.__name__})"
        ) from None
    if len(frames) < 3:
        raise FaceError("corrupt_video", "the video is too short; record 3 to 10 seconds")
    if duration is None:
        duration = frames[-1][0]
    return float(duration), frames


def _duration(container: object, stream: object) -> float | None:
    c_dur = getattr(container, "duration", None)
    if c_dur:
        return float(c_dur) / 1_000_000.0
    s_dur, base = getattr(stream, "duration", None), getattr(stream, "time_base", None)
    if s_dur and base:
        return float(s_dur * base)
    return None


def analyze_video(data: bytes, settings: FaceSettings | None = None) -> VideoAnalysis:
    """Decode a clip and observe the face in each sampled frame.

    Every sampled frame gets detection, landmarks and head pose (cheap); the
    embedding (~80 ms each) is computed on ``settings.encoded_frames`` frames
    spread evenly over those showing exactly one face, first and last included.
    """
    settings = settings or get_face_settings()
    duration, decoded = decode_frames(data, settings)
    samples: list[FrameSample] = []
    faces_by_index = {}
    for i, (t, rgb) in enumerate(decoded):
        faces = detect_faces(rgb, 0)
        if faces:
            top = faces[0]
            faces_by_index[i] = (rgb, top)
            samples.append(FrameSample(t, len(faces), top.box, head_pose(top.landmarks)))
        else:
            samples.append(FrameSample(t, 0))
    picked = _frames_to_encode(samples, settings.encoded_frames)
    # One ResNet batch for all picked frames and their mirror images (same vectors as
    # one-by-one passes, ~15 % cheaper).
    vectors = encode_chips([face_chip(*faces_by_index[i]) for i in picked])
    for i, vector in zip(picked, vectors, strict=True):
        s = samples[i]
        samples[i] = FrameSample(s.t, s.faces, s.box, s.pose, vector)
    return VideoAnalysis(duration_s=duration, frames=samples)


def _frames_to_encode(samples: list[FrameSample], budget: int) -> list[int]:
    """Pick the frames whose embedding is computed.

    Always the first and last single-face frames and the frames of extreme
    pose (most turned each way, most tilted up): the frames where a challenged
    movement shows are exactly the ones whose identity must be checked, so a
    clip cannot show the resident's photo and have someone else do the
    movement. The rest of the budget is spread evenly.
    """
    single = [i for i, s in enumerate(samples) if s.faces == 1 and s.pose is not None]
    if not single:
        return []
    yaw = {i: samples[i].pose.yaw for i in single}  # type: ignore[union-attr]
    pitch = {i: samples[i].pose.pitch for i in single}  # type: ignore[union-attr]
    picks = {
        single[0],
        single[-1],
        max(single, key=yaw.__getitem__),
        min(single, key=yaw.__getitem__),
        min(single, key=pitch.__getitem__),
    }
    rest = [i for i in single if i not in picks]
    while rest and len(picks) < budget:  # farthest-first: fill the largest gaps
        best = max(rest, key=lambda i: min(abs(i - p) for p in picks))
        picks.add(best)
        rest.remove(best)
    return sorted(picks)
