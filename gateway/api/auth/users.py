"""Users of the control room, in the event store's ``users`` table."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update

from gateway.api.auth.passwords import Passwords
from gateway.api.roles import ROLES
from gateway.clock import Clock
from gateway.i18n import LOCALES
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import users

__all__ = ["InvalidUser", "LastAdmin", "User", "UserExists", "UserNotFound", "UserStore"]

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class InvalidUser(ValueError):
    """A username, role or locale that cannot be used."""


class UserExists(InvalidUser):
    pass


class UserNotFound(LookupError):
    pass


class LastAdmin(Exception):
    """The change would leave the site without an enabled admin (nobody could fix it)."""


@dataclass(frozen=True, slots=True)
class User:
    username: str
    display_name: str
    role: str
    locale: str
    disabled: bool
    created_ts: int
    updated_ts: int


_MAX_DISPLAY_NAME = 128


def _check(
    username: str | None = None,
    role: str | None = None,
    locale: str | None = None,
    display_name: str | None = None,
) -> None:
    if display_name is not None and len(display_name) > _MAX_DISPLAY_NAME:
        raise InvalidUser(f"a display name may have at most {_MAX_DISPLAY_NAME} characters")
    # fullmatch: "$" alone would let a trailing newline through.
    if username is not None and not _USERNAME.fullmatch(username):
        raise InvalidUser(
            f"username {username!r}: 1-64 letters, digits or . _ @ -, "
            "starting with a letter or digit"
        )
    if role is not None and role not in ROLES:
        raise InvalidUser(f"role {role!r}: use one of {', '.join(ROLES)}")
    if locale is not None and locale and locale not in LOCALES:
        raise InvalidUser(f"locale {locale!r}: use one of {', '.join(LOCALES)} or leave it empty")


def _user(row: object) -> User:
    r = row._mapping  # type: ignore[attr-defined]
    return User(
        r["username"],
        r["display_name"],
        r["role"],
        r["locale"],
        bool(r["disabled"]),
        int(r["created_ts"]),
        int(r["updated_ts"]),
    )


class UserStore:
    def __init__(self, store: EventStore, clock: Clock, passwords: Passwords | None = None) -> None:
        self.store = store
        self.clock = clock
        self.passwords = passwords or Passwords()
        # Verified against when the username is unknown, so a wrong username
        # costs as much time as a wrong password (no user enumeration by timing).
        self._dummy_hash: str | None = None

    async def create_user(
        self,
        username: str,
        password: str,
        role: str,
        display_name: str = "",
        locale: str = "",
    ) -> User:
        """Raises :class:`InvalidUser`, :class:`UserExists` or PasswordPolicyError."""
        _check(username, role, locale, display_name)
        pw_hash = await self.passwords.hash(password)
        now = self.clock.time_ns()
        async with self.store.begin(write=True) as conn:  # check, then insert
            exists = await conn.scalar(
                select(func.count()).select_from(users).where(users.c.username == username)
            )
            if exists:
                raise UserExists(f"user {username!r} exists already")
            await conn.execute(
                insert(users).values(
                    username=username,
                    display_name=display_name or username,
                    role=role,
                    password_hash=pw_hash,
                    locale=locale,
                    disabled=False,
                    created_ts=now,
                    updated_ts=now,
                )
            )
        return User(username, display_name or username, role, locale, False, now, now)

    async def get_user(self, username: str) -> User | None:
        async with self.store.begin() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        return _user(row) if row is not None else None

    async def list_users(self) -> list[User]:
        async with self.store.begin() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.username))).all()
        return [_user(r) for r in rows]

    async def count_admins(self) -> int:
        async with self.store.begin() as conn:
            n = await conn.scalar(
                select(func.count())
                .select_from(users)
                .where(users.c.role == "admin", users.c.disabled.is_(False))
            )
        return int(n or 0)

    async def update_user(
        self,
        username: str,
        *,
        display_name: str | None = None,
        role: str | None = None,
        password: str | None = None,
        locale: str | None = None,
        disabled: bool | None = None,
    ) -> User:
        """Raises :class:`UserNotFound`, :class:`InvalidUser`, PasswordPolicyError, or
        :class:`LastAdmin` when it would demote or disable the last enabled admin
        (checked in the same transaction as the change, which is then rolled back)."""
        _check(role=role, locale=locale, display_name=display_name)
        values: dict[str, object] = {"updated_ts": self.clock.time_ns()}
        if display_name is not None:
            values["display_name"] = display_name or username
        if role is not None:
            values["role"] = role
        if locale is not None:
            values["locale"] = locale
        if disabled is not None:
            values["disabled"] = disabled
        if password is not None:
            values["password_hash"] = await self.passwords.hash(password)
        demoting = (role is not None and role != "admin") or bool(disabled)
        before = await self.get_user(username) if demoting else None
        was_admin = before is not None and before.role == "admin" and not before.disabled
        async with self.store.begin(write=True) as conn:  # update, then count the admins
            result = await conn.execute(
                update(users).where(users.c.username == username).values(**values)
            )
            if result.rowcount == 0:
                raise UserNotFound(f"no user {username!r}")
            row = (await conn.execute(select(users).where(users.c.username == username))).one()
            user = _user(row)
            if was_admin:
                admins = await conn.scalar(
                    select(func.count())
                    .select_from(users)
                    .where(users.c.role == "admin", users.c.disabled.is_(False))
                )
                if not admins:
                    # Raising inside begin() rolls the change back.
                    raise LastAdmin(f"{username!r} is the last enabled admin")
        return user

    async def check_password(self, username: str, password: str) -> User | None:
        """The user when the password is right and the user is enabled, else None."""
        async with self.store.begin() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        if row is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.passwords.hash("not-a-real-password")
            await self.passwords.verify(self._dummy_hash, password)
            return None
        ok = await self.passwords.verify(row._mapping["password_hash"], password)
        user = _user(row)
        if not ok or user.disabled:
            return None
        if self.passwords.needs_rehash(row._mapping["password_hash"]):
            await self.update_user(username, password=password)
        return user
