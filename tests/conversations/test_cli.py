"""``billtalk chat`` and ``billtalk log export`` through a pipe, as CONTRACTS.md describes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BILLTALK = [sys.executable, "-m", "app"]


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["BILLTALK_DATABASE_URL"] = url
    env["BILLTALK_SECRET_KEY"] = "test-secret-key-for-the-test-suite-only"
    return env


def _chat(
    url: str, resident: str, lines: list[str], lang: str = "en"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BILLTALK, "chat", "--resident", resident, "--lang", lang],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        encoding="utf-8",
        env=_env(url),
        cwd=REPO,
        timeout=900,
    )


def test_chat_over_a_pipe_pays_and_the_log_exports(seeded: Any, community_db: str) -> None:
    payer = seeded.roles["payer"]
    lines = ["how much do I owe?", "pay 10 for water", "1", "9", "", "1", "我欠多少钱"]
    result = _chat(community_db, payer["resident_id"], lines, lang="zh")
    assert result.returncode == 0, result.stderr[-2000:]
    replies = result.stdout.split("--\n")
    assert replies[-1] == "", "every reply ends with a line holding only --"
    replies = replies[:-1]
    assert len(replies) == 7, result.stdout
    assert "in total" in replies[0]
    assert "[1] Pay ¥10.00  [2] Cancel" in replies[1]
    assert "Paid: ¥10.00" in replies[2]
    assert "no buttons" in replies[3]
    assert "didn't get any text" in replies[4]
    assert "no buttons" in replies[5]
    assert "共欠费" in replies[6], "the reply follows the message's language"
    assert "Traceback" not in result.stdout

    listed = subprocess.run(
        [*BILLTALK, "log", "list", "--resident", payer["resident_id"]],
        capture_output=True,
        encoding="utf-8",
        env=_env(community_db),
        cwd=REPO,
        timeout=600,
    )
    conversations = json.loads(listed.stdout)
    assert [c["channel"] for c in conversations] == ["terminal"]
    exported = subprocess.run(
        [*BILLTALK, "log", "export", "--conversation", conversations[0]["conversation_id"]],
        capture_output=True,
        encoding="utf-8",
        env=_env(community_db),
        cwd=REPO,
        timeout=600,
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    data = json.loads(exported.stdout)
    events = data["events"]
    kinds = {e["event"] for e in events}
    assert {"session_started", "user", "bot", "action", "slot", "payment"} <= kinds
    users = [e for e in events if e["event"] == "user"]
    assert len(users) == 7
    assert users[0]["parse_data"]["intent"]["name"] == "check_balance"
    assert users[1]["parse_data"]["entities"]
    assert all(e["metadata"]["latency_ms"] >= 0 for e in users)


def test_chat_with_an_unknown_resident_fails_cleanly(community_db: str) -> None:
    result = _chat(community_db, "r-nobody", ["hello"])
    assert result.returncode == 2
    assert "unknown resident" in result.stderr
    assert result.stdout == ""


def test_log_export_of_an_unknown_conversation(community_db: str) -> None:
    result = subprocess.run(
        [*BILLTALK, "log", "export", "--conversation", "nope"],
        capture_output=True,
        encoding="utf-8",
        env=_env(community_db),
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == 2 and result.stdout == ""
