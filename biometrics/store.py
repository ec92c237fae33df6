"""Encrypted storage of biometric templates, with an audit trail.

A template is the set of embedding vectors enrolled for one resident and kind
(``face``: one 128-d vector per enrollment photo; ``voice``: the mean speaker
embedding). Vectors are serialised as float32, sealed with
:class:`~biometrics.crypto.TemplateCipher` and stored in ``biometric_templates``,
with the name of the model that made them where a kind has more than one
(``voice``: ``ge2e`` or ``campplus``; see :mod:`biometrics.voice.models`).
Enrollment and deletion are recorded in ``biometric_audit`` (who, what, when;
never the template).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    CursorResult,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    delete,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from billtalk.db import make_engine, upgrade
from billtalk.settings import get_settings
from biometrics.crypto import Sealed, TemplateCipher
from biometrics.settings import get_biometrics_settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_biometrics"
_HEADER = struct.Struct("<II")  # rows, dims


class Base(DeclarativeBase):
    metadata = MetaData()


class TemplateRow(Base):
    __tablename__ = "biometric_templates"
    __table_args__ = (UniqueConstraint("resident_id", "kind", name="uq_biometric_template"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str] = mapped_column(String(32))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    samples: Mapped[int] = mapped_column(Integer)
    #: The model that made the vectors (``None`` where a kind has only one).
    model: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditRow(Base):
    __tablename__ = "biometric_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    resident_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text, default="{}")


def ensure_schema(url: str) -> None:
    """Create or upgrade the biometrics tables in the database at ``url``."""
    upgrade(MIGRATIONS, url, VERSION_TABLE)


def _pack(vectors: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(np.atleast_2d(vectors), dtype="<f4")
    if arr.ndim != 2 or arr.shape[0] == 0 or not np.all(np.isfinite(arr)):
        raise ValueError("a template is a non-empty 2-D array of finite numbers")
    return _HEADER.pack(*arr.shape) + arr.tobytes()


def _unpack(blob: bytes) -> np.ndarray:
    rows, dims = _HEADER.unpack_from(blob)
    return np.frombuffer(blob, dtype="<f4", offset=_HEADER.size).reshape(rows, dims).copy()


@dataclass(frozen=True)
class StoredTemplate:
    """A decrypted template and the model recorded with it.

    Attributes:
        vectors: The template's rows (biometric data: never log them).
        model: The model that made them, as recorded (``None``: not recorded).
    """

    vectors: np.ndarray
    model: str | None

    def __repr__(self) -> str:  # keep the vectors out of logs and tracebacks
        return f"StoredTemplate(model={self.model!r}, shape={self.vectors.shape})"


class TemplateStore:
    """Save, load and delete encrypted templates.

    Args:
        engine: The database holding ``biometric_templates`` (see :func:`ensure_schema`).
        cipher: The cipher; by default built from ``BILLTALK_SECRET_KEY`` and
            ``BILLTALK_BIOMETRICS_PREVIOUS_SECRET_KEYS``.
    """

    def __init__(self, engine: Engine, cipher: TemplateCipher | None = None) -> None:
        self.engine = engine
        if cipher is None:
            cipher = TemplateCipher(
                get_settings().secret_key, get_biometrics_settings().previous_secrets()
            )
        self.cipher = cipher

    @classmethod
    def from_settings(cls, *, migrate: bool = True) -> TemplateStore:
        """A store on the configured database, migrated on first use."""
        url = get_biometrics_settings().database_url or get_settings().database_url
        if migrate:
            ensure_schema(url)
        return cls(make_engine(url))

    def save(
        self,
        resident_id: str,
        kind: str,
        vectors: np.ndarray,
        *,
        actor: str,
        model: str | None = None,
    ) -> None:
        """Store (or replace) the resident's template of ``kind`` and audit it.

        ``model`` names the model that made ``vectors`` (recorded beside them; the
        audit entry says it too).
        """
        sealed = self.cipher.seal(_pack(vectors), resident_id=resident_id, kind=kind)
        samples = int(np.atleast_2d(vectors).shape[0])
        now = datetime.now(UTC)
        with Session(self.engine) as session, session.begin():
            row = session.scalar(
                select(TemplateRow).where(
                    TemplateRow.resident_id == resident_id, TemplateRow.kind == kind
                )
            )
            if row is None:
                row = TemplateRow(resident_id=resident_id, kind=kind, created_at=now)
                session.add(row)
            row.key_id, row.nonce, row.ciphertext = sealed.key_id, sealed.nonce, sealed.ciphertext
            row.samples, row.updated_at, row.model = samples, now, model
            detail: dict[str, int | str] = {"samples": samples}
            if model is not None:
                detail["model"] = model
            session.add(_audit(resident_id, kind, "enroll", actor, detail))

    def load(self, resident_id: str, kind: str) -> np.ndarray | None:
        """The resident's template vectors of ``kind``, or ``None`` if not enrolled."""
        stored = self.load_stored(resident_id, kind)
        return None if stored is None else stored.vectors

    def load_stored(self, resident_id: str, kind: str) -> StoredTemplate | None:
        """The resident's template of ``kind`` with its recorded model, or ``None``."""
        with Session(self.engine) as session:
            row = session.scalar(
                select(TemplateRow).where(
                    TemplateRow.resident_id == resident_id, TemplateRow.kind == kind
                )
            )
            if row is None:
                return None
            sealed, model = Sealed(row.key_id, row.nonce, row.ciphertext), row.model
        vectors = _unpack(self.cipher.open(sealed, resident_id=resident_id, kind=kind))
        return StoredTemplate(vectors, model)

    def is_enrolled(self, resident_id: str, kind: str) -> bool:
        """Whether a template of ``kind`` exists for the resident."""
        with Session(self.engine) as session:
            return (
                session.scalar(
                    select(TemplateRow.id).where(
                        TemplateRow.resident_id == resident_id, TemplateRow.kind == kind
                    )
                )
                is not None
            )

    def enrolled_samples(self, resident_id: str, kind: str) -> int | None:
        """How many vectors the resident's last enrollment of ``kind`` stored (from the audit).

        A refreshed face gallery keeps its enrolled rows first; this says how many
        of them there are. ``None`` when no enrollment of ``kind`` is audited.
        """
        with Session(self.engine) as session:
            detail = session.scalar(
                select(AuditRow.detail)
                .where(
                    AuditRow.resident_id == resident_id,
                    AuditRow.kind == kind,
                    AuditRow.action == "enroll",
                )
                .order_by(AuditRow.id.desc())
                .limit(1)
            )
        if detail is None:
            return None
        samples = json.loads(detail).get("samples")
        return int(samples) if isinstance(samples, int) else None

    def delete(self, resident_id: str, kind: str | None, *, actor: str) -> int:
        """Delete the resident's templates (one kind, or all with ``None``); audited.

        Returns:
            The number of templates removed.
        """
        with Session(self.engine) as session, session.begin():
            stmt = delete(TemplateRow).where(TemplateRow.resident_id == resident_id)
            if kind is not None:
                stmt = stmt.where(TemplateRow.kind.in_((kind, previous_kind(kind))))
            result: CursorResult[Any] = session.execute(stmt)  # type: ignore[assignment]
            removed = result.rowcount or 0
            session.add(_audit(resident_id, kind or "all", "delete", actor, {"removed": removed}))
        return int(removed)

    def refresh(
        self,
        resident_id: str,
        kind: str,
        vectors: np.ndarray,
        *,
        actor: str,
        detail: dict[str, int],
    ) -> None:
        """Replace the template after a successful verification, keeping the one before.

        The current template is re-sealed as ``<kind>:previous`` (one version is
        kept, so :meth:`restore_previous` can undo the last refresh) and
        ``vectors`` become the template, recorded with the current template's
        model (a refresh never changes the model). Audited as ``refresh`` with
        ``detail`` (counts and rounded scores only, never vectors).

        Raises:
            LookupError: The resident has no template of ``kind``.
            ValueError: ``vectors`` do not have the current template's size.
        """
        current = self.load_stored(resident_id, kind)
        if current is None:
            raise LookupError(f"no {kind} template to refresh")
        if np.atleast_2d(vectors).shape[1] != current.vectors.shape[1]:
            raise ValueError("a refresh must keep the template's model and size")
        self._put(resident_id, previous_kind(kind), current.vectors, current.model)
        self._put(resident_id, kind, vectors, current.model)
        with Session(self.engine) as session, session.begin():
            session.add(_audit(resident_id, kind, "refresh", actor, detail))

    def restore_previous(self, resident_id: str, kind: str, *, actor: str) -> bool:
        """Undo the last :meth:`refresh` (audited as ``restore``); ``False`` if nothing to undo."""
        previous = self.load_stored(resident_id, previous_kind(kind))
        if previous is None:
            return False
        self._put(resident_id, kind, previous.vectors, previous.model)
        with Session(self.engine) as session, session.begin():
            session.execute(
                delete(TemplateRow).where(
                    TemplateRow.resident_id == resident_id,
                    TemplateRow.kind == previous_kind(kind),
                )
            )
            session.add(_audit(resident_id, kind, "restore", actor, {}))
        return True

    def _put(self, resident_id: str, kind: str, vectors: np.ndarray, model: str | None) -> None:
        sealed = self.cipher.seal(_pack(vectors), resident_id=resident_id, kind=kind)
        now = datetime.now(UTC)
        with Session(self.engine) as session, session.begin():
            row = session.scalar(
                select(TemplateRow).where(
                    TemplateRow.resident_id == resident_id, TemplateRow.kind == kind
                )
            )
            if row is None:
                row = TemplateRow(resident_id=resident_id, kind=kind, created_at=now)
                session.add(row)
            row.key_id, row.nonce, row.ciphertext = sealed.key_id, sealed.nonce, sealed.ciphertext
            row.samples, row.updated_at = int(np.atleast_2d(vectors).shape[0]), now
            row.model = model

    def rotate_keys(self) -> int:
        """Re-encrypt every template under the current key; returns how many changed."""
        changed = 0
        with Session(self.engine) as session, session.begin():
            for row in session.scalars(select(TemplateRow)):
                if row.key_id == self.cipher.current_key_id:
                    continue
                sealed = self.cipher.reencrypt(
                    Sealed(row.key_id, row.nonce, row.ciphertext),
                    resident_id=row.resident_id,
                    kind=row.kind,
                )
                row.key_id, row.nonce, row.ciphertext = (
                    sealed.key_id,
                    sealed.nonce,
                    sealed.ciphertext,
                )
                changed += 1
        return changed

    def audit_trail(self, resident_id: str) -> list[dict[str, str]]:
        """The resident's audit entries, oldest first."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(AuditRow).where(AuditRow.resident_id == resident_id).order_by(AuditRow.id)
            )
            return [
                {
                    "at": r.at.isoformat(),
                    "kind": r.kind,
                    "action": r.action,
                    "actor": r.actor,
                    "detail": r.detail,
                }
                for r in rows
            ]


def previous_kind(kind: str) -> str:
    """The ``kind`` under which the template before the last refresh is kept."""
    return f"{kind}:previous"


def _audit(
    resident_id: str, kind: str, action: str, actor: str, detail: Mapping[str, int | str]
) -> AuditRow:
    return AuditRow(
        at=datetime.now(UTC),
        resident_id=resident_id,
        kind=kind,
        action=action,
        actor=actor,
        detail=json.dumps(detail),
    )
