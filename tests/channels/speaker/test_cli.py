"""``billtalk speaker serve / devices / unpair / key`` as the outside checks run them."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

REPO = Path(__file__).resolve().parents[3]
BILLTALK = [sys.executable, "-m", "app"]


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["BILLTALK_DATABASE_URL"] = url
    env["BILLTALK_SECRET_KEY"] = "test-secret-key-for-the-test-suite-only"
    # English only here: serve need not load Whisper (tests/channels/speaker/test_whisper.py)
    env["BILLTALK_SPEAKER_ASR_ENGINE"] = "pocketsphinx"
    return env


def _run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BILLTALK, "speaker", *args],
        capture_output=True,
        encoding="utf-8",
        env=_env(url),
        cwd=REPO,
        timeout=600,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _request(port: int, event: Any, until: str) -> Any:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(event)
        while True:
            got = await asyncio.wait_for(client.read_event(), 120)
            assert got is not None
            if got.type == until or got.type in ("handled", "not-handled"):
                return got


def test_serve_pair_list_and_unpair(seeded: Any, community_db: str) -> None:
    payer = seeded.roles["payer"]
    port = _free_port()
    proc = subprocess.Popen(
        [*BILLTALK, "speaker", "serve", "--uri", f"tcp://127.0.0.1:{port}"],
        env=_env(community_db),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, (
                    proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                )
                assert time.monotonic() < deadline, "the Wyoming server did not start"
                time.sleep(0.5)
        info = Info.from_event(asyncio.run(_request(port, Describe().event(), "info")))
        assert info.asr[0].installed and info.handle[0].installed and info.tts[0].installed
        ctx = {"conversation_id": "c1", "device_id": "kitchen-1", "satellite_id": "kitchen"}
        unpaired = asyncio.run(
            _request(port, Transcript(text="how much do I owe", context=ctx).event(), "handled")
        )
        assert unpaired.type == "not-handled" and "link code" in unpaired.data["text"]
        paired = asyncio.run(
            _request(
                port,
                Transcript(text=f"my link code is {payer['link_code']}", context=ctx).event(),
                "handled",
            )
        )
        assert paired.type == "handled"
        balance = asyncio.run(
            _request(port, Transcript(text="how much do I owe", context=ctx).event(), "handled")
        )
        assert f"{payer['total']:.2f}" in balance.data["text"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    listed = _run(community_db, "devices")
    assert listed.returncode == 0, listed.stderr[-2000:]
    devices = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [d["device_id"] for d in devices] == ["kitchen-1"]
    assert devices[0]["household_id"] == payer["household_id"]
    assert devices[0]["label"] == "kitchen"

    gone = _run(community_db, "unpair", "--device", "kitchen-1")
    assert gone.returncode == 0 and json.loads(gone.stdout)["unpaired"] is True
    assert _run(community_db, "devices").stdout == ""
    again = _run(community_db, "unpair", "--device", "kitchen-1")
    assert again.returncode == 1

    key = _run(community_db, "key", "--device", "diy-1", "--label", "hall")
    assert json.loads(key.stdout)["key"].startswith("spk_")
    every = [json.loads(x) for x in _run(community_db, "devices", "--all").stdout.splitlines()]
    assert {d["device_id"] for d in every} == {"kitchen-1", "diy-1"}
    assert all(not d["paired"] for d in every)


def test_serve_refuses_a_bad_uri(community_db: str) -> None:
    bad = _run(community_db, "serve", "--uri", "http://127.0.0.1:1")
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["error"]["code"] == "bad_uri"
