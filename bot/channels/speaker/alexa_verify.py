"""Verifying that a request really comes from Alexa, as Amazon requires of a skill endpoint.

A custom skill hosted as a web service must check every request
(Amazon's "Host a custom skill as a web service"):

1. the ``SignatureCertChainUrl`` header: scheme ``https``, host ``s3.amazonaws.com``
   (any case), path starting ``/echo.api/`` after normalisation (``..`` resolved),
   port 443 if one is given;
2. the certificate chain found there: currently valid, the signing certificate's
   subject alternative names include ``echo-api.amazon.com``, and every certificate
   chains to a trusted root;
3. the ``Signature-256`` header: the base64 RSA (PKCS #1 v1.5) SHA-256 signature of
   the raw request body, checked with the signing certificate's public key;
4. the request's ``timestamp``: within 150 seconds of now.

On top of that a request id seen before (within the timestamp window) is refused
as a replay, and a request for another skill is refused when the skill id is
configured. Chains are fetched once per URL and cached (re-checked for expiry on
every use). The trust store is the ``certifi`` bundle unless
``BILLTALK_SPEAKER_ALEXA_TRUST_STORE`` names another PEM file, and a deployment
without outbound access can map certificate URLs to local files
(``BILLTALK_SPEAKER_ALEXA_CERT_FILES``).
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from billtalk.logs import get_logger
from bot.channels.speaker.settings import SpeakerSettings, get_speaker_settings

log = get_logger("bot.channels.speaker.alexa")

#: The name the signing certificate must carry.
ECHO_API_NAME = "echo-api.amazon.com"
CERT_HOST = "s3.amazonaws.com"
CERT_PATH_PREFIX = "/echo.api/"
#: Largest certificate chain accepted from a URL.
MAX_CHAIN_BYTES = 64 * 1024

#: Fetches a certificate chain (PEM bytes) from its URL.
CertFetcher = Callable[[str], Awaitable[bytes]]


class AlexaVerificationError(Exception):
    """A request that must be refused, with a machine-readable reason.

    Attributes:
        code: ``cert_url``, ``cert_fetch``, ``cert_invalid``, ``signature_missing``,
            ``signature_invalid``, ``body_invalid``, ``timestamp``, ``replay`` or
            ``wrong_skill``.
        message: What was wrong (never the request's content).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_cert_url(url: str) -> str:
    """Check a ``SignatureCertChainUrl`` against Amazon's rules; the normalised URL.

    Raises:
        AlexaVerificationError: ``cert_url`` when a rule is broken.
    """
    if not url:
        raise AlexaVerificationError("cert_url", "the SignatureCertChainUrl header is missing")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise AlexaVerificationError("cert_url", f"malformed certificate URL: {exc}") from exc
    if parts.scheme.lower() != "https":
        raise AlexaVerificationError("cert_url", "the certificate URL must use https")
    if (parts.hostname or "").lower() != CERT_HOST:
        raise AlexaVerificationError("cert_url", f"the certificate URL's host must be {CERT_HOST}")
    if port not in (None, 443):
        raise AlexaVerificationError("cert_url", "the certificate URL's port must be 443")
    path = posixpath.normpath(unquote(parts.path)) if parts.path else ""
    if parts.path.endswith("/") and not path.endswith("/"):
        path += "/"
    if not path.startswith(CERT_PATH_PREFIX):
        raise AlexaVerificationError(
            "cert_url", f"the certificate URL's path must start with {CERT_PATH_PREFIX}"
        )
    return f"https://{CERT_HOST}{path}"


def load_trust_roots(path: str | Path | None = None) -> list[x509.Certificate]:
    """Root certificates from a PEM bundle (default: the ``certifi`` bundle)."""
    if not path:
        import certifi

        path = certifi.where()
    return x509.load_pem_x509_certificates(Path(path).read_bytes())


class AlexaVerifier:
    """Checks Alexa requests; one per process (it holds the chain cache and seen ids).

    Args:
        settings: Speaker settings (skill id, trust store, local certificate files, skew).
        fetch: Fetches a chain by URL; default: a local file from
            ``settings.alexa_cert_files``, else an HTTPS download.
        roots: Trusted roots; default: ``settings.alexa_trust_store`` or ``certifi``.
        clock: Seconds since the epoch (tests move it).
    """

    def __init__(
        self,
        settings: SpeakerSettings | None = None,
        *,
        fetch: CertFetcher | None = None,
        roots: list[x509.Certificate] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or get_speaker_settings()
        self._fetch = fetch or self._default_fetch
        self._roots = (
            roots
            if roots is not None
            else load_trust_roots(self.settings.alexa_trust_store or None)
        )
        self._store = Store(self._roots)
        self.clock = clock
        self._chains: dict[str, tuple[x509.Certificate, list[x509.Certificate]]] = {}
        self._seen: dict[str, float] = {}
        #: Number of chain downloads (tests check the cache with it).
        self.fetches = 0

    async def verify(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """Check one request; its parsed JSON body if it is genuine.

        Args:
            headers: The HTTP headers (case-insensitive lookups are done here).
            body: The raw body, exactly as received.

        Raises:
            AlexaVerificationError: The request must be refused (HTTP 400).
        """
        lowered = {k.lower(): v for k, v in headers.items()}
        url = check_cert_url(lowered.get("signaturecertchainurl", ""))
        signature_b64 = lowered.get("signature-256", "")
        if not signature_b64:
            raise AlexaVerificationError("signature_missing", "the Signature-256 header is missing")
        try:
            signature = base64.b64decode(signature_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise AlexaVerificationError(
                "signature_invalid", "the Signature-256 header is not base64"
            ) from exc
        leaf = await self._chain(url)
        public_key = leaf.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise AlexaVerificationError("cert_invalid", "the signing key is not an RSA key")
        try:
            public_key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise AlexaVerificationError(
                "signature_invalid", "the body does not match its Signature-256"
            ) from exc
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AlexaVerificationError("body_invalid", "the body is not JSON") from exc
        if not isinstance(request, dict) or not isinstance(request.get("request"), dict):
            raise AlexaVerificationError("body_invalid", "the body holds no request")
        self._check_timestamp(request["request"].get("timestamp"))
        self._check_skill(request)
        self._check_replay(request["request"].get("requestId"), signature)
        return request

    # -- the steps ----------------------------------------------------------------

    async def _chain(self, url: str) -> x509.Certificate:
        now = datetime.fromtimestamp(self.clock(), UTC)
        cached = self._chains.get(url)
        if cached is None:
            try:
                pem = await self._fetch(url)
            except AlexaVerificationError:
                raise
            except Exception as exc:
                raise AlexaVerificationError(
                    "cert_fetch",
                    f"the certificate chain could not be fetched: {type(exc).__name__}",
                ) from exc
            self.fetches += 1
            if len(pem) > MAX_CHAIN_BYTES:
                raise AlexaVerificationError("cert_invalid", "the certificate chain is too large")
            try:
                certs = x509.load_pem_x509_certificates(pem)
            except ValueError as exc:
                raise AlexaVerificationError(
                    "cert_invalid", "the certificate chain is not PEM"
                ) from exc
            cached = (certs[0], certs[1:])
        leaf, intermediates = cached
        self._check_chain(leaf, intermediates, now)
        self._chains[url] = cached
        return leaf

    def _check_chain(
        self, leaf: x509.Certificate, intermediates: list[x509.Certificate], now: datetime
    ) -> None:
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            raise AlexaVerificationError("cert_invalid", "the signing certificate is not valid now")
        try:
            names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound as exc:
            raise AlexaVerificationError(
                "cert_invalid", "the signing certificate has no subject alternative names"
            ) from exc
        if ECHO_API_NAME not in names.value.get_values_for_type(x509.DNSName):
            raise AlexaVerificationError(
                "cert_invalid", f"the signing certificate is not for {ECHO_API_NAME}"
            )
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(now.replace(tzinfo=None))
            .build_server_verifier(x509.DNSName(ECHO_API_NAME))
        )
        try:
            verifier.verify(leaf, intermediates)
        except VerificationError as exc:
            raise AlexaVerificationError(
                "cert_invalid", f"the certificate chain is not trusted: {exc}"
            ) from exc

    def _check_timestamp(self, value: Any) -> None:
        if not isinstance(value, str):
            raise AlexaVerificationError("timestamp", "the request has no timestamp")
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise AlexaVerificationError("timestamp", "the request timestamp is malformed") from exc
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        skew = abs(self.clock() - stamp.timestamp())
        if skew > self.settings.alexa_max_skew_s:
            raise AlexaVerificationError(
                "timestamp",
                f"the request timestamp is {skew:.0f} s away from now "
                f"(limit {self.settings.alexa_max_skew_s} s)",
            )

    def _check_skill(self, request: dict[str, Any]) -> None:
        expected = self.settings.alexa_skill_id
        if not expected:
            return
        got = (request.get("session") or {}).get("application", {}).get("applicationId") or (
            request.get("context") or {}
        ).get("System", {}).get("application", {}).get("applicationId")
        if got != expected:
            raise AlexaVerificationError("wrong_skill", "the request is for another skill")

    def _check_replay(self, request_id: Any, signature: bytes) -> None:
        now = self.clock()
        window = 2 * self.settings.alexa_max_skew_s
        for key, until in list(self._seen.items()):
            if until < now:
                del self._seen[key]
        keys = [f"sig:{hashes_sha256(signature)}"]
        if isinstance(request_id, str) and request_id:
            keys.append(f"id:{request_id}")
        if any(k in self._seen for k in keys):
            raise AlexaVerificationError("replay", "this request was already received")
        for key in keys:
            self._seen[key] = now + window

    # -- fetching -------------------------------------------------------------------

    async def _default_fetch(self, url: str) -> bytes:
        local = self.settings.alexa_cert_files.get(url)
        if local is not None:
            return Path(local).read_bytes()
        import httpx

        async with httpx.AsyncClient(timeout=5.0, follow_redirects=False) as client:
            response = await client.get(url)
            response.raise_for_status()
            return response.content[: MAX_CHAIN_BYTES + 1]


def hashes_sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (replay keys)."""
    import hashlib

    return hashlib.sha256(data).hexdigest()


__all__ = [
    "AlexaVerificationError",
    "AlexaVerifier",
    "CertFetcher",
    "check_cert_url",
    "load_trust_roots",
]
