"""``billtalk voice``: the contract of ``voice verify``, and enroll/delete on a real database."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from app.cli import app
from billtalk.settings import get_settings
from biometrics.settings import get_biometrics_settings
from biometrics.store import TemplateStore
from biometrics.voice.cli import split_lists
from biometrics.voice.settings import get_voice_settings
from biometrics.voice.verifier import VoiceVerifier

from .conftest import noise_wav, silence_wav

runner = CliRunner()
LIBRI = "librispeech_test-other"


@pytest.fixture(autouse=True)
def _logging_back_on_stderr() -> Iterator[None]:
    """Point structlog back at the real stderr after each command.

    ``billtalk``'s callback configures logging with the ``sys.stderr`` of the
    moment, which under CliRunner is a capture buffer closed after the command.
    """
    yield
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__))


def lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_split_lists_parses_multi_value_options() -> None:
    assert split_lists(
        ["--enrolled", "a", "b", "--probe", "c", "--enrolled=d"], ("--enrolled", "--probe")
    ) == {
        "--enrolled": ["a", "b", "d"],
        "--probe": ["c"],
    }
    import typer

    with pytest.raises(typer.BadParameter):
        split_lists(["a", "--probe", "b"], ("--enrolled", "--probe"))
    with pytest.raises(typer.BadParameter):
        split_lists(["--bogus", "a"], ("--enrolled", "--probe"))


def test_verify_prints_one_line_per_probe_in_order(voice_data: Path, tmp_path: Path) -> None:
    root = voice_data / LIBRI
    enrolled = [str(p) for p in sorted((root / "1688").glob("*.flac"))[:3]]
    silent = tmp_path / "silent.wav"
    silent.write_bytes(silence_wav())
    noise = tmp_path / "noise.wav"
    noise.write_bytes(noise_wav())
    corrupt = tmp_path / "corrupt.ogg"
    corrupt.write_bytes(b"OggS" + b"\x00garbage" * 50)
    short = voice_data / "fsdd" / "recordings" / "5_george_17.wav"
    probes = [
        str(sorted((root / "1688").glob("*.flac"))[6]),
        str(sorted((root / "2609").glob("*.flac"))[6]),
        str(silent),
        str(noise),
        str(corrupt),
        str(short),
    ]
    result = runner.invoke(app, ["voice", "verify", "--enrolled", *enrolled, "--probe", *probes])
    out = lines(result.stdout)
    assert [o["probe"] for o in out] == probes
    threshold = get_voice_settings().match_threshold
    genuine, impostor = out[0], out[1]
    assert set(genuine) == {"probe", "match", "score", "threshold"}
    assert genuine["match"] is True and genuine["threshold"] == threshold
    assert impostor["match"] is False and impostor["score"] < threshold  # type: ignore[operator]
    codes = [o["error"]["code"] for o in out[2:]]  # type: ignore[index]
    assert codes == ["silent", "no_speech", "corrupt_audio", "audio_too_short"]
    assert all(o["error"]["message"] for o in out[2:])  # type: ignore[index]
    assert result.exit_code == 2


def test_verify_exit_code_is_zero_when_every_probe_was_judged(voice_data: Path) -> None:
    root = voice_data / LIBRI / "2033"
    files = [str(p) for p in sorted(root.glob("*.flac"))]
    result = runner.invoke(
        app, ["voice", "verify", "--enrolled", *files[:2], "--probe", files[5], files[6]]
    )
    assert result.exit_code == 0, result.output
    assert [o["match"] for o in lines(result.stdout)] == [True, True]


def test_verify_needs_both_lists() -> None:
    result = runner.invoke(app, ["voice", "verify", "--probe", "x.wav"])
    assert result.exit_code != 0


@pytest.fixture(scope="session")
def community(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A one-household demo community (billing database): its file and a real resident id."""
    from backend.demo import seed

    path = tmp_path_factory.mktemp("community") / "billing.db"
    result = seed(f"sqlite:///{path}", households=1, seed=7, months=1)
    return path, result["households"][0]["resident_ids"][0]


