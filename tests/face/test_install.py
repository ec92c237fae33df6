"""The install path: face_recognition never quits the process, and no 68-point model is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import biometrics.face.engine as engine

REPO = Path(__file__).resolve().parents[2]

_BLOCK_PKG_RESOURCES = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pkg_resources" or name.startswith("pkg_resources."):
            raise ImportError("pkg_resources blocked by test")
        return None
sys.meta_path.insert(0, _Block())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )


def test_import_face_recognition_does_not_quit_even_without_pkg_resources() -> None:
    """The old models package needs pkg_resources and face_recognition calls quit() without it.

    ``quit()`` exits with code 0, so the exit code alone proves nothing: the
    marker printed *after* the import must be there too.
    """
    proc = _run(
        _BLOCK_PKG_RESOURCES
        + "import face_recognition, face_recognition_models\n"
        + "assert hasattr(face_recognition, 'face_encodings')\n"
        + "assert 'pkg_resources' not in sys.modules\n"
        + "print('LOADED', face_recognition.__version__)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOADED" in proc.stdout  # (face_recognition 1.3.0 reports __version__ 1.2.3)
    assert "Please install `face_recognition_models`" not in proc.stdout


def test_models_package_uses_importlib_resources_not_pkg_resources() -> None:
    import inspect

    import face_recognition_models

    source = inspect.getsource(face_recognition_models)
    assert "pkg_resources" not in source
    assert "importlib.resources" in source


def test_product_uses_only_the_5_point_model_and_never_face_recognition() -> None:
    paths = engine.model_paths()
    assert paths["shape_predictor"].endswith("shape_predictor_5_face_landmarks.dat")
    assert not any("68" in p for p in paths.values())
    assert all(Path(p).is_file() for p in paths.values())
    proc = _run(
        "import sys, numpy as np\n"
        "from biometrics.face.engine import detect_faces, load_models\n"
        "load_models(); detect_faces(np.zeros((64, 64, 3), np.uint8))\n"
        "assert 'face_recognition' not in sys.modules, 'face_recognition imported'\n"
        "print('OK')\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout


def test_dlib_is_built_with_openblas_and_multiplies_on_one_thread() -> None:
    """scripts/setup.sh compiles dlib with OpenBLAS (the ResNet runs ~2.5x faster than dlib-bin).

    The engine limits OpenBLAS to one thread before dlib loads it; the count is read
    from the library dlib itself linked, in a fresh process.
    """
    proc = _run(
        "import ctypes, os\n"
        "os.environ.pop('OPENBLAS_NUM_THREADS', None)\n"
        "from biometrics.face.engine import load_models\n"
        "load_models()\n"
        "import dlib\n"
        "assert dlib.DLIB_USE_BLAS, 'dlib was built without BLAS'\n"
        "print('THREADS', ctypes.CDLL('libopenblas.so.0').openblas_get_num_threads())\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "THREADS 1" in proc.stdout, proc.stdout
