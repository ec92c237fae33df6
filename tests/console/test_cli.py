"""``billtalk staff ...`` and ``billtalk nlu annotations export`` as subprocesses (CONTRACTS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.console.helpers import add_conversation

REPO = Path(__file__).resolve().parents[2]
BILLTALK = str(Path(sys.executable).parent / "billtalk")


def _run(url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BILLTALK_DATABASE_URL": url}
    env.pop("BILLTALK_DIALOGUE_DATABASE_URL", None)
    return subprocess.run(
        [BILLTALK, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


def test_staff_commands(fresh_url: str) -> None:
    from billtalk.db import make_engine
    from console.accounts import authenticate

    r = _run(
        fresh_url,
        "staff",
        "add",
        "--username",
        "ann",
        "--role",
        "supervisor",
        stdin="s3cret-password\n",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["role"] == "supervisor"
    assert "s3cret-password" not in r.stdout + r.stderr
    # bad role, short password, taken name: clear errors, exit 2
    assert (
        _run(
            fresh_url,
            "staff",
            "add",
            "--username",
            "bob",
            "--role",
            "boss",
            stdin="whatever-pass\n",
        ).returncode
        == 2
    )
    short = _run(fresh_url, "staff", "add", "--username", "bob", "--role", "agent", stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    assert (
        _run(
            fresh_url,
            "staff",
            "add",
            "--username",
            "ann",
            "--role",
            "agent",
            stdin="another-pass\n",
        ).returncode
        == 2
    )
    assert (
        _run(
            fresh_url,
            "staff",
            "add",
            "--username",
            "bob",
            "--role",
            "agent",
            "--building",
            "B1",
            stdin="bobs-password\n",
        ).returncode
        == 0
    )
    listed = [json.loads(x) for x in _run(fresh_url, "staff", "list").stdout.splitlines()]
    assert [(s["username"], s["role"], s["buildings"]) for s in listed] == [
        ("ann", "supervisor", ["*"]),
        ("bob", "agent", ["B1"]),
    ]
    engine = make_engine(fresh_url)
    kw = {"max_per_username": 50, "max_per_address": 50}
    from datetime import timedelta

    assert authenticate(engine, "ann", "s3cret-password", "t", window=timedelta(minutes=1), **kw)
    assert (
        _run(fresh_url, "staff", "passwd", "--username", "ann", stdin="new-password-1\n").returncode
        == 0
    )
    assert not authenticate(
        engine, "ann", "s3cret-password", "t", window=timedelta(minutes=1), **kw
    )
    assert authenticate(engine, "ann", "new-password-1", "t", window=timedelta(minutes=1), **kw)
    assert _run(fresh_url, "staff", "disable", "--username", "ann").returncode == 0
    assert not authenticate(engine, "ann", "new-password-1", "t", window=timedelta(minutes=1), **kw)
    assert _run(fresh_url, "staff", "disable", "--username", "nobody").returncode == 2
    engine.dispose()


def test_annotations_export_command(fresh_url: str, tmp_path: Path) -> None:
    from billtalk.db import make_engine
    from bot.store import TurnRow
    from console.annotations import annotate, parse_entities
    from tests.console.helpers import add_community

    engine = make_engine(fresh_url)
    add_community(engine)
    cid = add_conversation(engine, "H0101", [{"text": "what do I owe for gas", "intent": "usage"}])
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        turn_id = s.scalar(select(TurnRow.id).where(TurnRow.conversation_id == cid))
    annotate(engine, turn_id, "usage", [], "ann")
    annotate(
        engine,
        turn_id,
        "check_balance",
        parse_entities("what do I owe for gas", "utility=gas"),
        "ann",
    )
    engine.dispose()
    out = tmp_path / "queue" / "nlu.yml"
    r = _run(fresh_url, "nlu", "annotations", "export", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["examples"] == 1
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert doc["nlu"] == [
        {"intent": "check_balance", "examples": "- what do I owe for [gas](utility)\n"}
    ]


def test_annotations_train_includes_the_queue(fresh_url: str, tmp_path: Path) -> None:
    from billtalk.db import make_engine
    from bot.store import TurnRow
    from console.annotations import annotate
    from tests.console.helpers import add_community

    base = tmp_path / "base.yml"
    base.write_text(
        'version: "3.1"\nnlu:\n'
        "- intent: greet\n  examples: |\n    - hello\n    - hi there\n    - good morning\n"
        "- intent: goodbye\n  examples: |\n    - bye\n    - see you\n    - good night\n",
        encoding="utf-8",
    )
    engine = make_engine(fresh_url)
    add_community(engine)
    cid = add_conversation(engine, "H0101", [{"text": "my meter is broken", "intent": "greet"}])
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        turn_id = s.scalar(select(TurnRow.id).where(TurnRow.conversation_id == cid))
    annotate(engine, turn_id, "report_problem", [], "ann")
    engine.dispose()
    out = tmp_path / "model"
    r = _run(
        fresh_url,
        "nlu",
        "annotations",
        "train",
        "--out",
        str(out),
        "--data",
        str(base),
        "--no-encoder",
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary == {"model": str(out), "examples": 7, "annotations": 1, "intents": 3}
    assert (out / "metadata.json").exists()
