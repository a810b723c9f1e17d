"""Password hashing with argon2id (argon2-cffi), off the event loop.

Hashing costs tens of milliseconds and 64 MiB by design, so it runs in a
worker thread; the event loop (alarms, the bus) never waits on it.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["MIN_PASSWORD_LENGTH", "PasswordPolicyError", "Passwords"]

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


class PasswordPolicyError(ValueError):
    """The new password is too short, too long or otherwise unusable."""


def check_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")
    if password.strip() != password or "\x00" in password:
        raise PasswordPolicyError("a password may not start or end with spaces or contain NUL")


class Passwords:
    """argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile).

    ``hasher`` can be a cheaper :class:`PasswordHasher` in tests that create
    many users; the stored PHC string carries its own parameters, so hashes
    made with other parameters still verify (and :meth:`needs_rehash` says so).
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()

    async def hash(self, password: str) -> str:
        check_policy(password)
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        """True when ``password`` matches; False for a mismatch or a broken hash."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        try:
            return await asyncio.to_thread(self._hasher.verify, stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True
