"""Enrollment samples waiting between turns, kept encrypted with the conversation.

A face enrollment collects 1-5 selfies over several messages and a voice
enrollment five voice notes; the template is built only once all are in. Until
then the raw photos and recordings are held here: in the dialogue's database
(so another worker or a restarted one continues the enrollment), sealed with
AES-256-GCM (:class:`biometrics.crypto.TemplateCipher`, the key derived from
``BILLTALK_SECRET_KEY``) and bound to the conversation and session, so a row
copied elsewhere does not decrypt. They are deleted as soon as the enrollment
finishes, fails for good, is cancelled, or after ``ttl_s``; they are never
logged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select

from billtalk.logs import get_logger
from biometrics.crypto import Sealed, TemplateCipher, TemplateDecryptionError
from bot.store import ConversationStore, EnrollmentMediaRow

log = get_logger("bot.enrollment_media")

#: How long collected samples wait for the next message (seconds).
DEFAULT_TTL_S = 600.0


def _default_cipher() -> TemplateCipher:
    from billtalk.settings import get_settings
    from biometrics.settings import get_biometrics_settings

    return TemplateCipher(get_settings().secret_key, get_biometrics_settings().previous_secrets())


class PendingSamples:
    """Encrypted holding area for enrollment samples, keyed by conversation and session.

    Values are ``bytes`` (selfies) or ``biometrics.voice.enrollment.EnrollmentSample``
    (a recording and its prompted digits).

    Args:
        store: The dialogue store (its database holds ``bot_enrollment_media``).
        cipher: The cipher (default: from ``BILLTALK_SECRET_KEY``).
        ttl_s: Samples older than this are deleted unused.
        clock: The current time (tests).
    """

    def __init__(
        self,
        store: ConversationStore,
        cipher: TemplateCipher | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Any = None,
    ) -> None:
        self._store = store
        self._cipher = cipher
        self._ttl = timedelta(seconds=ttl_s)
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def engine(self) -> Engine:
        """The database holding the samples."""
        return self._store.engine

    @property
    def cipher(self) -> TemplateCipher:
        """The cipher (built on first use)."""
        if self._cipher is None:
            self._cipher = _default_cipher()
        return self._cipher

    @staticmethod
    def _aad_kind(kind: str) -> str:
        return f"enrollment-sample:{kind}"

    def get(self, key: str) -> list[Any]:
        """The samples collected under ``key`` (empty when none or expired)."""
        from biometrics.voice.enrollment import EnrollmentSample

        cutoff = self._clock() - self._ttl
        out: list[Any] = []
        with self._store.session() as s:
            s.execute(delete(EnrollmentMediaRow).where(EnrollmentMediaRow.created_at < cutoff))
            rows = s.scalars(
                select(EnrollmentMediaRow)
                .where(EnrollmentMediaRow.key == key)
                .order_by(EnrollmentMediaRow.position)
            ).all()
            for row in rows:
                try:
                    data = self.cipher.open(
                        Sealed(row.key_id, row.nonce, row.ciphertext),
                        resident_id=key,
                        kind=self._aad_kind(row.kind),
                    )
                except TemplateDecryptionError:
                    log.warning("enrollment_sample_unreadable", position=row.position)
                    return []
                out.append(EnrollmentSample(data, row.label) if row.kind == "voice" else data)
        return out

    def put(self, key: str, samples: list[Any]) -> None:
        """Replace the samples held under ``key`` (encrypted)."""
        now = self._clock()
        with self._store.session() as s:
            s.execute(delete(EnrollmentMediaRow).where(EnrollmentMediaRow.key == key))
            for position, sample in enumerate(samples):
                if isinstance(sample, bytes | bytearray):
                    kind, data, label = "face", bytes(sample), None
                else:
                    audio = sample.audio
                    data = audio if isinstance(audio, bytes) else audio.read_bytes()
                    kind, label = "voice", sample.digits
                sealed = self.cipher.seal(data, resident_id=key, kind=self._aad_kind(kind))
                s.add(
                    EnrollmentMediaRow(
                        key=key,
                        position=position,
                        kind=kind,
                        label=label,
                        key_id=sealed.key_id,
                        nonce=sealed.nonce,
                        ciphertext=sealed.ciphertext,
                        created_at=now,
                    )
                )

    def drop(self, key: str) -> None:
        """Delete the samples held under ``key``."""
        with self._store.session() as s:
            s.execute(delete(EnrollmentMediaRow).where(EnrollmentMediaRow.key == key))

    def __repr__(self) -> str:  # never show samples
        return "PendingSamples(encrypted, in the dialogue database)"
