"""Bearer tokens, residents and link codes that bind chat accounts."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from backend import schemas
from backend.adapters import orm
from backend.service_layer import audit
from backend.service_layer.common import (
    aware,
    utcnow,
)
from backend.service_layer.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    TooManyAttempts,
)
from backend.service_layer.unit_of_work import UnitOfWork
from backend.settings import BillingSettings, get_billing_settings
from billtalk.settings import get_settings


def hash_token(token: str) -> str:
    """How tokens are stored: their SHA-256 hex digest."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: its scope and, for residents, its household."""

    scope: str
    token_id: int
    household_id: str | None = None
    resident_id: str | None = None

    def can_see(self, household_id: str) -> bool:
        """Whether this caller may read or act for ``household_id``."""
        return self.scope in ("service", "staff") or self.household_id == household_id


def issue_token(
    uow: UnitOfWork,
    scope: str,
    *,
    name: str = "",
    resident_id: str | None = None,
    ttl: timedelta | None = None,
    token: str | None = None,
) -> schemas.TokenOut:
    """Create a bearer token (only its hash is stored). Resident tokens need a resident."""
    if scope not in ("service", "resident", "staff"):
        raise Invalid("invalid_scope", "scope must be service, resident or staff")
    token = token or f"bt_{scope[:3]}_{secrets.token_urlsafe(32)}"
    with uow:
        household_id = None
        if scope == "resident":
            if resident_id is None:
                raise Invalid("resident_required", "a resident token needs a resident id")
            r = uow.repo.resident(resident_id)
            if r is None:
                raise NotFound("unknown_resident", f"no resident {resident_id!r}")
            household_id = r.household_id
        expires = utcnow() + ttl if ttl else None
        existing = uow.session.scalars(
            select(orm.ApiToken).where(orm.ApiToken.token_hash == hash_token(token))
        ).first()
        if existing is None:
            audit.record(
                uow,
                "token.issued",
                actor="service",
                subject=resident_id or scope,
                data={
                    "scope": scope,
                    "name": name[:100],
                    "household_id": household_id,
                    "expires_at": expires.isoformat() if expires else None,
                },
            )
            uow.session.add(
                orm.ApiToken(
                    token_hash=hash_token(token),
                    scope=scope,
                    name=name,
                    household_id=household_id,
                    resident_id=resident_id,
                    created_at=utcnow(),
                    expires_at=expires,
                )
            )
        uow.commit()
    return schemas.TokenOut(
        token=token,
        scope=scope,  # type: ignore[arg-type]
        household_id=household_id,
        resident_id=resident_id,
        expires_at=expires,
    )


def authenticate(uow: UnitOfWork, token: str) -> Principal | None:
    """The principal of a bearer token, or ``None`` if unknown, expired or revoked.

    Every API request runs this: one read (no write lock on SQLite), of the columns
    it needs only (no ORM object to build).
    """
    found = verify_token(uow, token)
    return None if found is None else found[0]


def verify_token(uow: UnitOfWork, token: str) -> tuple[Principal, datetime | None] | None:
    """:func:`authenticate`, with the token's expiry (``None``: it never expires).

    For callers that remember a verified token (:class:`backend.api.reads.VerifiedTokens`)
    and must not use it past its expiry.
    """
    t = orm.ApiToken
    with uow.reading():
        row = uow.session.execute(
            select(
                t.scope, t.token_id, t.household_id, t.resident_id, t.revoked_at, t.expires_at
            ).where(t.token_hash == hash_token(token))
        ).first()
        if row is None or row.revoked_at is not None:
            return None
        expires_at = None if row.expires_at is None else aware(row.expires_at)
        if expires_at is not None and expires_at <= utcnow():
            return None
        principal = Principal(row.scope, row.token_id, row.household_id, row.resident_id)
        return principal, expires_at


def get_resident(uow: UnitOfWork, resident_id: str) -> schemas.Resident:
    """A resident with their household's unit and saved payment method."""
    with uow.reading():
        r = uow.repo.resident(resident_id)
        if r is None:
            raise NotFound("unknown_resident", f"no resident {resident_id!r}")
        hh = uow.session.get(orm.Household, r.household_id)
        assert hh is not None
        return schemas.Resident(
            resident_id=r.resident_id,
            household_id=r.household_id,
            name=r.name,
            language=r.language,
            unit=hh.unit,
            saved_method=hh.saved_method,  # type: ignore[arg-type]
            saved_method_label=hh.saved_method_label,
        )


def _code_hash(code: str) -> str:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"link-code:{code}".encode(), hashlib.sha256).hexdigest()


