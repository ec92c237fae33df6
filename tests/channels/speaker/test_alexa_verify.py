"""Alexa request verification with a test CA and certificates made here (no network)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.channels.speaker.alexa_verify import (
    AlexaVerificationError,
    AlexaVerifier,
    check_cert_url,
)
from bot.channels.speaker.settings import SpeakerSettings
from tests.channels.speaker.certs import CERT_URL, alexa_request, make_authority


@pytest.fixture(scope="module")
def authority():  # type: ignore[no-untyped-def]
    return make_authority()


def _verifier(authority, tmp_path: Path, **settings) -> AlexaVerifier:  # type: ignore[no-untyped-def]
    chain = tmp_path / "chain.pem"
    chain.write_bytes(authority.chain_pem)
    roots = tmp_path / "roots.pem"
    roots.write_bytes(authority.root_pem())
    return AlexaVerifier(
        SpeakerSettings(
            alexa_trust_store=str(roots),
            alexa_cert_files={CERT_URL: str(chain)},
            alexa_skill_id="amzn1.ask.skill.test",
            **settings,
        )
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
        "https://s3.amazonaws.com:443/echo.api/echo-api-cert.pem",
        "https://s3.amazonaws.com/echo.api/../echo.api/echo-api-cert.pem",
        "HTTPS://s3.AmazonAWS.com/echo.api/echo-api-cert.pem",
    ],
)
def test_valid_cert_urls_pass(url: str) -> None:
    assert check_cert_url(url).startswith("https://s3.amazonaws.com/echo.api/")


@pytest.mark.parametrize(
    "url",
    [
        "http://s3.amazonaws.com/echo.api/echo-api-cert.pem",
        "https://notamazon.com/echo.api/echo-api-cert.pem",
        "https://s3.amazonaws.com/EcHo.aPi/echo-api-cert.pem",
        "https://s3.amazonaws.com/invalid.path/echo-api-cert.pem",
        "https://s3.amazonaws.com/echo.api/../invalid.path/echo-api-cert.pem",
        "https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem",
        "",
    ],
)
def test_invalid_cert_urls_are_refused(url: str) -> None:
    with pytest.raises(AlexaVerificationError) as err:
        check_cert_url(url)
    assert err.value.code == "cert_url"


async def test_a_signed_request_passes_and_the_chain_is_cached(authority, tmp_path) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(authority, tmp_path)
    for _ in range(3):
        body = alexa_request()
        request = await verifier.verify(authority.headers(body), body)
        assert request["request"]["type"] == "LaunchRequest"
    assert verifier.fetches == 1


async def test_a_bad_signature_is_refused(authority, tmp_path) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(authority, tmp_path)
    body = alexa_request()
    headers = authority.headers(body)
    tampered = body.replace(b"LaunchRequest", b"IntentRequest")
    with pytest.raises(AlexaVerificationError) as err:
        await verifier.verify(headers, tampered)
    assert err.value.code == "signature_invalid"
    with pytest.raises(AlexaVerificationError) as err:
        await verifier.verify({**headers, "Signature-256": "not base64!!"}, body)
    assert err.value.code == "signature_invalid"
    missing = {k: v for k, v in headers.items() if k != "Signature-256"}
    with pytest.raises(AlexaVerificationError) as err:
        await verifier.verify(missing, body)
    assert err.value.code == "signature_missing"


async def test_a_signature_from_another_ca_is_refused(authority, tmp_path) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(authority, tmp_path)
    stranger = make_authority()
    # The chain at the URL is the trusted one, the body signed by a stranger's key.
    body = alexa_request()
    with pytest.raises(AlexaVerificationError) as err:
        await verifier.verify(stranger.headers(body), body)
    assert err.value.code == "signature_invalid"
    # A chain from an untrusted CA, served at the URL.
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    chain = other_dir / "chain.pem"
    chain.write_bytes(stranger.chain_pem)
    roots = other_dir / "roots.pem"
    roots.write_bytes(authority.root_pem())
    untrusted = AlexaVerifier(
        SpeakerSettings(alexa_trust_store=str(roots), alexa_cert_files={CERT_URL: str(chain)})
    )
    with pytest.raises(AlexaVerificationError) as err:
        await untrusted.verify(stranger.headers(body), body)
    assert err.value.code == "cert_invalid"


async def test_a_certificate_for_another_name_or_expired_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = make_authority(san="evil.example.com")
    body = alexa_request()
    with pytest.raises(AlexaVerificationError) as err:
        await _verifier(other, tmp_path).verify(other.headers(body), body)
    assert err.value.code == "cert_invalid"
    assert "echo-api.amazon.com" in err.value.message
    now = datetime.now(UTC)
    expired = make_authority(
        leaf_not_before=now - timedelta(days=60), leaf_not_after=now - timedelta(days=1)
    )
    body = alexa_request()
    with pytest.raises(AlexaVerificationError) as err:
        await _verifier(expired, tmp_path).verify(expired.headers(body), body)
    assert err.value.code == "cert_invalid"


async def test_a_cert_url_on_another_host_is_refused_without_fetching(authority, tmp_path) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(authority, tmp_path)
    body = alexa_request()
    headers = authority.headers(body, url="https://evil.example.com/echo.api/cert.pem")
    with pytest.raises(AlexaVerificationError) as err:
        await verifier.verify(headers, body)
    assert err.value.code == "cert_url"
    assert verifier.fetches == 0


async def test_an_old_or_future_timestamp_is_refused(authority, tmp_path) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(authority, tmp_path)
    for delta in (timedelta(seconds=-151 - 5), timedelta(seconds=200)):
        body = alexa_request(timestamp=datetime.now(UTC) + delta)
        with pytest.raises(AlexaVerificationError) as err:
            await verifier.verify(authority.headers(body), body)
        assert err.value.code == "timestamp"
    body = alexa_request(timestamp=datetime.now(UTC) - timedelta(seconds=100))
    assert await verifier.verify(authority.headers(body), body)


async def test_a_replayed_request_is_refused(authority, tmp_path) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(authority, tmp_path)
    body = alexa_request()
    headers = authority.headers(body)
    await verifier.verify(headers, body)
    with pytest.raises(AlexaVerificationError) as err:
        await verifier.verify(headers, body)
    assert err.value.code == "replay"


async def test_a_request_for_another_skill_is_refused(authority, tmp_path) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(authority, tmp_path)
    body = alexa_request(skill_id="amzn1.ask.skill.someone-else")
    with pytest.raises(AlexaVerificationError) as err:
        await verifier.verify(authority.headers(body), body)
    assert err.value.code == "wrong_skill"


async def test_the_cache_expires_with_the_certificate(authority, tmp_path) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(authority, tmp_path)
    body = alexa_request()
    await verifier.verify(authority.headers(body), body)
    # A year later the cached leaf (valid 90 days) is no longer accepted.
    later = time.time() + 365 * 86400
    verifier.clock = lambda: later
    body = alexa_request(timestamp=datetime.fromtimestamp(later, UTC))
    with pytest.raises(AlexaVerificationError) as err:
        await verifier.verify(authority.headers(body), body)
    assert err.value.code == "cert_invalid"
