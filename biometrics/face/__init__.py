"""Face verification with liveness for high-value payments.

Public API:

* :func:`~biometrics.face.service.enroll` / :func:`~biometrics.face.service.delete`:
  manage a resident's encrypted face template;
* :class:`~biometrics.face.verifier.FaceVerifier`: the ``face`` step-up
  :class:`~verification.Verifier` (video-note liveness, or a weak still that
  needs the PIN as well);
* :class:`~biometrics.face.errors.FaceError`: why a photo or clip is unusable;
* :func:`~biometrics.face.settings.get_face_settings`: the shipped thresholds.

Submodules import dlib lazily; importing this package is cheap.
"""

from biometrics.face.errors import FaceError
from biometrics.face.settings import FaceSettings, get_face_settings

__all__ = ["FaceError", "FaceSettings", "get_face_settings"]
