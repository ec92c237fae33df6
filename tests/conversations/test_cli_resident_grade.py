"""The command line as a new resident meets it (issue 17).

* ``billtalk chat`` from another folder uses the project's database (no empty
  ``billtalk.db`` appears where it was started), and an unknown resident is told
  which database was looked in;
* ``billtalk run`` with its port taken says so and exits before "ready";
* start-up is quiet: no alembic plugin lines, one insecure-key warning, no line
  per seeded payment;
* ``speech transcribe --grammar /etc/passwd`` is refused with the valid names
  (and without reading the file out); ``speech say`` detects Chinese.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BILLTALK = [sys.executable, "-m", "app"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLTALK_")}
    env["BILLTALK_SECRET_KEY"] = "test-secret-key-for-the-test-suite-only"
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str], stdin: str = "") -> Any:
    return subprocess.run(
        [*BILLTALK, *args],
        input=stdin,
        capture_output=True,
        encoding="utf-8",
        env=env,
        cwd=cwd,
        timeout=900,
    )


def test_chat_from_another_folder_uses_the_project_database(
    seeded: Any, community_db: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(community_db.removeprefix("sqlite:///"), home / "billtalk.db")
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    payer = seeded.roles["payer"]["resident_id"]
    # The default URL (sqlite:///./billtalk.db) is resolved against the project home.
    env = _env(BILLTALK_HOME=str(home), BILLTALK_DATA_DIR=str(REPO / "var"))
    result = _run(["chat", "--resident", payer], elsewhere, env, "how much do I owe?\n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "in total" in result.stdout
    assert not (elsewhere / "billtalk.db").exists(), "an empty database appeared in the cwd"

    unknown = _run(["chat", "--resident", "nobody-here"], elsewhere, env, "hi\n")
    assert unknown.returncode == 2
    assert "unknown resident 'nobody-here'" in unknown.stderr
    assert str(home / "billtalk.db") in unknown.stderr, unknown.stderr
    assert not (elsewhere / "billtalk.db").exists()


def test_run_with_its_port_taken_exits_clearly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(BILLTALK_DATABASE_URL=f"sqlite:///{tmp_path / 'run.db'}")
        result = _run(["run", "--port", str(port)], tmp_path, env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr
    assert "is ready" not in result.stderr + result.stdout
    assert not (tmp_path / "run.db").exists(), "nothing is prepared before the port check"


def test_start_up_is_quiet(tmp_path: Path) -> None:
    env = _env(BILLTALK_DATABASE_URL=f"sqlite:///{tmp_path / 'quiet.db'}")
    env.pop("BILLTALK_SECRET_KEY")  # the development key: one warning, not one per package
    code = (
        "from billtalk.settings import get_settings\n"
        "from billtalk.logs import configure_logging\n"
        "s = get_settings(); configure_logging(s.log_level)\n"
        "from app.bootstrap import prepare_product\n"
        "print(prepare_product(s.database_url, households=3))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        encoding="utf-8",
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    err = result.stderr
    assert "setup plugin" not in err and "Running upgrade" not in err, err[:2000]
    assert err.count("insecure_secret_key") == 1, err[:2000]
    assert "payment_id=" not in err, "a log line per seeded payment"
    assert "demo_seeded" in err


def test_speech_transcribe_refuses_unknown_grammar_names(tmp_path: Path) -> None:
    wav = tmp_path / "hello.wav"
    said = _run(["speech", "say", "how much do I owe", "--out", str(wav)], tmp_path, _env())
    assert said.returncode == 0, said.stderr[-2000:]
    result = _run(["speech", "transcribe", str(wav), "--grammar", "/etc/passwd"], tmp_path, _env())
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "unknown_grammar"
    for name in ("amount", "yes_no", "utility", "month", "digits", "general"):
        assert name in error["message"]
    assert "root:" not in result.stdout + result.stderr, "the file was read out"
    assert "Traceback" not in result.stderr
    ok = _run(["speech", "transcribe", str(wav), "--grammar", "yes_no"], tmp_path, _env())
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_speech_say_detects_chinese(tmp_path: Path) -> None:
    zh = _run(
        ["speech", "say", "我的电费是多少", "--out", str(tmp_path / "zh.wav")], tmp_path, _env()
    )
    assert zh.returncode == 0, zh.stderr[-2000:]
    assert json.loads(zh.stdout)["lang"] == "zh"
    en = _run(
        ["speech", "say", "what is my bill", "--out", str(tmp_path / "en.wav")], tmp_path, _env()
    )
    assert json.loads(en.stdout)["lang"] == "en"
    forced = _run(
        ["speech", "say", "我的电费", "--lang", "en", "--out", str(tmp_path / "f.wav")],
        tmp_path,
        _env(),
    )
    assert json.loads(forced.stdout)["lang"] == "en"


def test_staff_issue_a_pin_code_and_the_resident_sets_a_pin_with_it(
    seeded: Any, community_db: str, tmp_path: Path
) -> None:
    payer = seeded.roles["payer"]["resident_id"]
    env = _env(BILLTALK_DATABASE_URL=community_db)
    issued = _run(["pin", "code", "--resident", payer], REPO, env)
    assert issued.returncode == 0, issued.stderr[-2000:]
    code = json.loads(issued.stdout)["code"]
    lines = ["set up a PIN", code, "482916", "482916"]
    chat = _run(["chat", "--resident", payer], REPO, env, "".join(f"{x}\n" for x in lines))
    assert chat.returncode == 0, chat.stderr[-2000:]
    replies = chat.stdout.split("--\n")[:-1]
    assert "one-time code" in replies[0]
    assert "6-digit PIN" in replies[1] and code not in chat.stdout
    assert "PIN is set" in replies[3]
    unknown = _run(["pin", "code", "--resident", "nobody-here"], REPO, env)
    assert unknown.returncode == 2 and "unknown resident" in unknown.stderr
