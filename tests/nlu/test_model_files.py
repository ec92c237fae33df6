"""Model folders: round trip, metadata, and refusal of tampered or pickle-bearing files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nlu.model import ModelFileError, load_model_dir


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    return dst


def test_metadata_carries_hash_languages_threshold_metrics(tiny_model_dir: Path) -> None:
    meta = json.loads((tiny_model_dir / "metadata.json").read_text(encoding="utf-8"))
    assert meta["format"] == "billtalk-nlu/1"
    assert len(meta["training_data"]["sha256"]) == 64
    assert meta["languages"] == ["en", "zh"]
    assert 0 <= meta["threshold"] <= 1
    assert "holdout" in meta["metrics"]
    assert meta["encoder"]["weights_sha256"]
    assert meta["engine_version"]


def test_saved_model_parses_like_the_trained_one(tiny_model_dir: Path, encoder) -> None:
    model = load_model_dir(tiny_model_dir, encoder=encoder)
    result = model.parse("how much do i owe on power")
    assert result["intent"]["name"] == "check_balance"
    assert result["language"] == "en"
    assert model.parse("交100元水费")["intent"]["name"] == "pay_bill"


def test_tampered_weights_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _copy(tiny_model_dir, tmp_path)
    with np.load(model / "weights.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["bias"] = arrays["bias"] + 1.0
    np.savez(model / "weights.npz", **arrays)
    with pytest.raises(ModelFileError, match="sha256 does not match"):
        load_model_dir(model)


def test_pickle_bearing_weights_are_refused_even_with_matching_hash(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model = _copy(tiny_model_dir, tmp_path)
    with np.load(model / "weights.npz") as npz:
        arrays: dict[str, np.ndarray] = {k: npz[k] for k in npz.files}
    arrays["bias"] = np.array([{"evil": "object"}], dtype=object)  # needs pickle to load
    np.savez(model / "weights.npz", **arrays)
    meta = json.loads((model / "metadata.json").read_text(encoding="utf-8"))
    import hashlib

    meta["weights_sha256"] = hashlib.sha256((model / "weights.npz").read_bytes()).hexdigest()
    (model / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelFileError, match="pickle"):
        load_model_dir(model)


def test_inconsistent_shapes_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _copy(tiny_model_dir, tmp_path)
    meta = json.loads((model / "metadata.json").read_text(encoding="utf-8"))
    meta["classifier"]["labels"].append("extra_intent")
    (model / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelFileError, match="inconsistent"):
        load_model_dir(model)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: (p / "metadata.json").write_text("{not json", encoding="utf-8"),
        lambda p: (p / "metadata.json").write_text('{"format": "other"}', encoding="utf-8"),
        lambda p: (p / "weights.npz").unlink(),
        lambda p: (p / "weights.npz").write_bytes(b"PK\x03\x04garbage"),
    ],
    ids=["bad-json", "wrong-format", "missing-weights", "corrupt-zip"],
)
def test_broken_folders_are_refused(tiny_model_dir: Path, tmp_path: Path, mutate) -> None:
    model = _copy(tiny_model_dir, tmp_path)
    mutate(model)
    with pytest.raises(ModelFileError):
        load_model_dir(model)


def test_no_pickle_files_in_a_model_folder(tiny_model_dir: Path) -> None:
    assert sorted(p.name for p in tiny_model_dir.iterdir()) == ["metadata.json", "weights.npz"]
    with np.load(tiny_model_dir / "weights.npz", allow_pickle=False) as npz:
        for name in npz.files:
            assert npz[name].dtype != object


def test_threshold_override_from_settings(
    tiny_model_dir: Path, encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nlu.settings import get_nlu_settings

    model = load_model_dir(tiny_model_dir, encoder=encoder)
    monkeypatch.setenv("BILLTALK_NLU_THRESHOLD", "1.0")
    get_nlu_settings.cache_clear()
    try:
        result = model.parse("how much do i owe")
        # Threshold 1.0: every message below the most typical held-out score falls back.
        assert result["scope"]["threshold"] == 1.0
        assert result["intent"]["name"] in {"nlu_fallback", "check_balance"}
        assert result["intent_ranking"]  # the ranking is kept when falling back
    finally:
        get_nlu_settings.cache_clear()
