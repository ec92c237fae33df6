"""CAM++ as the voiceprint: hash-checked loading of the installed model files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from biometrics.voice import campplus

# --- the model files -----------------------------------------------------------------------


def test_campplus_features_are_kaldi_mel_filterbanks() -> None:
    """fbank: 25/10-ms frames, mean-normalised, a 1-kHz tone in the mel bin around 1 kHz."""
    sr = 16_000
    t = np.arange(sr) / sr
    rng = np.random.default_rng(0)
    wav = 1e-3 * rng.normal(size=sr)
    wav[sr // 2 :] += 0.5 * np.sin(2 * np.pi * 1000 * t[sr // 2 :])
    feat = campplus.fbank(wav.astype(np.float32))
    assert feat.shape == (1 + (sr - 400) // 160, 80)
    np.testing.assert_allclose(feat.mean(0), 0, atol=1e-4)  # mean-normalised
    mel = 1127 * np.log(1 + np.array([20.0, 8000.0, 1000.0]) / 700)
    expected = (mel[2] - mel[0]) / ((mel[1] - mel[0]) / 81) - 1  # centre index of 1 kHz
    tone_bins = feat[len(feat) // 2 + 5 :].argmax(1)
    assert np.all(np.abs(tone_bins - expected) <= 1), (set(tone_bins.tolist()), expected)


def test_the_installed_files_are_the_pinned_ones_and_load() -> None:
    model = campplus.load_encoder()
    assert not model.training
    vec = campplus.embed(np.random.default_rng(1).normal(0, 0.1, 32_000).astype(np.float32))
    assert vec.shape == (campplus.EMBEDDING_DIM,) == (192,)
    assert abs(float(np.linalg.norm(vec)) - 1) < 1e-5


def test_a_tampered_checkpoint_is_refused(tmp_path: Path) -> None:
    good = campplus.installed_file(campplus.CHECKPOINT)
    copy = tmp_path / "campplus.pt"
    shutil.copyfile(good, copy)
    campplus.load_encoder(checkpoint=copy)  # an intact copy loads
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    copy.write_bytes(bytes(data))
    with pytest.raises(campplus.CampplusIntegrityError, match="sha256"):
        campplus.load_encoder(checkpoint=copy)


def test_tampered_model_code_is_refused_before_it_runs(tmp_path: Path) -> None:
    code = tmp_path / "camplusplus.py"
    marker = tmp_path / "ran"
    code.write_text(
        campplus.installed_file(campplus.MODEL_CODE).read_text()
        + f"\nopen({str(marker)!r}, 'w').close()\n"
    )
    with pytest.raises(campplus.CampplusIntegrityError, match="sha256"):
        campplus.load_encoder(code=code)
    assert not marker.exists()


def test_a_missing_distribution_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(campplus, "DISTRIBUTION", "no-such-distribution-billtalk")
    with pytest.raises(campplus.CampplusIntegrityError, match="make setup"):
        campplus.installed_file(campplus.CHECKPOINT)
