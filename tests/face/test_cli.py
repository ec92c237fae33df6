"""``billtalk face``: the real console script, exactly as CONTRACTS.md describes it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from billtalk.db import make_engine
from biometrics.face.settings import FaceSettings

REPO = Path(__file__).resolve().parents[2]
BILLTALK = REPO / ".venv" / "bin" / "billtalk"


def _billtalk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("BILLTALK_FACE_THRESHOLD", None)
    return subprocess.run(
        [str(BILLTALK), *args], capture_output=True, text=True, timeout=300, cwd=REPO, env=full_env
    )


def test_verify_prints_one_json_line_per_probe_in_order(photo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    probes = [photo("obama2"), photo("two_people"), photo("biden"), corrupt, photo("obama_oval")]
    proc = _billtalk(
        "face", "verify", "--enrolled", str(photo("obama")), str(photo("obama_oval")),
        "--probe", *map(str, probes),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["probe"] for line in lines] == [str(p) for p in probes]
    shipped = FaceSettings().threshold

    genuine, group, impostor, bad, same = lines
    assert set(genuine) == {"probe", "match", "distance", "threshold"}
    assert genuine["match"] is True and genuine["threshold"] == shipped
    assert 0 < genuine["distance"] <= shipped
    assert group["error"]["code"] == "multiple_faces" and group["error"]["message"]
    assert impostor["match"] is False and impostor["distance"] > shipped
    assert bad["error"]["code"] == "corrupt_image"
    assert same["match"] is True and same["distance"] < 0.01  # nearest enrolled photo decides


def test_verify_exit_code_0_when_every_probe_was_judged(photo) -> None:  # type: ignore[no-untyped-def]
    proc = _billtalk(
        "face", "verify", "--enrolled", str(photo("rose")), "--probe", str(photo("rose2")),
        str(photo("adams")),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    decisions = [json.loads(line)["match"] for line in proc.stdout.splitlines()]
    assert decisions == [True, False]


def test_enroll_and_delete(photo, community_db: tuple[str, str]) -> None:  # type: ignore[no-untyped-def]
    url, resident = community_db
    env = {"BILLTALK_DATABASE_URL": url}
    proc = _billtalk(
        "face", "enroll", "--resident", resident, str(photo("obama")), str(photo("obama2")),
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["resident_id"] == resident and out["samples"] == 2
    assert "encoding" not in proc.stdout + proc.stderr

    bad = _billtalk("face", "enroll", "--resident", resident, str(photo("two_people")), env=env)
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["error"]["code"] == "multiple_faces"

    gone = _billtalk("face", "delete", "--resident", resident, env=env)
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout) == {"resident_id": resident, "removed": 1}


@pytest.mark.parametrize("command", ["enroll", "delete"])
def test_unknown_residents_are_refused(  # type: ignore[no-untyped-def]
    photo, community_db: tuple[str, str], tmp_path: Path, command: str
) -> None:
    url, _ = community_db
    files = [str(photo("obama"))] if command == "enroll" else []
    for env_url in (url, f"sqlite:///{tmp_path / 'never-created.db'}"):
        proc = _billtalk(
            "face", command, "--resident", "nobody-here", *files,
            env={"BILLTALK_DATABASE_URL": env_url},
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        error = json.loads(proc.stdout)["error"]
        assert error["code"] == "unknown_resident"
        assert "nobody-here" in error["message"] and "billing database" in error["message"]
        assert "unknown resident 'nobody-here'" in proc.stderr
    # Nothing was created: not the missing database, not a template.
    assert not (tmp_path / "never-created.db").exists()
    with make_engine(url).connect() as conn:
        if inspect(conn).has_table("biometric_templates"):
            rows = conn.execute(
                text("SELECT count(*) FROM biometric_templates WHERE resident_id = 'nobody-here'")
            )
            assert rows.scalar_one() == 0


@pytest.mark.parametrize("args", [["--probe", "x.jpg"], ["stray.jpg", "--enrolled", "a.jpg"]])
def test_verify_usage_errors(args: list[str]) -> None:
    proc = _billtalk("face", "verify", *args)
    assert proc.returncode not in (0, 2)
    assert proc.stdout == ""


def test_delete_still_erases_a_template_whose_resident_is_gone(  # type: ignore[no-untyped-def]
    photo, community_db: tuple[str, str]
) -> None:
    url, resident = community_db
    env = {"BILLTALK_DATABASE_URL": url}
    assert (
        _billtalk("face", "enroll", "--resident", resident, str(photo("rose")), env=env).returncode
        == 0
    )
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))  # the resident leaves the records
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("DELETE FROM residents WHERE resident_id = ?", (resident,))
    conn.commit()
    conn.close()
    refused = _billtalk("face", "enroll", "--resident", resident, str(photo("rose")), env=env)
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["error"]["code"] == "unknown_resident"
    gone = _billtalk("face", "delete", "--resident", resident, env=env)
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout) == {"resident_id": resident, "removed": 1}