def create_link_code(
    uow: UnitOfWork, resident_id: str, *, ttl: timedelta | None = None, code: str | None = None
) -> schemas.LinkCodeOut:
    """Create a one-time, expiring 6-digit code that binds a chat account to a resident."""
    ttl = ttl or timedelta(minutes=get_billing_settings().link_code_ttl_minutes)
    with uow:
        if uow.repo.resident(resident_id) is None:
            raise NotFound("unknown_resident", f"no resident {resident_id!r}")
        for _ in range(20):
            candidate = code or f"{secrets.randbelow(10**6):06d}"
            clash = uow.session.scalars(
                select(orm.LinkCode).where(orm.LinkCode.code_hash == _code_hash(candidate))
            ).first()
            if clash is None:
                break
            if code is not None or (clash.used_at is None and aware(clash.expires_at) > utcnow()):
                if code is not None:
                    raise Conflict("link_code_exists", "that code is already in use")
                continue
            uow.session.delete(clash)  # a used or expired code may be recycled
            uow.session.flush()
            break
        else:  # pragma: no cover - a million codes in use at once
            raise Conflict("no_free_code", "no free link code; try again")
        expires = utcnow() + ttl
        uow.session.add(
            orm.LinkCode(
                code_hash=_code_hash(candidate),
                resident_id=resident_id,
                created_at=utcnow(),
                expires_at=expires,
            )
        )
        uow.commit()
    return schemas.LinkCodeOut(code=candidate, resident_id=resident_id, expires_at=expires)


def redeem_link_code(
    uow: UnitOfWork,
    code: str,
    channel: str,
    external_id: str,
    *,
    settings: BillingSettings | None = None,
) -> schemas.LinkResult:
    """Bind ``(channel, external_id)`` to the code's resident; the code then dies.

    Raises:
        TooManyAttempts: this chat account failed too often in the last 15 minutes.
        Invalid: unknown (``invalid_link_code``) or expired (``link_code_expired``) code.
        Conflict: the code was already used (``link_code_used``).
    """
    settings = settings or get_billing_settings()
    window = utcnow() - timedelta(minutes=15)
    if not channel or not external_id or len(channel) > 20 or len(external_id) > 80:
        raise Invalid("invalid_channel", "channel and external_id are required")
    with uow:
        failures = (
            uow.session.scalar(
                select(func.count())
                .select_from(orm.LinkAttempt)
                .where(
                    orm.LinkAttempt.channel == channel,
                    orm.LinkAttempt.external_id == external_id,
                    orm.LinkAttempt.attempted_at >= window,
                )
            )
            or 0
        )
        if failures >= settings.link_max_attempts:
            raise TooManyAttempts(
                "too_many_attempts", "too many wrong codes; try again in 15 minutes"
            )
        row = uow.session.scalars(
            select(orm.LinkCode)
            .where(orm.LinkCode.code_hash == _code_hash(code.strip()))
            .with_for_update()
        ).first()
        error: ServiceError | None = None
        if row is None:
            error = Invalid("invalid_link_code", "that link code is not valid")
        elif row.used_at is not None:
            error = Conflict("link_code_used", "that link code was already used")
        elif aware(row.expires_at) <= utcnow():
            error = Invalid("link_code_expired", "that link code has expired; ask for a new one")
        if error is not None:
            uow.session.add(
                orm.LinkAttempt(channel=channel, external_id=external_id, attempted_at=utcnow())
            )
            uow.commit()
            raise error
        assert row is not None
        row.used_at = utcnow()
        row.used_channel = channel
        row.used_external_id = external_id
        link = uow.session.get(orm.ChannelLink, (channel, external_id))
        if link is None:
            uow.session.add(
                orm.ChannelLink(
                    channel=channel,
                    external_id=external_id,
                    resident_id=row.resident_id,
                    linked_at=utcnow(),
                )
            )
        else:
            link.resident_id = row.resident_id
            link.linked_at = utcnow()
        r = uow.repo.resident(row.resident_id)
        assert r is not None
        audit.record(
            uow,
            "link.created",
            actor=f"{channel}:{external_id}"[:80],
            subject=r.resident_id,
            data={"channel": channel, "household_id": r.household_id},
        )
        out = schemas.LinkResult(resident_id=r.resident_id, household_id=r.household_id)
        uow.commit()
        return out


def resolve_link(uow: UnitOfWork, channel: str, external_id: str) -> schemas.LinkResult:
    """The resident a chat account is linked to."""
    with uow:
        link = uow.session.get(orm.ChannelLink, (channel, external_id))
        if link is None:
            raise NotFound("not_linked", "this chat account is not linked to a resident")
        r = uow.repo.resident(link.resident_id)
        assert r is not None
        return schemas.LinkResult(resident_id=r.resident_id, household_id=r.household_id)


def unlink(uow: UnitOfWork, channel: str, external_id: str, *, actor: str = "") -> None:
    """Unbind a chat account from its resident (audited).

    Raises:
        NotFound: the account is not linked.
    """
    with uow:
        link = uow.session.get(orm.ChannelLink, (channel, external_id))
        if link is None:
            raise NotFound("not_linked", "this chat account is not linked to a resident")
        audit.record(
            uow,
            "link.unlinked",
            actor=actor or f"{channel}:{external_id}"[:80],
            subject=link.resident_id,
            data={"channel": channel},
        )
        uow.session.delete(link)
        uow.commit()


def check_household_access(principal: Principal, household_id: str) -> None:
    """Raise :class:`Forbidden` unless ``principal`` may see ``household_id``."""
    if not principal.can_see(household_id):
        raise Forbidden("forbidden", "this token cannot access that household")
