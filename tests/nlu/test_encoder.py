"""The MiniLM weights are the pinned ones and nothing is downloaded."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from nlu.encoder import (
    DIMENSIONS,
    WEIGHTS_SHA256,
    EncoderUnavailable,
    model_path,
    verify_files,
)


def test_installed_weights_match_the_pinned_sha256() -> None:
    weights = model_path() / "model.safetensors"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == WEIGHTS_SHA256
    verify_files()


def test_only_safetensors_weights_ship() -> None:
    names = {p.name for p in model_path().rglob("*") if p.is_file()}
    assert "model.safetensors" in names
    assert not {n for n in names if n.endswith((".bin", ".pkl", ".pt", ".pth", ".py"))}


def test_swapped_weights_are_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model_path(), copy)
    with (copy / "model.safetensors").open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(EncoderUnavailable, match="refusing"):
        verify_files(copy)


def test_encodes_offline_to_unit_vectors(encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    # No network: an unreachable proxy would make any download attempt fail loudly.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    vectors = encoder.encode(["how much is my bill", "what's the weather", "电费多少"])
    assert vectors.shape == (3, DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert float(vectors[0] @ vectors[1]) < 0.9
