"""The CONTRACTS.md commands, run as a user would (subprocess, real model files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BILLTALK = Path(sys.executable).with_name("billtalk")


def _run(
    *args: str, stdin: bytes | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "BILLTALK_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [str(BILLTALK), "nlu", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_train_then_parse_text(tiny_data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    done = _run("train", "--data", str(tiny_data_dir / "nlu.yml"), "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout)
    assert summary["examples"] == 30 and summary["languages"] == ["en", "zh"]
    assert (out / "metadata.json").is_file() and (out / "weights.npz").is_file()
    assert b"nlu train" in done.stderr  # the progress bar goes to stderr

    parsed = _run("parse", "--model", str(out), "how much do i owe")
    assert parsed.returncode == 0, parsed.stderr.decode()
    result = json.loads(parsed.stdout)
    assert result["intent"]["name"] == "check_balance"
    assert set(result) >= {"text", "intent", "intent_ranking", "entities"}


def test_train_accepts_several_paths_after_one_flag(tiny_data_dir: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.yml"
    extra.write_text(
        "nlu:\n- intent: greet\n  examples: |\n    - hello\n    - hi there\n"
        "    - good morning\n    - hey\n    - 你好\n",
        encoding="utf-8",
    )
    out = tmp_path / "model"
    done = _run("train", "--data", str(tiny_data_dir), str(extra), "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["intents"] == 4


def test_parse_stdin_one_json_per_line_in_order(tiny_model_dir: Path) -> None:
    lines = [
        b"how much do i owe",
        "交300元燃气费".encode(),
        b"",
        b"\xff\xfe invalid utf-8 \xc3\x28",
        b"what's the weather",
        b"x" * 10_000,
        b"tell me a joke\r",
    ]
    done = _run("parse", "--model", str(tiny_model_dir), "-", stdin=b"\n".join(lines) + b"\n")
    assert done.returncode == 0, done.stderr.decode()
    results: list[dict[str, Any]] = [json.loads(x) for x in done.stdout.decode().splitlines()]
    assert len(results) == len(lines)
    assert results[0]["text"] == "how much do i owe"
    assert results[1]["text"] == "交300元燃气费" and results[1]["language"] == "zh"
    assert results[2]["intent"]["name"] == "nlu_fallback"
    assert "\ufffd" in results[3]["text"]
    assert results[6]["text"] == "tell me a joke"


def test_bad_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    done = _run("parse", "--model", str(tmp_path), "hello")
    assert done.returncode == 2
    assert b"not an NLU model folder" in done.stderr
    assert done.stdout == b""


def test_bad_training_data_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("nlu:\n- intent: x\n  examples: |\n    - [a]{oops}\n", encoding="utf-8")
    done = _run("train", "--data", str(bad), "--out", str(tmp_path / "m"))
    assert done.returncode == 2
    assert b"bad entity annotation" in done.stderr


def test_test_command_writes_report(tiny_model_dir: Path, tmp_path: Path) -> None:
    heldout = Path(__file__).resolve().parent / "heldout"
    out = tmp_path / "report"
    done = _run("test", "--data", str(heldout), "--model", str(tiny_model_dir), "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout)
    assert summary["examples"] >= 150
    for name in ["report.json", "report.md", "confusion_matrix.png", "confidence_histogram.png"]:
        assert (out / name).stat().st_size > 0
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert "check_balance" in report["per_intent"]
    assert {"precision", "recall", "f1"} <= set(report["entities"]["all"])
    assert report["misclassified"]  # a 3-intent model gets most of 21 intents wrong
    assert b"nlu test" in done.stderr
