"""``gateway user ...`` and ``gateway token ...``: users and API tokens from the shell.

The first admin has to come from somewhere: this is it. The commands work on
the site's event store directly, so they also work while the gateway runs
(SQLite in WAL mode takes a second writer; changes apply to the running
gateway at once, since it reads users, sessions and tokens from the store).

Every change writes an audit record (auth ``cli``, client ``cli:<os user>``),
like the same change made through the API. Exit codes: 0 done, 1 the site
file or the event store cannot be used, 2 refused (a user that exists
already, an unknown role or user, a short password, the last admin).
"""

from __future__ import annotations

import getpass
import secrets
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.api.roles import ROLES
from gateway.cli_site import CliRefused, os_user, run_on_site
from gateway.clock import SystemClock
from gateway.i18n import t

if TYPE_CHECKING:  # imported where used: `gateway check` should not pay for SQLAlchemy
    from gateway.api.audit import AuditLog, Outcome
    from gateway.api.auth.sessions import SessionStore
    from gateway.api.auth.tokens import TokenInfo, TokenStore
    from gateway.api.auth.users import User, UserStore
    from gateway.config.loader import LoadedSite
    from gateway.storage.eventstore import EventStore

__all__ = ["CliRefused", "token_app", "user_app"]

user_app = typer.Typer(help=t("users.help.user"), no_args_is_help=True, add_completion=False)
token_app = typer.Typer(help=t("users.help.token"), no_args_is_help=True, add_completion=False)

SiteArg = Annotated[Path, typer.Argument(help="The site file (YAML).", show_default=False)]
NameArg = Annotated[str, typer.Argument(help="The user's login name.", show_default=False)]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
]
Generate = Annotated[
    bool, typer.Option("--generate", help="Generate a password and print it once.")
]

_NS_PER_DAY = 86_400 * 1_000_000_000
_GENERATED_BYTES = 12  # 16 URL-safe characters


@dataclass
class Admin:
    """What a command works with: the site's stores and who is at the keyboard."""

    site: LoadedSite
    users: UserStore
    tokens: TokenStore
    sessions: SessionStore
    audit: AuditLog
    locale: str
    who: str  # the OS user

    async def record(
        self, action: str, target: str, outcome: Outcome, detail: dict[str, Any] | None = None
    ) -> None:
        await self.audit.record(
            None,
            action,
            target,
            outcome,
            f"cli:{self.who}",
            detail,
            username=f"cli:{self.who}",
            auth="cli",
        )

    def say(self, key: str, **fields: Any) -> None:
        typer.echo(t(key, self.locale, **fields))


def _run(site: Path, work: Callable[[Admin], Awaitable[None]]) -> None:
    """Load the site, open its event store, run ``work``; map failures to exit codes."""
    from gateway.api.audit import AuditLog
    from gateway.api.auth.sessions import SessionStore
    from gateway.api.auth.tokens import TokenStore
    from gateway.api.auth.users import UserStore

    async def on_site(loaded: LoadedSite, store: EventStore, clock: SystemClock) -> None:
        cfg = loaded.config
        users = UserStore(store, clock)
        admin = Admin(
            loaded,
            users,
            TokenStore(store, clock),
            SessionStore(store, clock, users, cfg.api),
            AuditLog(store, clock),
            cfg.site.locale,
            os_user(),
        )
        await work(admin)

    run_on_site(site, on_site, site_error="users.error.site", store_error="users.error.store")


def _check_role(role: str, locale: str) -> None:
    if role not in ROLES:
        raise CliRefused(t("users.error.role", locale, role=role, roles=", ".join(ROLES)))


def _read_password(admin: Admin, username: str, stdin: bool, generate: bool) -> tuple[str, bool]:
    """(password, generated?) from stdin, a generator or two hidden prompts."""
    loc = admin.locale
    if stdin and generate:
        raise CliRefused(t("users.error.both_sources", loc))
    if generate:
        return secrets.token_urlsafe(_GENERATED_BYTES), True
    if stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CliRefused(t("users.error.empty_stdin", loc))
        return line, False
    first = getpass.getpass(t("users.prompt.password", loc, user=username))
    again = getpass.getpass(t("users.prompt.again", loc))
    if first != again:
        raise CliRefused(t("users.error.mismatch", loc))
    return first, False


