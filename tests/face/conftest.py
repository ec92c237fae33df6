"""Fixtures for face tests: real photos from ../shared/data/faces, encoded once per session."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from billtalk.db import make_engine
from biometrics.crypto import TemplateCipher
from biometrics.face.images import load_image
from biometrics.face.service import observe
from biometrics.face.settings import FaceSettings
from biometrics.store import TemplateStore, ensure_schema

#: Photos used by the tests, by short name (paths relative to the faces folder).
PHOTOS = {
    "obama": "ageitgey_face_recognition/examples/obama.jpg",
    "obama2": "ageitgey_face_recognition/examples/obama2.jpg",
    "obama_oval": "ageitgey_face_recognition/tests/test_images/obama3.jpg",
    "biden": "ageitgey_face_recognition/examples/biden.jpg",
    "biden2": "ageitgey_face_recognition/examples/knn_examples/train/biden/biden2.jpg",
    "rose": "ageitgey_face_recognition/examples/knn_examples/train/rose_leslie/img1.jpg",
    "rose2": "ageitgey_face_recognition/examples/knn_examples/train/rose_leslie/img2.jpg",
    "adams": "cmusatyalab_openface/images/examples/adams.jpg",
    "lacamoire_png": "ageitgey_face_recognition/examples/alex-lacamoire.png",
    "two_people": "ageitgey_face_recognition/examples/two_people.jpg",
    "kit_with_rose": "ageitgey_face_recognition/examples/knn_examples/test/kit_with_rose.jpg",
}


@pytest.fixture(scope="session")
def faces_dir(shared_data: Path) -> Path:
    """The shared real face photos."""
    path = shared_data / "faces"
    if not (path / "manifest.csv").is_file():
        pytest.fail(f"face photos missing: {path}")
    return path


@pytest.fixture(scope="session")
def photo(faces_dir: Path):  # type: ignore[no-untyped-def]
    """``photo("obama")`` -> the path of a named test photo."""

    def get(name: str) -> Path:
        return faces_dir / PHOTOS[name]

    return get


@pytest.fixture(scope="session")
def settings() -> FaceSettings:
    """The shipped face settings (defaults, ignoring the environment's overrides)."""
    return FaceSettings()


@pytest.fixture(scope="session")
def encodings(photo, settings: FaceSettings) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """128-d embeddings of the single-face test photos, computed once."""
    names = ["obama", "obama2", "obama_oval", "biden", "biden2", "rose", "rose2", "adams"]
    out = {}
    for name in names:
        enc = observe(photo(name), settings).encoding
        assert enc is not None
        out[name] = enc
    return out


@pytest.fixture(scope="session")
def video_bases(photo, settings: FaceSettings) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Video-note sized face crops of a few people, for synthetic clips."""
    from tests.face.synth import face_crop

    return {
        name: face_crop(load_image(photo(name), settings).rgb)
        for name in ("obama", "rose", "biden", "adams")
    }


@pytest.fixture(scope="session")
def clips(video_bases) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """Synthetic video notes (see tests/face/synth.py), each made once per session."""
    from tests.face import synth

    obama, rose, biden = video_bases["obama"], video_bases["rose"], video_bases["biden"]
    return {
        "obama_left_up": synth.motion_clip(obama, ["turn_left", "look_up"]),
        "rose_right_left": synth.motion_clip(rose, ["turn_right", "turn_left"]),
        "obama_still": synth.still_clip(obama),
        "obama_waved": synth.waved_photo_clip(obama),
        "biden_left_up": synth.motion_clip(biden, ["turn_left", "look_up"]),
        "obama_cut_to_biden": synth.cut_clip(obama, biden, ["turn_left", "look_up"]),
    }


@pytest.fixture(scope="session")
def executor() -> Iterator[ProcessPoolExecutor]:
    """One real worker process (spawned, models loaded) shared by the session."""
    from biometrics.face.pool import make_executor

    ex = make_executor(1)
    try:
        yield ex
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _fresh_store(url: str) -> TemplateStore:
    engine = make_engine(url)
    with engine.begin() as conn:  # the PostgreSQL database is shared by the session
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "DROP TABLE IF EXISTS biometric_templates, biometric_audit, "
                    "alembic_version_biometrics"
                )
            )
    ensure_schema(url)
    return TemplateStore(engine, TemplateCipher("face-test-secret"))


@pytest.fixture
def store(tmp_path: Path) -> TemplateStore:
    """A template store on a fresh SQLite database."""
    return _fresh_store(f"sqlite:///{tmp_path / 'face.db'}")


@pytest.fixture
def any_store(database_url: str) -> TemplateStore:
    """A template store on a fresh database, once SQLite and once PostgreSQL."""
    return _fresh_store(database_url)


@pytest.fixture(scope="session")
def community(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A one-household demo community (billing database): its file and a real resident id."""
    from backend.demo import seed

    path = tmp_path_factory.mktemp("community") / "billing.db"
    result = seed(f"sqlite:///{path}", households=1, seed=7, months=1)
    return path, result["households"][0]["resident_ids"][0]


@pytest.fixture
def community_db(community: tuple[Path, str], tmp_path: Path) -> tuple[str, str]:
    """A fresh copy of :func:`community` for one test: ``(database URL, resident id)``."""
    import shutil

    target = tmp_path / "billtalk.db"
    shutil.copyfile(community[0], target)
    return f"sqlite:///{target}", community[1]
