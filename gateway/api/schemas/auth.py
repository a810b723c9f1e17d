"""Login, the caller's own record, and password change."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from gateway.api.principal import AuthKind
from gateway.api.schemas.users import UserOut

__all__ = ["LoginIn", "LoginOut", "MeOut", "PasswordIn"]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class LoginOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="Send it as X-CSRF-Token on every unsafe request.")
    expires: datetime = Field(description="The session ends at the latest then.")


class MeOut(BaseModel):
    user: UserOut
    auth: AuthKind
    csrf_token: str | None = Field(description="The session's CSRF token; null for a token.")


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    new: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