@pytest.fixture
def cli_db(
    community: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh copy of the community's database as ``BILLTALK_DATABASE_URL``; yields a resident."""
    target = tmp_path / "cli.db"
    shutil.copyfile(community[0], target)
    monkeypatch.setenv("BILLTALK_DATABASE_URL", f"sqlite:///{target}")
    monkeypatch.delenv("BILLTALK_BIOMETRICS_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    get_biometrics_settings.cache_clear()
    yield community[1]
    get_settings.cache_clear()
    get_biometrics_settings.cache_clear()


@pytest.mark.parametrize("command", ["enroll", "delete"])
def test_unknown_residents_are_refused(cli_db: str, tmp_path: Path, command: str) -> None:
    files = [str(tmp_path / "x.wav")] if command == "enroll" else []
    result = runner.invoke(app, ["voice", command, "--resident", "nobody-here", *files])
    assert result.exit_code == 2
    error = lines(result.stdout)[0]["error"]
    assert error["code"] == "unknown_resident"  # type: ignore[index]
    assert "nobody-here" in error["message"]  # type: ignore[index]
    assert not TemplateStore.from_settings().is_enrolled("nobody-here", "voice")


def test_enroll_then_delete(cli_db: str, tmp_path: Path, espeak: Callable[..., bytes]) -> None:
    prompts = ["471902", "028365", "556174", "903728", "184250"]
    files = []
    for i, p in enumerate(prompts):
        path = tmp_path / f"e{i}.wav"
        path.write_bytes(espeak(p, voice="en-us", speed=120, snr_db=30.0, seed=i))
        files.append(str(path))
    args = ["voice", "enroll", "--resident", cli_db, *files]
    missing = runner.invoke(app, args)
    assert missing.exit_code == 2
    assert lines(missing.stdout)[0]["error"]["code"] == "missing_digits"  # type: ignore[index]
    digit_args = [a for p in prompts for a in ("--digits", p)]
    result = runner.invoke(app, [*args, *digit_args, "--actor", "staff:desk"])
    assert result.exit_code == 0, result.output
    report = lines(result.stdout)[0]
    assert report["resident_id"] == cli_db and report["samples"] == 5
    assert report["digits_checked"] is True
    store = TemplateStore.from_settings()
    assert store.is_enrolled(cli_db, "voice")
    # The dialogue's verifier sees the same configured store.
    assert asyncio.run(VoiceVerifier.from_settings().is_enrolled(cli_db))
    deleted = runner.invoke(app, ["voice", "delete", "--resident", cli_db, "--actor", "staff:desk"])
    assert lines(deleted.stdout) == [{"resident_id": cli_db, "removed": 1}]
    assert not store.is_enrolled(cli_db, "voice")
    assert [e["action"] for e in store.audit_trail(cli_db)] == ["enroll", "delete"]


def test_enroll_refuses_wrong_digits(
    cli_db: str, tmp_path: Path, espeak: Callable[..., bytes]
) -> None:
    prompts = ["471902", "028365", "556174", "903728", "184250"]
    files = []
    for i, p in enumerate(prompts):
        path = tmp_path / f"e{i}.wav"
        said = "666666" if i == 1 else p
        path.write_bytes(espeak(said, voice="en-us", speed=120, snr_db=30.0, seed=i))
        files.append(str(path))
    digit_args = [a for p in prompts for a in ("--digits", p)]
    result = runner.invoke(app, ["voice", "enroll", "--resident", cli_db, *files, *digit_args])
    assert result.exit_code == 2
    error = lines(result.stdout)[0]["error"]
    assert error["code"] == "wrong_digits" and error["file"] == files[1]  # type: ignore[index]
    assert not TemplateStore.from_settings().is_enrolled(cli_db, "voice")


def test_enroll_refuses_prompts_shorter_than_the_calibrated_length(
    cli_db: str, tmp_path: Path, espeak: Callable[..., bytes]
) -> None:
    prompts = ["4719", "0283", "5561", "9037", "1842"]
    files = []
    for i, p in enumerate(prompts):
        path = tmp_path / f"s{i}.wav"
        path.write_bytes(espeak(p, voice="en-us", speed=120, snr_db=30.0, seed=i))
        files.append(str(path))
    digit_args = [a for p in prompts for a in ("--digits", p)]
    result = runner.invoke(app, ["voice", "enroll", "--resident", cli_db, *files, *digit_args])
    assert result.exit_code == 2
    error = lines(result.stdout)[0]["error"]
    assert error["code"] == "prompt_too_short" and error["file"] == files[0]  # type: ignore[index]
    assert "at least 6" in error["message"]  # type: ignore[index]
    assert not TemplateStore.from_settings().is_enrolled(cli_db, "voice")