def _when(ns: int | None, locale: str) -> str:
    from gateway.model import to_datetime

    return (
        to_datetime(ns).strftime("%Y-%m-%d %H:%M") if ns is not None else t("users.never", locale)
    )


# -- users -----------------------------------------------------------------------------------


@user_app.command("add")
def user_add(
    site: SiteArg,
    username: NameArg,
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")] = "viewer",
    name: Annotated[str, typer.Option("--name", help="Display name (default: username).")] = "",
    locale: Annotated[str, typer.Option(help="zh-CN, en, or empty for the site's.")] = "",
    password_stdin: PasswordStdin = False,
    generate: Generate = False,
) -> None:
    """Add a user (the first admin, typically)."""
    from gateway.api.auth.passwords import PasswordPolicyError
    from gateway.api.auth.users import InvalidUser, UserExists

    async def work(a: Admin) -> None:
        _check_role(role, a.locale)
        if await a.users.get_user(username) is not None:
            await a.record("user.create", username, "failed", {"reason": "exists"})
            raise CliRefused(t("users.error.exists", a.locale, user=username))
        password, generated = _read_password(a, username, password_stdin, generate)
        try:
            await a.users.create_user(username, password, role, name, locale)
        except UserExists:
            await a.record("user.create", username, "failed", {"reason": "exists"})
            raise CliRefused(t("users.error.exists", a.locale, user=username)) from None
        except PasswordPolicyError as e:
            await a.record("user.create", username, "failed", {"reason": str(e)})
            raise CliRefused(t("users.error.password", a.locale, reason=e)) from None
        except InvalidUser as e:
            await a.record("user.create", username, "failed", {"reason": str(e)})
            raise CliRefused(t("users.error.invalid", a.locale, reason=e)) from None
        await a.record("user.create", username, "ok", {"role": role})
        a.say("users.added", user=username, role=role)
        if generated:
            a.say("users.generated", password=password)

    _run(site, work)


@user_app.command("list")
def user_list(site: SiteArg) -> None:
    """List the users."""

    async def work(a: Admin) -> None:
        found = await a.users.list_users()
        if not found:
            a.say("users.list.empty")
            return
        a.say("users.list.header")
        for u in found:
            typer.echo(_user_line(u, a.locale))

    _run(site, work)


def _user_line(u: User, locale: str) -> str:
    state = t("users.state.disabled" if u.disabled else "users.state.enabled", locale)
    return (
        f"{u.username:<20} {u.role:<11} {u.locale or '-':<7} {state:<9} "
        f"{_when(u.created_ts, locale):<17} {u.display_name}"
    )


@user_app.command("passwd")
def user_passwd(
    site: SiteArg,
    username: NameArg,
    password_stdin: PasswordStdin = False,
    generate: Generate = False,
) -> None:
    """Set a user's password; the user's open sessions end."""
    from gateway.api.auth.passwords import PasswordPolicyError
    from gateway.api.auth.users import UserNotFound

    async def work(a: Admin) -> None:
        if await a.users.get_user(username) is None:
            raise CliRefused(t("users.error.not_found", a.locale, user=username))
        password, generated = _read_password(a, username, password_stdin, generate)
        try:
            await a.users.update_user(username, password=password)
        except UserNotFound:
            await a.record("user.update", username, "failed", {"reason": "not_found"})
            raise CliRefused(t("users.error.not_found", a.locale, user=username)) from None
        except PasswordPolicyError as e:
            await a.record("user.update", username, "failed", {"changes": {"password": True}})
            raise CliRefused(t("users.error.password", a.locale, reason=e)) from None
        closed = await a.sessions.close_user(username)
        await a.record(
            "user.update",
            username,
            "ok",
            {"changes": {"password": True}, "closed_sessions": closed},
        )
        a.say("users.passwd.done", user=username, sessions=closed)
        if generated:
            a.say("users.generated", password=password)

    _run(site, work)


