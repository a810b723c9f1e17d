"""Who is calling: the authenticated user (browser session) or machine (API token)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["AuthKind", "Principal"]

AuthKind = Literal["session", "token"]


@dataclass(frozen=True, slots=True)
class Principal:
    username: str  # the user, or "token:<id>" for an API token
    role: str
    auth: AuthKind
    display_name: str = ""
    locale: str = ""  # the user's language, empty for the site's default
    session_id_hash: str | None = None
    token_id: str | None = None
    csrf: str | None = None  # the session's CSRF token (sessions only)
