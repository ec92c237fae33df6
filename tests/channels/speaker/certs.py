"""A test certificate authority and an Alexa-like signing certificate, made in the test."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_URL = "https://s3.amazonaws.com/echo.api/echo-api-cert-test.pem"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ca(
    subject: str, key: rsa.RSAPrivateKey, issuer: str, issuer_key: rsa.RSAPrivateKey, now: datetime
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass
class TestAuthority:
    """A root, an intermediate and a leaf for ``echo-api.amazon.com`` (or another name)."""

    root: x509.Certificate
    chain_pem: bytes
    leaf_key: rsa.RSAPrivateKey

    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def sign(self, body: bytes) -> str:
        sig = self.leaf_key.sign(body, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(sig).decode()

    def headers(self, body: bytes, url: str = CERT_URL) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "SignatureCertChainUrl": url,
            "Signature-256": self.sign(body),
        }


def make_authority(
    *,
    san: str = "echo-api.amazon.com",
    leaf_not_before: datetime | None = None,
    leaf_not_after: datetime | None = None,
) -> TestAuthority:
    """Make a fresh test CA and signing certificate."""
    now = datetime.now(UTC)
    root_key, inter_key, leaf_key = _key(), _key(), _key()
    root = _ca("billtalk test root", root_key, "billtalk test root", root_key, now)
    inter = _ca("billtalk test intermediate", inter_key, "billtalk test root", root_key, now)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(san))
        .issuer_name(_name("billtalk test intermediate"))
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(leaf_not_before or now - timedelta(days=1))
        .not_valid_after(leaf_not_after or now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()), False
        )
        .sign(inter_key, hashes.SHA256())
    )
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, inter))
    return TestAuthority(root=root, chain_pem=chain, leaf_key=leaf_key)


def alexa_request(
    kind: str = "LaunchRequest",
    *,
    intent: str | None = None,
    slots: dict[str, str] | None = None,
    device_id: str = "amzn1.ask.device.TESTKITCHEN",
    skill_id: str = "amzn1.ask.skill.test",
    timestamp: datetime | None = None,
    request_id: str | None = None,
    new_session: bool = True,
    locale: str = "en-US",
) -> bytes:
    """An Alexa request body, as the Alexa service would send it."""
    import uuid

    stamp = (timestamp or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    request: dict[str, Any] = {
        "type": kind,
        "requestId": request_id or f"amzn1.echo-api.request.{uuid.uuid4()}",
        "timestamp": stamp,
        "locale": locale,
    }
    if intent is not None:
        request["intent"] = {
            "name": intent,
            "confirmationStatus": "NONE",
            "slots": {k: {"name": k, "value": v} for k, v in (slots or {}).items()},
        }
    if kind == "SessionEndedRequest":
        request["reason"] = "USER_INITIATED"
    body = {
        "version": "1.0",
        "session": {
            "new": new_session,
            "sessionId": "amzn1.echo-api.session.test",
            "application": {"applicationId": skill_id},
            "user": {"userId": "amzn1.ask.account.TESTUSER"},
        },
        "context": {
            "System": {
                "application": {"applicationId": skill_id},
                "user": {"userId": "amzn1.ask.account.TESTUSER"},
                "device": {"deviceId": device_id, "supportedInterfaces": {}},
            }
        },
        "request": request,
    }
    return json.dumps(body).encode()
