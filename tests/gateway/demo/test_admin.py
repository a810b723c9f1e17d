"""The demo's admin login: made once, printed the same on every run, repaired if broken."""

from __future__ import annotations

import stat
from pathlib import Path

from argon2 import PasswordHasher

from gateway.api.auth.passwords import Passwords
from gateway.api.auth.users import UserStore
from gateway.clock import SystemClock
from gateway.demo.admin import DEMO_ADMIN, ensure_admin
from gateway.storage.eventstore import EventStore


async def test_admin_is_made_once_and_kept(tmp_path: Path) -> None:
    async with EventStore(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}") as store:
        users = UserStore(store, SystemClock(), Passwords(PasswordHasher(1, 1024, 1)))
        user, password = await ensure_admin(users, tmp_path)
        assert user == DEMO_ADMIN
        saved = tmp_path / "demo-admin-password.txt"
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        assert (await users.check_password(user, password)) is not None
        assert (await users.get_user(user)).role == "admin"  # type: ignore[union-attr]
        # A second run prints the same login.
        assert await ensure_admin(users, tmp_path) == (user, password)
        # Someone changed the password in the meantime: the demo repairs its login.
        await users.update_user(user, password="changed-by-someone")
        user2, password2 = await ensure_admin(users, tmp_path)
        assert password2 != password
        assert (await users.check_password(user2, password2)) is not None
        assert saved.read_text().strip() == password2
