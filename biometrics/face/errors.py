"""The one error type of face verification."""

from __future__ import annotations

from typing import Literal

FaceErrorCode = Literal[
    "corrupt_image",
    "unsupported_format",
    "image_too_large",
    "no_face",
    "multiple_faces",
    "face_too_small",
    "too_blurry",
    "too_dark",
    "corrupt_video",
    "video_too_long",
    "not_enrolled",
    "inconsistent_photos",
    "bad_request",
]


class FaceError(Exception):
    """An image or video that cannot be used for face verification.

    The message is written for the resident (or staff) and never contains image
    data or biometric vectors.

    Args:
        code: A stable machine-readable reason, e.g. ``"no_face"``.
        message: A short human-readable explanation.

    Attributes:
        code: The reason code.
        message: The explanation.
    """

    def __init__(self, code: FaceErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: FaceErrorCode = code
        self.message = message

    def __reduce__(self) -> tuple[type[FaceError], tuple[str, str]]:
        # Rebuilt from (code, message) when it crosses the process-pool boundary.
        return (type(self), (self.code, self.message))

    def to_dict(self) -> dict[str, str]:
        """The ``{"code", "message"}`` form used in JSON output."""
        return {"code": self.code, "message": self.message}