def _set_disabled(site: Path, username: str, disabled: bool) -> None:
    from gateway.api.auth.users import LastAdmin, UserNotFound

    async def work(a: Admin) -> None:
        changes = {"changes": {"disabled": disabled}}
        try:
            await a.users.update_user(username, disabled=disabled)
        except UserNotFound:
            await a.record("user.update", username, "failed", {**changes, "reason": "not_found"})
            raise CliRefused(t("users.error.not_found", a.locale, user=username)) from None
        except LastAdmin:
            await a.record("user.update", username, "failed", {**changes, "reason": "last_admin"})
            raise CliRefused(t("users.error.last_admin", a.locale, user=username)) from None
        closed = await a.sessions.close_user(username) if disabled else 0
        await a.record("user.update", username, "ok", {**changes, "closed_sessions": closed})
        if disabled:
            a.say("users.disabled", user=username, sessions=closed)
        else:
            a.say("users.enabled", user=username)

    _run(site, work)


@user_app.command("disable")
def user_disable(site: SiteArg, username: NameArg) -> None:
    """Disable a user: no login, open sessions end. Not the last enabled admin."""
    _set_disabled(site, username, True)


@user_app.command("enable")
def user_enable(site: SiteArg, username: NameArg) -> None:
    """Enable a disabled user again."""
    _set_disabled(site, username, False)


# -- tokens ----------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    site: SiteArg,
    name: Annotated[str, typer.Argument(help="What uses it, e.g. 'BMS uplink'.")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")] = "viewer",
    days: Annotated[
        int | None, typer.Option(help="Valid for this many days (default: no end).", min=1)
    ] = None,
) -> None:
    """Create an API token and print it (once: only a hash is kept)."""
    from gateway.api.auth.tokens import InvalidToken

    async def work(a: Admin) -> None:
        _check_role(role, a.locale)
        now = SystemClock().time_ns()
        expires = now + days * _NS_PER_DAY if days is not None else None
        detail: dict[str, Any] = {"name": name, "role": role, "days": days}
        try:
            token, info = await a.tokens.create(name, role, f"cli:{a.who}", expires)
        except InvalidToken as e:
            await a.record("token.create", "", "failed", {**detail, "reason": str(e)})
            raise CliRefused(t("users.error.invalid", a.locale, reason=e)) from None
        await a.record("token.create", info.id, "ok", detail)
        a.say("users.token.created", id=info.id, name=info.name, role=info.role)
        typer.echo(token)
        if expires is not None:
            a.say("users.token.expires", date=_when(expires, a.locale))
        else:
            a.say("users.token.never", id=info.id)

    _run(site, work)


@token_app.command("list")
def token_list(site: SiteArg) -> None:
    """List the tokens (never the tokens themselves)."""

    async def work(a: Admin) -> None:
        infos = await a.tokens.list()
        if not infos:
            a.say("users.token.list.empty")
            return
        now = SystemClock().time_ns()
        a.say("users.token.list.header")
        for info in infos:
            typer.echo(_token_line(info, now, a.locale))

    _run(site, work)


def _token_line(info: TokenInfo, now: int, locale: str) -> str:
    state = "revoked" if info.revoked_ts is not None else "live" if info.usable(now) else "expired"
    return (
        f"{info.id:<13} {info.role:<11} {t(f'users.token.state.{state}', locale):<9} "
        f"{_when(info.created_ts, locale):<17} {_when(info.expires_ts, locale):<17} {info.name}"
    )


@token_app.command("revoke")
def token_revoke(
    site: SiteArg,
    token_id: Annotated[str, typer.Argument(help="The token's id (see 'gateway token list').")],
) -> None:
    """Revoke a token: it stops working at once."""

    async def work(a: Admin) -> None:
        if not await a.tokens.revoke(token_id):
            await a.record("token.revoke", token_id, "failed", {"reason": "unknown"})
            raise CliRefused(t("users.error.token_not_found", a.locale, id=token_id))
        await a.record("token.revoke", token_id, "ok")
        a.say("users.token.revoked", id=token_id)

    _run(site, work)
