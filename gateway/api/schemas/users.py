"""Users and API tokens, as the admin routes take and give them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from gateway.api.auth.tokens import TokenInfo
from gateway.api.auth.users import User
from gateway.api.roles import Role
from gateway.model import to_datetime

__all__ = [
    "USERNAME_PATTERN",
    "Locale",
    "TokenCreate",
    "TokenCreated",
    "TokenOut",
    "UserCreate",
    "UserOut",
    "UserPatch",
]

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
Locale = Literal["zh-CN", "en", ""]

_PASSWORD_HELP = f"At least {MIN_PASSWORD_LENGTH} characters, no leading or trailing spaces."


class UserOut(BaseModel):
    username: str
    display_name: str
    role: Role
    locale: Locale = Field(description="zh-CN, en, or empty for the site's default.")
    disabled: bool
    created: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            locale=user.locale,
            disabled=user.disabled,
            created=to_datetime(user.created_ts),
        )


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN, description="Letters, digits, . _ @ -")
    display_name: str = Field("", max_length=128, description="Empty: the username.")
    role: Role
    password: str = Field(
        min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH, description=_PASSWORD_HELP
    )
    locale: Locale = ""


class UserPatch(BaseModel):
    """Only the fields sent change; a new password or ``disabled`` ends the user's sessions."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, max_length=128)
    role: Role | None = None
    password: str | None = Field(
        None,
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
        description=_PASSWORD_HELP,
    )
    locale: Locale | None = None
    disabled: bool | None = None


class TokenOut(BaseModel):
    id: str
    name: str
    role: Role
    created_by: str
    created: datetime
    expires: datetime | None
    last_used: datetime | None
    revoked: datetime | None

    @classmethod
    def of(cls, info: TokenInfo) -> TokenOut:
        def dt(ns: int | None) -> datetime | None:
            return to_datetime(ns) if ns is not None else None

        return cls(
            id=info.id,
            name=info.name,
            role=info.role,
            created_by=info.created_by,
            created=to_datetime(info.created_ts),
            expires=dt(info.expires_ts),
            last_used=dt(info.last_used_ts),
            revoked=dt(info.revoked_ts),
        )


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="What uses it: 'BMS uplink'.")
    role: Role
    expires_days: int | None = Field(
        None, ge=1, le=3650, description="Days until it stops working; none: never."
    )


class TokenCreated(BaseModel):
    token: str = Field(description="The token itself: shown this once, never again.")
    info: TokenOut
