"""Encryption of biometric templates at rest: AES-256-GCM with rotating keys.

Keys are derived from ``BILLTALK_SECRET_KEY`` with HKDF-SHA256. A key's id is a
short hash of the derived key, stored beside every ciphertext, so that after a
rotation (new secret in ``BILLTALK_SECRET_KEY``, old ones listed in
``BILLTALK_BIOMETRICS_PREVIOUS_SECRET_KEYS``) old templates still decrypt and
can be re-encrypted with :func:`TemplateCipher.reencrypt`.

The associated data binds a ciphertext to its resident and kind, so a template
copied onto another resident's row fails to decrypt instead of matching.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_HKDF_INFO = b"billtalk/biometric-templates/v1"
_NONCE_BYTES = 12


class TemplateDecryptionError(Exception):
    """A template could not be decrypted: unknown key id, tampering, or wrong owner."""


def derive_key(secret: str) -> tuple[str, bytes]:
    """Derive ``(key_id, 32-byte key)`` from a secret."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret.encode("utf-8")
    )
    key_id = hashlib.sha256(b"key-id:" + key).hexdigest()[:16]
    return key_id, key


@dataclass(frozen=True)
class Sealed:
    """An encrypted template: what is stored in the database."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


class TemplateCipher:
    """Encrypts with the current key; decrypts with the current or a previous one."""

    def __init__(self, current_secret: str, previous_secrets: tuple[str, ...] = ()) -> None:
        self.current_key_id, current = derive_key(current_secret)
        self._keys: dict[str, bytes] = {self.current_key_id: current}
        for secret in previous_secrets:
            key_id, key = derive_key(secret)
            self._keys.setdefault(key_id, key)

    @staticmethod
    def _aad(resident_id: str, kind: str) -> bytes:
        return f"{resident_id}\x1f{kind}".encode()

    def seal(self, plaintext: bytes, *, resident_id: str, kind: str) -> Sealed:
        """Encrypt ``plaintext`` for ``resident_id``'s ``kind`` template."""
        nonce = os.urandom(_NONCE_BYTES)
        ct = AESGCM(self._keys[self.current_key_id]).encrypt(
            nonce, plaintext, self._aad(resident_id, kind)
        )
        return Sealed(self.current_key_id, nonce, ct)

    def open(self, sealed: Sealed, *, resident_id: str, kind: str) -> bytes:
        """Decrypt a sealed template; raises :class:`TemplateDecryptionError`."""
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise TemplateDecryptionError(f"unknown key id {sealed.key_id}")
        try:
            return AESGCM(key).decrypt(
                sealed.nonce, sealed.ciphertext, self._aad(resident_id, kind)
            )
        except InvalidTag as exc:
            raise TemplateDecryptionError("template failed authentication") from exc

    def reencrypt(self, sealed: Sealed, *, resident_id: str, kind: str) -> Sealed:
        """Re-encrypt a template under the current key (key rotation)."""
        if sealed.key_id == self.current_key_id:
            return sealed
        return self.seal(
            self.open(sealed, resident_id=resident_id, kind=kind),
            resident_id=resident_id,
            kind=kind,
        )
