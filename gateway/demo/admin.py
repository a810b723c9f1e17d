"""The demo's administrator: made on the first run, its password kept (0600)
in the demo's data directory so every later run prints the same login."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

from gateway.api.auth.users import UserStore

__all__ = ["DEMO_ADMIN", "ensure_admin"]

DEMO_ADMIN = "admin"
_FILE = "demo-admin-password.txt"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


def _write(path: Path, password: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password + "\n")


async def ensure_admin(users: UserStore, data_dir: Path) -> tuple[str, str]:
    """(username, password) of the demo's admin, creating or repairing it."""
    path = data_dir / _FILE
    password = await asyncio.to_thread(_read, path)
    user = await users.get_user(DEMO_ADMIN)
    if user is not None and password and await users.check_password(DEMO_ADMIN, password):
        return DEMO_ADMIN, password
    password = secrets.token_urlsafe(9)
    if user is None:
        await users.create_user(DEMO_ADMIN, password, "admin", display_name="Demo admin")
    else:
        await users.update_user(DEMO_ADMIN, password=password, role="admin", disabled=False)
    await asyncio.to_thread(_write, path, password)
    return DEMO_ADMIN, password
