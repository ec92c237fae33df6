"""``billtalk speech transcribe`` / ``say``: the command-line contract."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import app
from speech.audio import encode_audio
from tests.speech.conftest import wav_bytes

runner = CliRunner()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI binds structlog to CliRunner's captured stderr; rebind it afterwards."""
    yield
    from billtalk.logs import configure_logging

    configure_logging()


def _json(output: str) -> dict:
    lines = [ln for ln in output.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, output
    return json.loads(lines[0])


def test_say_then_transcribe_every_format(tmp_path: Path, say) -> None:  # type: ignore[no-untyped-def]
    samples = say("how much is my water bill")
    for fmt in ("wav", "flac", "ogg", "mp3"):
        path = tmp_path / f"request.{fmt}"
        path.write_bytes(encode_audio(samples, fmt))
        result = runner.invoke(app, ["speech", "transcribe", str(path)])
        assert result.exit_code == 0, result.output
        out = _json(result.stdout)
        assert isinstance(out["text"], str) and isinstance(out["duration_s"], float)
        assert "water" in out["text"], out  # accuracy itself is benchmarked
        assert 0.0 <= out["confidence"] <= 1.0


def test_say_writes_wav_and_ogg(tmp_path: Path) -> None:
    for ext, magic in (("wav", b"RIFF"), ("ogg", b"OggS")):
        out = tmp_path / f"reply.{ext}"
        result = runner.invoke(app, ["speech", "say", "Your bill is ¥88.20.", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_bytes()[:4] == magic
        assert _json(result.stdout)["format"] == ext


def test_say_refuses_unknown_extension(tmp_path: Path) -> None:
    result = runner.invoke(app, ["speech", "say", "hi", "--out", str(tmp_path / "x.mp4")])
    assert result.exit_code == 2
    assert _json(result.stdout)["error"]["code"] == "unsupported_format"


def test_transcribe_errors_are_json_with_nonzero_exit(tmp_path: Path) -> None:
    cases = {
        "empty.wav": b"",
        "silent.wav": wav_bytes(np.zeros(16000, np.float32)),
        "corrupt.ogg": b"OggS" + bytes(range(256)) * 10,
    }
    codes = {}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        result = runner.invoke(app, ["speech", "transcribe", str(path)])
        assert result.exit_code == 2, result.output
        codes[name] = _json(result.stdout)["error"]["code"]
        assert _json(result.stdout)["error"]["message"]
    assert codes["empty.wav"] == "empty"
    assert codes["silent.wav"] == "silent"
    assert codes["corrupt.ogg"] in {"corrupt", "unsupported_format", "truncated"}
    missing = runner.invoke(app, ["speech", "transcribe", str(tmp_path / "none.wav")])
    assert missing.exit_code == 2 and _json(missing.stdout)["error"]["code"] == "not_found"


def test_transcribe_digits_option(tmp_path: Path, say) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "code.wav"
    path.write_bytes(wav_bytes(say("5 2 9 1")))
    result = runner.invoke(
        app, ["speech", "transcribe", str(path), "--grammar", "digits", "--expected-digits", "4"]
    )
    assert result.exit_code == 0, result.output
    assert _json(result.stdout)["digits"] == "5291"
