"""``gateway user`` and ``gateway token`` on a temporary site (no gateway running).

The commands run in-process through typer's CliRunner; the password prompt
runs the real command in a pseudo-terminal, as a person at a shell would.
Afterwards the event store is opened and checked directly.
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from typer.testing import CliRunner, Result

from gateway.api.audit import AuditLog, AuditRecord
from gateway.api.auth.tokens import TokenStore
from gateway.api.auth.users import User, UserStore
from gateway.cli import app
from gateway.cli_site import os_user
from gateway.clock import SystemClock
from gateway.i18n import t
from gateway.storage.eventstore import EventStore

REPO = Path(__file__).resolve().parents[3]
T = TypeVar("T")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text("version: 1\nsite: {id: clitest, timezone: Europe/London}\ndata_dir: var\n")
    return path


def gw(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


def in_store(site: Path, fn: Callable[[EventStore], Awaitable[T]]) -> T:
    async def main() -> T:
        async with EventStore(f"sqlite+aiosqlite:///{site.parent / 'var' / 'gateway.db'}") as s:
            return await fn(s)

    return asyncio.run(main())


def get_user(site: Path, username: str) -> User | None:
    return in_store(site, lambda s: UserStore(s, SystemClock()).get_user(username))


def check_password(site: Path, username: str, password: str) -> User | None:
    return in_store(site, lambda s: UserStore(s, SystemClock()).check_password(username, password))


def trail(site: Path) -> list[AuditRecord]:
    return in_store(site, lambda s: AuditLog(s, SystemClock()).query())


def test_add_the_first_admin_from_stdin(site: Path) -> None:
    res = gw("user", "list", site)
    assert res.exit_code == 0 and res.stdout.strip() == t("users.list.empty", "en")
    res = gw(
        "user", "add", site, "root", "--role", "admin", "--name", "Root", "--password-stdin",
        stdin="a good password\n",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == t("users.added", "en", user="root", role="admin")
    user = check_password(site, "root", "a good password")
    assert user is not None and user.role == "admin" and user.display_name == "Root"
    listed = gw("user", "list", site).stdout
    assert "root" in listed and "admin" in listed and "Root" in listed
    (record,) = trail(site)
    assert (record.action, record.target, record.outcome) == ("user.create", "root", "ok")
    assert record.auth == "cli" and record.client == f"cli:{os_user()}"
    assert record.username == f"cli:{os_user()}"
    assert "a good password" not in str(record.detail)


def test_refusals_exit_2_and_change_nothing(site: Path) -> None:
    assert gw("user", "add", site, "root", "--role", "admin", "--generate").exit_code == 0
    cases = [
        (["user", "add", site, "root", "--role", "admin", "--generate"], "exists already"),
        (["user", "add", site, "bob", "--role", "god", "--generate"], "Unknown role god"),
        (["user", "add", site, "bob", "--password-stdin"], "at least 8 characters"),
        (["user", "add", site, "bob", "--password-stdin", "--generate"], "not both"),
        (["user", "add", site, "b o b", "--generate"], "username 'b o b'"),
        (["user", "add", site, "bob", "--locale", "fr", "--generate"], "locale 'fr'"),
        (["user", "passwd", site, "nobody", "--generate"], "No user nobody"),
        (["user", "disable", site, "nobody"], "No user nobody"),
        (["user", "disable", site, "root"], "last enabled admin"),
        (["token", "create", site, "bms", "--role", "god"], "Unknown role god"),
        (["token", "revoke", site, "nope"], "No live token nope"),
    ]
    for args, says in cases:
        res = gw(*args, stdin="short\n")
        assert res.exit_code == 2, (args, res.output)
        assert says in res.stderr, (args, res.stderr)
    assert get_user(site, "bob") is None
    root = get_user(site, "root")
    assert root is not None and not root.disabled
    outcomes = {(r.action, r.target, r.outcome) for r in trail(site)}
    assert ("user.update", "root", "failed") in outcomes  # the last-admin refusal
    assert ("token.revoke", "nope", "failed") in outcomes


def test_generate_prints_a_password_that_works(site: Path) -> None:
    res = gw("user", "add", site, "guard1", "--role", "guard", "--generate")
    assert res.exit_code == 0
    prefix = t("users.generated", "en", password="")
    (line,) = [x for x in res.stdout.splitlines() if x.startswith(prefix)]
    password = line.removeprefix(prefix)
    assert len(password) >= 16
    assert check_password(site, "guard1", password) is not None


def test_passwd_disable_enable(site: Path) -> None:
    gw("user", "add", site, "root", "--role", "admin", "--generate")
    gw("user", "add", site, "amy", "--role", "guard", "--password-stdin", stdin="old password\n")
    res = gw("user", "passwd", site, "amy", "--password-stdin", stdin="new password\n")
    assert res.exit_code == 0, res.output
    assert check_password(site, "amy", "old password") is None
    assert check_password(site, "amy", "new password") is not None
    assert gw("user", "disable", site, "amy").exit_code == 0
    assert check_password(site, "amy", "new password") is None  # disabled: no login
    listed = gw("user", "list", site).stdout
    assert "disabled" in next(x for x in listed.splitlines() if x.startswith("amy"))
    assert gw("user", "enable", site, "amy").exit_code == 0
    assert check_password(site, "amy", "new password") is not None
    actions = [(r.action, r.outcome, dict(r.detail).get("changes")) for r in trail(site)]
    assert actions[:3] == [
        ("user.update", "ok", {"disabled": False}),
        ("user.update", "ok", {"disabled": True}),
        ("user.update", "ok", {"password": True}),
    ]


def test_tokens_create_list_revoke(site: Path) -> None:
    res = gw("token", "create", site, "BMS uplink", "--role", "viewer", "--days", "30")
    assert res.exit_code == 0, res.output
    token = next(x for x in res.stdout.splitlines() if x.startswith("gwt_"))
    info = in_store(site, lambda s: TokenStore(s, SystemClock()).verify(token))
    assert info is not None and info.role == "viewer" and info.expires_ts is not None
    assert info.created_by == f"cli:{os_user()}"
    listed = gw("token", "list", site).stdout
    assert info.id in listed and "BMS uplink" in listed and token not in listed
    assert gw("token", "revoke", site, info.id).exit_code == 0
    assert in_store(site, lambda s: TokenStore(s, SystemClock()).verify(token)) is None
    assert "revoked" in gw("token", "list", site).stdout
    actions = [(r.action, r.target, r.outcome) for r in trail(site)]
    assert actions == [("token.revoke", info.id, "ok"), ("token.create", info.id, "ok")]


def test_messages_follow_the_sites_language(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nsite: {id: cn, timezone: Asia/Shanghai}\ndata_dir: var\n")
    res = gw("user", "add", site, "zhang", "--role", "guard", "--generate")
    assert res.exit_code == 0
    assert t("users.added", "zh-CN", user="zhang", role="guard") in res.stdout


def test_a_broken_site_file_exits_1(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nsite: {id: a, timezone: Mars/Olympus}\ndata_dir: var\n")
    res = gw("user", "list", site)
    assert res.exit_code == 1 and "site.timezone" in res.stderr
    assert not (tmp_path / "var").exists()


def _run_in_pty(args: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``python -m gateway *args`` on a pseudo-terminal, typing ``answers`` at prompts."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling tty, as in a shell
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, "-m", "gateway", *args])
    out = b""
    pending = list(answers)
    answered = 0
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                raise TimeoutError(out.decode(errors="replace"))
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            # Answer a prompt once: only output since the last answer counts
            # (getpass prints the prompt after it has turned echo off).
            if pending and out[answered:].rstrip().endswith(b":"):
                os.write(fd, pending.pop(0).encode() + b"\n")
                answered = len(out)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_the_password_prompt_asks_twice(site: Path) -> None:
    code, out = _run_in_pty(
        ["user", "add", str(site), "pat", "--role", "guard"], ["one password", "another one"]
    )
    assert code == 2 and t("users.error.mismatch", "en") in out
    assert get_user(site, "pat") is None
    code, out = _run_in_pty(
        ["user", "add", str(site), "pat", "--role", "guard"], ["same password", "same password"]
    )
    assert code == 0, out
    assert "same password" not in out  # not echoed
    assert check_password(site, "pat", "same password") is not None
