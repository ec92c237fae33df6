"""Staff sessions: signed cookie tokens, CSRF tokens, idle expiry, logout.

The cookie holds a random token and its HMAC (keyed with ``BILLTALK_SECRET_KEY``);
the database keeps only the token's SHA-256, with the session's CSRF token and
when it was last used. A session unused for the idle time is deleted when next
presented.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from console.accounts import Staff, get_staff
from console.models import SessionRow

COOKIE = "billtalk_console"


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _mac(secret: str, token: str) -> str:
    return hmac.new(secret.encode(), b"console-session:" + token.encode(), "sha256").hexdigest()


def sign(secret: str, token: str) -> str:
    """The cookie value for a session token."""
    return f"{token}.{_mac(secret, token)}"


def unsign(secret: str, value: str | None) -> str | None:
    """The session token in a cookie value, or ``None`` if the signature is wrong."""
    if not value or "." not in value:
        return None
    token, mac = value.rsplit(".", 1)
    return token if hmac.compare_digest(mac, _mac(secret, token)) else None


def create_session(engine: Engine, staff: Staff) -> tuple[str, str]:
    """Start a session for ``staff``: ``(token, csrf_token)``."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        s.add(
            SessionRow(
                token_hash=_sha(token),
                staff_id=staff.id,
                csrf_token=csrf,
                created_at=now,
                last_seen_at=now,
            )
        )
    return token, csrf


def load_session(engine: Engine, token: str, idle: timedelta) -> tuple[Staff, str] | None:
    """The session's staff member and CSRF token, or ``None`` (unknown, idle or disabled).

    A live session's last use is moved to now; an idle one is deleted.
    """
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        row = s.get(SessionRow, _sha(token))
        if row is None:
            return None
        seen = row.last_seen_at
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        if now - seen > idle:
            s.delete(row)
            return None
        if now - seen > timedelta(seconds=10):  # fewer writes under HTMX polling
            row.last_seen_at = now
        staff_id, csrf = row.staff_id, row.csrf_token
    staff = get_staff(engine, staff_id)
    if staff is None or staff.disabled:
        return None
    return staff, csrf


def end_session(engine: Engine, token: str) -> None:
    """Log out: delete the session."""
    with Session(engine) as s, s.begin():
        s.execute(delete(SessionRow).where(SessionRow.token_hash == _sha(token)))


def login_csrf(secret: str, nonce: str) -> str:
    """The CSRF token of the login form, bound to the pre-login cookie ``nonce``."""
    return hmac.new(secret.encode(), b"console-login:" + nonce.encode(), "sha256").hexdigest()
