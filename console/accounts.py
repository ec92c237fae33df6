"""Staff accounts: creation, passwords (argon2), roles, buildings, login with throttling."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from console.models import ROLES, LoginFailureRow, StaffRow

_hasher = PasswordHasher()
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
#: A password at least this long.
MIN_PASSWORD = 8
#: Role rank: a role may do everything the lower ones may.
RANK = {role: i for i, role in enumerate(ROLES)}
# Verified against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-just-timing")


class AccountError(ValueError):
    """A staff account operation was refused (clear message for the user)."""


class LoginThrottled(RuntimeError):
    """Too many failed logins for this username or address: try again later."""


@dataclass(frozen=True)
class Staff:
    """A staff member as the console sees them."""

    id: int
    username: str
    role: str
    buildings: tuple[str, ...]
    disabled: bool

    @property
    def all_buildings(self) -> bool:
        """Whether the account sees every building (``*``)."""
        return "*" in self.buildings

    def can(self, role: str) -> bool:
        """Whether this account's role includes ``role`` (admin ⊃ supervisor ⊃ agent)."""
        return RANK[self.role] >= RANK[role]


def _staff(row: StaffRow) -> Staff:
    buildings = tuple(b for b in (x.strip() for x in row.buildings.split(",")) if b)
    return Staff(row.id, row.username, row.role, buildings or ("*",), bool(row.disabled))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise AccountError("the password is too long (at most 1024 characters)")


def _check_buildings(buildings: list[str] | None) -> str:
    if not buildings:
        return "*"
    for b in buildings:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,32}|\*", b):
            raise AccountError(f"not a building id: {b!r}")
    return ",".join(dict.fromkeys(buildings))


def add_staff(
    engine: Engine, username: str, role: str, password: str, buildings: list[str] | None = None
) -> Staff:
    """Create a staff account; ``buildings`` empty means every building (``*``).

    Raises:
        AccountError: bad username, role or password, or the username is taken.
    """
    if not _USERNAME.fullmatch(username or ""):
        raise AccountError("the username must be 1-64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise AccountError(f"the role must be one of {', '.join(ROLES)}")
    _check_password(password)
    scope = _check_buildings(buildings)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        if s.scalar(select(StaffRow.id).where(StaffRow.username == username)) is not None:
            raise AccountError(f"the username {username!r} is taken")
        row = StaffRow(
            username=username,
            password_hash=_hasher.hash(password),
            role=role,
            buildings=scope,
            disabled=False,
            created_at=now,
            updated_at=now,
        )
        s.add(row)
        s.flush()
        return _staff(row)


def list_staff(engine: Engine) -> list[Staff]:
    """Every staff account, by username."""
    with Session(engine) as s:
        return [_staff(r) for r in s.scalars(select(StaffRow).order_by(StaffRow.username))]


def get_staff(engine: Engine, staff_id: int) -> Staff | None:
    """The account with this id, or ``None``."""
    with Session(engine) as s:
        row = s.get(StaffRow, staff_id)
        return _staff(row) if row else None


def set_disabled(engine: Engine, username: str, disabled: bool = True) -> Staff:
    """Disable (or re-enable) an account; a disabled account's sessions end at once.

    Raises:
        AccountError: no such username.
    """
    from console.models import SessionRow

    with Session(engine) as s, s.begin():
        row = s.scalar(select(StaffRow).where(StaffRow.username == username))
        if row is None:
            raise AccountError(f"no staff account {username!r}")
        row.disabled = disabled
        row.updated_at = datetime.now(UTC)
        if disabled:
            s.execute(delete(SessionRow).where(SessionRow.staff_id == row.id))
        return _staff(row)


def set_password(engine: Engine, username: str, password: str) -> Staff:
    """Replace an account's password (its sessions end).

    Raises:
        AccountError: no such username, or the password is too short.
    """
    from console.models import SessionRow

    _check_password(password)
    with Session(engine) as s, s.begin():
        row = s.scalar(select(StaffRow).where(StaffRow.username == username))
        if row is None:
            raise AccountError(f"no staff account {username!r}")
        row.password_hash = _hasher.hash(password)
        row.updated_at = datetime.now(UTC)
        s.execute(delete(SessionRow).where(SessionRow.staff_id == row.id))
        return _staff(row)


def authenticate(
    engine: Engine,
    username: str,
    password: str,
    address: str,
    *,
    max_per_username: int,
    max_per_address: int,
    window: timedelta,
) -> Staff | None:
    """The account if the username and password match an enabled account, else ``None``.

    A failure is recorded for the username and the address; once either has
    too many failures within ``window`` every attempt is refused, right or wrong,
    until the window has passed.

    Raises:
        LoginThrottled: too many recent failures for this username or address.
    """
    username = (username or "")[:64]
    address = (address or "unknown")[:64]
    now = datetime.now(UTC)
    since = now - window
    with Session(engine) as s, s.begin():
        by_user = s.scalar(
            select(func.count())
            .select_from(LoginFailureRow)
            .where(LoginFailureRow.username == username, LoginFailureRow.at >= since)
        )
        by_addr = s.scalar(
            select(func.count())
            .select_from(LoginFailureRow)
            .where(LoginFailureRow.address == address, LoginFailureRow.at >= since)
        )
        if (by_user or 0) >= max_per_username or (by_addr or 0) >= max_per_address:
            raise LoginThrottled(username)
        row = s.scalar(select(StaffRow).where(StaffRow.username == username))
        ok = False
        try:
            ok = _hasher.verify(row.password_hash if row else _DUMMY_HASH, password or "")
        except (VerificationError, InvalidHashError):
            ok = False
        if row is None or not ok or row.disabled:
            s.add(LoginFailureRow(username=username, address=address, at=now))
            return None
        s.execute(delete(LoginFailureRow).where(LoginFailureRow.username == username))
        if _hasher.check_needs_rehash(row.password_hash):
            row.password_hash = _hasher.hash(password)
        return _staff(row)
