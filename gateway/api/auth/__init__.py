"""Users, API tokens, sessions and passwords of the control-room API."""

from gateway.api.auth.authenticator import (
    CSRF_HEADER,
    SESSION_COOKIE,
    AuthError,
    Authenticator,
    CsrfRejected,
    NotAuthenticated,
)
from gateway.api.auth.passwords import PasswordPolicyError, Passwords
from gateway.api.auth.tokens import InvalidToken, TokenInfo, TokenStore
from gateway.api.auth.users import InvalidUser, User, UserExists, UserNotFound, UserStore

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AuthError",
    "Authenticator",
    "CsrfRejected",
    "InvalidToken",
    "InvalidUser",
    "NotAuthenticated",
    "PasswordPolicyError",
    "Passwords",
    "TokenInfo",
    "TokenStore",
    "User",
    "UserExists",
    "UserNotFound",
    "UserStore",
]
