"""The speaker's web endpoints over real loopback HTTP: plain audio, and the Alexa skill."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.channels.speaker.certs import CERT_URL, TestAuthority, alexa_request, make_authority
from tests.conversations.conftest import Clock

AMOUNT = re.compile(r"\d+\.\d{2}")
SKILL = "amzn1.ask.skill.test"


@dataclass
class SpeakerHttp:
    base: str
    channel: Any
    authority: TestAuthority

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=120)


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return make_authority()


@pytest.fixture
async def speaker_http(
    community_db: str, nlu_model: Any, clock: Clock, authority: TestAuthority, tmp_path: Path
) -> AsyncIterator[SpeakerHttp]:
    """The speaker endpoints mounted on a FastAPI app, served by uvicorn on a free port."""
    import uvicorn
    from fastapi import FastAPI

    from backend.client import BillingClient
    from billtalk.db import make_engine as make_db
    from bot.channels.speaker.alexa_verify import AlexaVerifier
    from bot.channels.speaker.channel import SpeakerChannel
    from bot.channels.speaker.devices import ensure_schema
    from bot.channels.speaker.http import mount
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.engine import DialogueEngine
    from bot.settings import DialogueSettings
    from bot.store import ConversationStore

    ensure_schema(community_db)
    (tmp_path / "chain.pem").write_bytes(authority.chain_pem)
    (tmp_path / "roots.pem").write_bytes(authority.root_pem())
    settings = SpeakerSettings(
        alexa_skill_id=SKILL,
        alexa_trust_store=str(tmp_path / "roots.pem"),
        alexa_cert_files={CERT_URL: str(tmp_path / "chain.pem")},
    )
    store = ConversationStore(make_db(community_db))
    billing = BillingClient.embedded(community_db)
    engine = DialogueEngine(store, billing, nlu_model, settings=DialogueSettings(), clock=clock)
    channel = SpeakerChannel(engine, settings=settings)
    app = FastAPI()
    mount(app, channel=channel, verifier=AlexaVerifier(settings), settings=settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield SpeakerHttp(f"http://127.0.0.1:{port}", channel, authority)
    finally:
        server.should_exit = True
        await task
        await billing.aclose()
        store.engine.dispose()


# -- plain HTTP audio ------------------------------------------------------------------


async def test_ask_with_real_audio_pairs_then_answers_with_audio(
    speaker_http: SpeakerHttp, seeded: Any, say: Any
) -> None:
    payer = seeded.roles["payer"]
    key = speaker_http.channel.devices.issue_key("diy-kitchen", datetime.now(UTC), "kitchen")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "audio/wav"}
    async with speaker_http.client() as client:
        code_words = " ".join(
            ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][int(d)]
            for d in payer["link_code"]
        )
        first = await client.post(
            "/api/v1/speaker/ask", content=say(f"my link code is {code_words}"), headers=headers
        )
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["transcript"].endswith(payer["link_code"]), body
        assert "paired" in body["reply_text"]
        reply = await client.post(
            "/api/v1/speaker/ask", content=say("how much do I owe"), headers=headers
        )
        body = reply.json()
        assert body["transcript"] == "how much do i owe", body
        assert f"{payer['total']:.2f} yuan" in body["reply_text"]
        audio = await client.get(body["audio_url"])
        assert audio.status_code == 200
        assert audio.headers["content-type"] == "audio/wav"
        assert audio.content[:4] == b"RIFF" and len(audio.content) > 20_000


async def test_ask_in_chinese_reaches_a_chinese_recogniser(speaker_http: SpeakerHttp) -> None:
    """``?lang=zh`` is the request's language: under ``auto`` Whisper decodes it (espeak's
    Mandarin is not intelligible to it, so only that something was heard is checked)."""
    pytest.importorskip("faster_whisper")
    from speech import synthesize

    key = speaker_http.channel.devices.issue_key("diy-zh", datetime.now(UTC), "kitchen")
    async with speaker_http.client() as client:
        reply = await client.post(
            "/api/v1/speaker/ask?lang=zh",
            content=synthesize("我欠多少钱", lang="zh"),
            headers={"X-Device-Key": key, "Content-Type": "audio/wav"},
        )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    # Not refused, and not an English decoder's guess: Chinese characters came back.
    assert any("\u4e00" <= c <= "\u9fff" for c in body["transcript"]), body
    assert body["language"] == "zh" and "没有听到" not in body["reply_text"], body


async def test_ask_refuses_bad_keys_non_audio_and_answers_silence(
    speaker_http: SpeakerHttp, say: Any
) -> None:
    import numpy as np

    async with speaker_http.client() as client:
        bad = await client.post(
            "/api/v1/speaker/ask", content=say("hello"), headers={"X-Device-Key": "spk_nope"}
        )
        assert bad.status_code == 401
        assert bad.json()["error"]["code"] == "unauthorized"
        key = speaker_http.channel.devices.issue_key("diy-hall", datetime.now(UTC))
        headers = {"X-Device-Key": key}
        junk = await client.post(
            "/api/v1/speaker/ask", content=b"not audio at all", headers=headers
        )
        assert junk.status_code == 422
        from speech.audio import encode_audio

        silent = encode_audio(np.zeros(32_000, dtype=np.float32), "wav")
        quiet = await client.post("/api/v1/speaker/ask", content=silent, headers=headers)
        assert quiet.status_code == 200
        assert quiet.json()["transcript"] == ""
        assert "didn't hear anything" in quiet.json()["reply_text"]
        ogg = encode_audio(np.zeros(16_000, dtype=np.float32) + 0.0, "ogg")
        assert (
            await client.post("/api/v1/speaker/ask", content=ogg, headers=headers)
        ).status_code == 200


async def test_ask_accepts_ogg(speaker_http: SpeakerHttp, say: Any) -> None:
    from speech.audio import encode_audio, load_audio

    key = speaker_http.channel.devices.issue_key("diy-ogg", datetime.now(UTC))
    ogg = encode_audio(load_audio(say("how much do I owe"), trim=False).samples, "ogg")
    async with speaker_http.client() as client:
        reply = await client.post("/api/v1/speaker/ask", content=ogg, headers={"X-Device-Key": key})
    assert reply.status_code == 200, reply.text
    assert reply.json()["transcript"] == "how much do i owe"
    assert "link code" in reply.json()["reply_text"]  # not paired: no amount
    assert not AMOUNT.search(reply.json()["reply_text"])


# -- Alexa -----------------------------------------------------------------------------


async def _alexa(
    client: httpx.AsyncClient, authority: TestAuthority, body: bytes, **kw: Any
) -> Any:
    headers = authority.headers(body, **kw)
    return await client.post("/speaker/alexa", content=body, headers=headers)


async def test_alexa_launch_pair_ask_and_end(speaker_http: SpeakerHttp, seeded: Any) -> None:
    payer = seeded.roles["payer"]
    authority = speaker_http.authority
    async with speaker_http.client() as client:
        launch = await _alexa(client, authority, alexa_request("LaunchRequest"))
        assert launch.status_code == 200, launch.text
        response = launch.json()["response"]
        assert response["outputSpeech"]["type"] == "SSML"
        assert response["outputSpeech"]["ssml"].startswith("<speak>")
        assert "link code" in response["outputSpeech"]["ssml"]
        assert response["shouldEndSession"] is False
        assert "reprompt" in response

        pair = await _alexa(
            client,
            authority,
            alexa_request(
                "IntentRequest",
                intent="BillTalkIntent",
                slots={"utterance": f"my link code is {payer['link_code']}"},
            ),
        )
        assert "paired" in pair.json()["response"]["outputSpeech"]["ssml"]
        ask = await _alexa(
            client,
            authority,
            alexa_request(
                "IntentRequest", intent="BillTalkIntent", slots={"utterance": "how much do I owe"}
            ),
        )
        ssml = ask.json()["response"]["outputSpeech"]["ssml"]
        assert f"{payer['total']:.2f} yuan" in ssml
        pay = await _alexa(
            client,
            authority,
            alexa_request(
                "IntentRequest", intent="BillTalkIntent", slots={"utterance": "pay the water bill"}
            ),
        )
        assert "Say yes to pay, or no." in pay.json()["response"]["outputSpeech"]["ssml"]
        assert pay.json()["response"]["shouldEndSession"] is False
        stop = await _alexa(
            client, authority, alexa_request("IntentRequest", intent="AMAZON.StopIntent")
        )
        assert stop.json()["response"]["shouldEndSession"] is True
        ended = await _alexa(client, authority, alexa_request("SessionEndedRequest"))
        assert ended.json() == {"version": "1.0", "response": {}}


async def test_alexa_refuses_unverified_requests(
    speaker_http: SpeakerHttp, capsys: pytest.CaptureFixture[str]
) -> None:
    authority = speaker_http.authority
    async with speaker_http.client() as client:
        body = alexa_request("LaunchRequest")
        headers = authority.headers(body)
        tampered = await client.post(
            "/speaker/alexa", content=body.replace(b"en-US", b"en-GB"), headers=headers
        )
        assert tampered.status_code == 400
        assert tampered.json()["error"]["code"] == "signature_invalid"

        old = alexa_request("LaunchRequest", timestamp=datetime.now(UTC) - timedelta(seconds=300))
        expired = await _alexa(client, authority, old)
        assert expired.json()["error"]["code"] == "timestamp"

        body = alexa_request("LaunchRequest")
        elsewhere = await _alexa(
            client, authority, body, url="https://evil.example.com/echo.api/cert.pem"
        )
        assert elsewhere.json()["error"]["code"] == "cert_url"

        body = alexa_request("LaunchRequest")
        first = await _alexa(client, authority, body)
        assert first.status_code == 200
        replayed = await _alexa(client, authority, body)
        assert replayed.status_code == 400
        assert replayed.json()["error"]["code"] == "replay"

        stranger = make_authority()
        body = alexa_request("LaunchRequest")
        forged = await _alexa(client, stranger, body)
        assert forged.json()["error"]["code"] == "signature_invalid"
    err = capsys.readouterr().err
    assert err.count("alexa_request_refused") >= 5
    assert "amzn1.ask.device" not in err  # the body is never logged
