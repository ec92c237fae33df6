"""The ONNX runtime of the MiniLM encoder: same vectors as torch, chosen by the setting,
exported at first use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from nlu.encoder import DIMENSIONS, SentenceEncoder
from nlu.encoder_onnx import onnx_path
from nlu.rasa_yaml import load_training_data
from nlu.settings import NluSettings, get_nlu_settings

HELDOUT = Path(__file__).resolve().parent / "heldout"


@pytest.fixture(scope="module")
def resident_messages() -> list[str]:
    """The held-out resident messages (English and Chinese), never trained on."""
    return [e.text for e in load_training_data(HELDOUT).examples]


@pytest.fixture(scope="module")
def torch_encoder() -> SentenceEncoder:
    return SentenceEncoder(runtime="torch")


@pytest.fixture(scope="module")
def onnx_encoder() -> SentenceEncoder:
    return SentenceEncoder(runtime="onnx")


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def test_onnx_matches_torch_in_batches(
    resident_messages: list[str], torch_encoder: SentenceEncoder, onnx_encoder: SentenceEncoder
) -> None:
    assert len(resident_messages) > 150
    expected = torch_encoder.encode(resident_messages, batch_size=16)
    got = onnx_encoder.encode(resident_messages, batch_size=16)
    assert got.shape == expected.shape == (len(resident_messages), DIMENSIONS)
    assert got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert _min_cosine(got, expected) >= 0.9999


def test_onnx_matches_torch_one_message_at_a_time(
    resident_messages: list[str], torch_encoder: SentenceEncoder, onnx_encoder: SentenceEncoder
) -> None:
    # Single messages take the one-thread session and no padding (the Telegram path).
    sample = resident_messages[::6]
    expected = np.vstack([torch_encoder.encode([t]) for t in sample])
    got = np.vstack([onnx_encoder.encode([t]) for t in sample])
    assert _min_cosine(got, expected) >= 0.9999
    # Padding inside a batch does not change a message's vector.
    assert _min_cosine(onnx_encoder.encode(sample, batch_size=64), got) >= 0.9999


def test_the_setting_chooses_the_runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert NluSettings().encoder_runtime == "onnx"
    target = tmp_path / "minilm.onnx"
    monkeypatch.setenv("BILLTALK_NLU_ENCODER_RUNTIME", "torch")
    get_nlu_settings.cache_clear()
    try:
        encoder = SentenceEncoder(onnx_file=target)
        assert encoder.runtime == "torch"
        assert encoder.encode(["how much is my water bill"]).shape == (1, DIMENSIONS)
        assert not target.exists()  # torch never needs the ONNX file
    finally:
        get_nlu_settings.cache_clear()
    monkeypatch.setenv("BILLTALK_NLU_ENCODER_RUNTIME", "tensorflow")
    with pytest.raises(ValidationError):
        NluSettings()
    with pytest.raises(ValueError, match="unknown encoder runtime"):
        SentenceEncoder(runtime="tensorflow")  # type: ignore[arg-type]


def test_a_missing_onnx_file_is_exported_on_first_use(
    tmp_path: Path, torch_encoder: SentenceEncoder
) -> None:
    target = onnx_path(tmp_path / "nlu-encoder")
    assert not target.exists()
    encoder = SentenceEncoder(runtime="onnx", onnx_file=target)
    texts = ["pay 150 for gas", "我的电费是多少"]
    vectors = encoder.encode(texts)
    assert target.is_file() and target.stat().st_size > 80_000_000
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no partial file left
    assert _min_cosine(vectors, torch_encoder.encode(texts)) >= 0.9999
    # A second encoder reuses the file rather than exporting again.
    mtime = target.stat().st_mtime_ns
    SentenceEncoder(runtime="onnx", onnx_file=target).encode(texts)
    assert target.stat().st_mtime_ns == mtime


def test_the_sessions_threads_do_not_spin(onnx_encoder: SentenceEncoder) -> None:
    onnx_encoder.encode(["how much do I owe?"] * 16)  # the batch session (2+ threads)
    assert onnx_encoder._sessions
    for session in onnx_encoder._sessions.values():
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
