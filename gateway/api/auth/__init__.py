"""Users, API tokens, sessions and passwords of the control-room API."""

from gateway.api.auth.authenticator import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Authenticator,
    AuthError,
    CsrfRejected,
    NotAuthenticated,
)
from gateway.api.auth.passwords import PasswordPolicyError, Passwords
from gateway.api.auth.ratelimit import LoginLimiter
from gateway.api.auth.sessions import SessionStore
from gateway.api.auth.tokens import InvalidToken, TokenInfo, TokenStore
from gateway.api.auth.users import (
    InvalidUser,
    LastAdmin,
    User,
    UserExists,
    UserNotFound,
    UserStore,
)

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AuthError",
    "Authenticator",
    "CsrfRejected",
    "InvalidToken",
    "InvalidUser",
    "LastAdmin",
    "LoginLimiter",
    "NotAuthenticated",
    "PasswordPolicyError",
    "Passwords",
    "SessionStore",
    "TokenInfo",
    "TokenStore",
    "User",
    "UserExists",
    "UserNotFound",
    "UserStore",
]
