"""Login, sessions, CSRF, tokens and the failed-login limit, against a real gateway.

The session store and the limiter also get unit tests on a ManualClock (a
real EventStore on a temporary SQLite file): idle and absolute expiry and
the sliding window cannot wait for wall-clock hours.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from gateway.api.auth.passwords import Passwords
from gateway.api.auth.ratelimit import LoginLimiter
from gateway.api.auth.sessions import LAST_SEEN_EVERY_NS, SessionStore, session_digest
from gateway.api.auth.users import UserStore
from gateway.api.config import ApiConfig
from gateway.api.routes.auth import BAD_CREDENTIALS
from gateway.clock import ManualClock
from gateway.storage.eventstore import EventStore
from tests.fixtures.api import FAST_HASHER, ApiHarness, api_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

API = "/api/v1"
PUBLIC = {("GET", f"{API}/meta"), ("GET", f"{API}/i18n/{{locale}}"), ("POST", f"{API}/auth/login")}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with api_gateway(tmp_path_factory.mktemp("auth")) as h:
        yield h


@pytest.fixture(autouse=True)
def fresh_limiter(api: ApiHarness) -> None:
    # Every login here comes from 127.0.0.1: one test's failures must not lock the next out.
    sessions(api).limiter.clear()


def cookie_attrs(set_cookie: str) -> dict[str, str]:
    """Attribute name (lower case) -> the attribute as sent."""
    return {a.strip().split("=")[0].lower(): a.strip() for a in set_cookie.split(";")}


def sessions(api: ApiHarness) -> SessionStore:
    store = api.ctx.auth.sessions
    assert isinstance(store, SessionStore)
    return store


async def login(api: ApiHarness, username: str, password: str) -> tuple[httpx.AsyncClient, str]:
    """A cookie-carrying client logged in as ``username`` and its CSRF token."""
    c = await api.client(None)  # closed by the harness
    r = await c.post(f"{API}/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


async def test_login_sets_the_session_cookie_with_the_right_flags(api: ApiHarness) -> None:
    pw = await api.user("ada", "guard")
    async with httpx.AsyncClient(base_url=api.url) as c:
        r = await c.post(f"{API}/auth/login", json={"username": "ada", "password": pw})
    assert r.status_code == 200
    body = r.json()
    assert body["user"]["username"] == "ada" and body["user"]["role"] == "guard"
    assert body["csrf_token"] and body["expires"].endswith("Z")
    cookie = r.headers["set-cookie"]
    attrs = cookie_attrs(cookie)
    raw = cookie.split(";")[0].removeprefix("gw_session=")
    assert len(raw) >= 40
    assert "httponly" in attrs and attrs["path"] == "Path=/"
    assert attrs["samesite"].lower() == "samesite=strict"
    assert attrs["max-age"] == f"Max-Age={api.ctx.config.session_max_h * 3600}"
    assert "secure" not in attrs  # plain http on loopback, cookie_secure: auto
    # Only the SHA-256 of the cookie value is stored.
    found = await sessions(api).resolve(raw, "127.0.0.1")
    assert found is not None and found.session_id_hash == session_digest(raw)
    assert raw not in found.session_id_hash


async def test_the_cookie_is_secure_behind_an_https_proxy_on_loopback(api: ApiHarness) -> None:
    pw = await api.user("proxied", "viewer")
    async with httpx.AsyncClient(base_url=api.url) as c:
        r = await c.post(
            f"{API}/auth/login",
            json={"username": "proxied", "password": pw},
            headers={"X-Forwarded-Proto": "https"},
        )
    assert r.status_code == 200
    assert "secure" in cookie_attrs(r.headers["set-cookie"])


async def test_me_and_logout(api: ApiHarness) -> None:
    pw = await api.user("bea", "supervisor")
    c, csrf = await login(api, "bea", pw)
    me = (await c.get(f"{API}/auth/me")).json()
    assert me["auth"] == "session" and me["csrf_token"] == csrf
    assert me["user"]["username"] == "bea" and me["user"]["role"] == "supervisor"
    r = await c.post(f"{API}/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert "gw_session=" in r.headers["set-cookie"] and "max-age=0" in (
        r.headers["set-cookie"].lower()
    )
    assert (await c.get(f"{API}/auth/me")).status_code == 401
    records = await api.ctx.audit.query(username="bea")
    assert [(r.action, r.outcome) for r in records] == [("auth.logout", "ok"), ("auth.login", "ok")]


async def test_a_closed_session_cookie_no_longer_works_when_replayed(api: ApiHarness) -> None:
    pw = await api.user("replay", "viewer")
    c, csrf = await login(api, "replay", pw)
    raw = c.cookies["gw_session"]
    await c.post(f"{API}/auth/logout", headers={"X-CSRF-Token": csrf})
    async with httpx.AsyncClient(base_url=api.url, cookies={"gw_session": raw}) as thief:
        assert (await thief.get(f"{API}/auth/me")).status_code == 401


async def test_a_new_login_replaces_the_browsers_old_session(api: ApiHarness) -> None:
    pw = await api.user("relog", "viewer")
    c, _ = await login(api, "relog", pw)
    old = c.cookies["gw_session"]
    r = await c.post(f"{API}/auth/login", json={"username": "relog", "password": pw})
    assert r.status_code == 200 and c.cookies["gw_session"] != old
    assert await sessions(api).resolve(old, "") is None
    assert await sessions(api).count_user("relog") == 1


async def test_me_with_a_bearer_token(api: ApiHarness) -> None:
    c = await api.client("engineer")
    me = (await c.get(f"{API}/auth/me")).json()
    assert me["auth"] == "token" and me["csrf_token"] is None
    assert me["user"]["role"] == "engineer" and me["user"]["username"].startswith("token:")


async def test_wrong_password_and_unknown_user_get_the_same_answer(api: ApiHarness) -> None:
    await api.user("cy", "guard")
    async with httpx.AsyncClient(base_url=api.url) as c:
        wrong = await c.post(f"{API}/auth/login", json={"username": "cy", "password": "nope-nope"})
        unknown = await c.post(
            f"{API}/auth/login", json={"username": "nobody", "password": "nope-nope"}
        )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": BAD_CREDENTIALS}
    assert "set-cookie" not in wrong.headers
    failed = [r for r in await api.ctx.audit.query(action="auth.login") if r.outcome == "failed"]
    assert {r.target for r in failed} >= {"cy", "nobody"}
    assert all(r.auth == "anonymous" and r.username == "" for r in failed)


async def test_a_disabled_user_cannot_log_in(api: ApiHarness) -> None:
    pw = await api.user("gone", "guard")
    await api.ctx.auth.users.update_user("gone", disabled=True)
    async with httpx.AsyncClient(base_url=api.url) as c:
        r = await c.post(f"{API}/auth/login", json={"username": "gone", "password": pw})
    assert r.status_code == 401 and r.json() == {"detail": BAD_CREDENTIALS}


async def test_the_sixth_failure_in_the_window_is_refused_with_retry_after(
    api: ApiHarness,
) -> None:
    pw = await api.user("dee", "guard")
    limit = api.ctx.config.login_max_failures
    async with httpx.AsyncClient(base_url=api.url) as c:
        for _ in range(limit):
            r = await c.post(f"{API}/auth/login", json={"username": "dee", "password": "x" * 9})
            assert r.status_code == 401
        r = await c.post(f"{API}/auth/login", json={"username": "dee", "password": "x" * 9})
        assert r.status_code == 429
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= api.ctx.config.login_window_s
        # Even the right password waits: the limit is checked before the password.
        r = await c.post(f"{API}/auth/login", json={"username": "dee", "password": pw})
        assert r.status_code == 429
    outcomes = [r.outcome for r in await api.ctx.audit.query(action="auth.login", limit=3)]
    assert outcomes == ["denied", "denied", "failed"]


async def test_csrf_is_needed_on_unsafe_calls_with_a_cookie(api: ApiHarness) -> None:
    pw = await api.user("eve", "guard")
    c, csrf = await login(api, "eve", pw)
    body = {"current": pw, "new": "another good one"}
    r = await c.post(f"{API}/auth/password", json=body)
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"]
    r = await c.post(f"{API}/auth/password", json=body, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = await c.post(f"{API}/auth/password", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    # This session stays; the new password works, the old one does not.
    assert (await c.get(f"{API}/auth/me")).status_code == 200
    async with httpx.AsyncClient(base_url=api.url) as other:
        old = await other.post(f"{API}/auth/login", json={"username": "eve", "password": pw})
        new = await other.post(
            f"{API}/auth/login", json={"username": "eve", "password": "another good one"}
        )
    assert old.status_code == 401 and new.status_code == 200


async def test_a_password_change_ends_the_users_other_sessions(api: ApiHarness) -> None:
    pw = await api.user("fay", "guard")
    first, _ = await login(api, "fay", pw)
    second, csrf = await login(api, "fay", pw)
    r = await second.post(
        f"{API}/auth/password",
        json={"current": pw, "new": "a brand new one"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 204
    assert (await first.get(f"{API}/auth/me")).status_code == 401
    assert (await second.get(f"{API}/auth/me")).status_code == 200


async def test_password_change_refusals(api: ApiHarness) -> None:
    pw = await api.user("gil", "guard")
    c, csrf = await login(api, "gil", pw)
    h = {"X-CSRF-Token": csrf}
    wrong = await c.post(
        f"{API}/auth/password", json={"current": "x" * 9, "new": "y" * 9}, headers=h
    )
    assert wrong.status_code == 403
    short = await c.post(f"{API}/auth/password", json={"current": pw, "new": "short"}, headers=h)
    assert short.status_code == 422
    spaces = await c.post(
        f"{API}/auth/password", json={"current": pw, "new": " padded password "}, headers=h
    )
    assert spaces.status_code == 422 and "spaces" in spaces.json()["detail"]
    token = await api.client("admin")
    r = await token.post(f"{API}/auth/password", json={"current": "x" * 9, "new": "y" * 9})
    assert r.status_code == 409
    # Nothing changed: the old password still logs in.
    await login(api, "gil", pw)
    outcomes = [r.outcome for r in await api.ctx.audit.query(action="auth.password", limit=3)]
    assert outcomes == [
        "denied",
        "failed",
        "failed",
    ]  # token, spaces, wrong (422 by pydantic: none)


async def test_a_bearer_token_needs_no_csrf(api: ApiHarness) -> None:
    c = await api.client("admin")
    r = await c.post(f"{API}/tokens", json={"name": "no-csrf", "role": "viewer"})
    assert r.status_code == 201


async def test_revoked_and_expired_tokens_are_refused(api: ApiHarness) -> None:
    tokens = api.ctx.auth.tokens
    revoked, info = await tokens.create("soon revoked", "viewer", "tests")
    expired, _ = await tokens.create("expired", "viewer", "tests", expires_ts=api.now() - 1)
    admin = await api.client("admin")
    async with httpx.AsyncClient(base_url=api.url) as c:
        ok = await c.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {revoked}"})
        assert ok.status_code == 200
        assert (await admin.delete(f"{API}/tokens/{info.id}")).status_code == 204
        for token in (revoked, expired, "gwt_nothing_here", "not-even-a-token"):
            r = await c.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        r = await c.get(f"{API}/auth/me", headers={"Authorization": "Basic YTpi"})
        assert r.status_code == 401


async def test_an_anonymous_caller_gets_401_on_every_non_public_route(api: ApiHarness) -> None:
    anon = await api.client(None)
    spec = (await anon.get(f"{API}/openapi.json")).json()
    checked = 0
    for path, ops in spec["paths"].items():
        if not path.startswith(API):
            continue  # the signed acknowledgement links carry their own credentials
        for method in ops:
            if (method.upper(), path) in PUBLIC:
                continue
            url = re.sub(r"\{[^}]+\}", "x", path)
            body = {} if method in ("post", "put", "patch") else None
            r = await anon.request(method.upper(), url, json=body)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers.get("WWW-Authenticate") == "Bearer"
            checked += 1
    assert checked >= 10
    # A made-up session cookie is no better than none.
    async with httpx.AsyncClient(base_url=api.url, cookies={"gw_session": "x" * 43}) as c:
        assert (await c.get(f"{API}/auth/me")).status_code == 401


async def test_the_public_routes_answer_without_credentials(api: ApiHarness) -> None:
    anon = await api.client(None)
    assert (await anon.get(f"{API}/meta")).status_code == 200
    assert (await anon.get(f"{API}/i18n/en")).status_code == 200


async def test_a_role_change_applies_to_an_open_session_at_once(api: ApiHarness) -> None:
    pw = await api.user("hal", "viewer")
    c, _ = await login(api, "hal", pw)
    assert (await c.get(f"{API}/audit")).status_code == 403
    await api.ctx.auth.users.update_user("hal", role="supervisor")
    assert (await c.get(f"{API}/audit")).status_code == 200
    assert (await c.get(f"{API}/auth/me")).json()["user"]["role"] == "supervisor"
    await api.ctx.auth.users.update_user("hal", disabled=True)
    assert (await c.get(f"{API}/auth/me")).status_code == 401


async def test_password_hashes_are_argon2id_and_no_password_is_in_the_database(
    api: ApiHarness,
) -> None:
    secret = "Zebra-Quartz-9917-unique"
    await api.user("ivy", "guard", password=secret)
    c, csrf = await login(api, "ivy", secret)
    new_secret = "Mango-Delta-4471-unique"
    r = await c.post(
        f"{API}/auth/password",
        json={"current": secret, "new": new_secret},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 204
    users = await api.ctx.auth.users.list_users()
    assert users
    from sqlalchemy import select

    from gateway.storage.tables import users as users_table

    async with api.ctx.store.begin() as conn:
        hashes = [h for (h,) in await conn.execute(select(users_table.c.password_hash))]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    files = list(await asyncio.to_thread(Path(api.gw.site.data_dir).glob, "gateway.db*"))
    assert files
    for f in files:  # the database, its WAL and shared-memory files
        data = await asyncio.to_thread(f.read_bytes)
        for text in (secret, new_secret):
            assert text.encode() not in data, f.name
            assert text.encode("utf-16-le") not in data, f.name


# -- unit tests on a ManualClock ---------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    async with EventStore(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}") as s:
        yield s


async def _session_store(store: EventStore, **config: int) -> tuple[SessionStore, ManualClock]:
    clock = ManualClock()
    users = UserStore(store, clock, Passwords(FAST_HASHER))
    await users.create_user("kim", "long enough pw", "guard")
    return SessionStore(store, clock, users, ApiConfig.model_validate(config)), clock


async def test_a_session_ends_after_the_idle_timeout(store: EventStore) -> None:
    sessions, clock = await _session_store(store, session_idle_min=30, session_max_h=24)
    user = await sessions.users.get_user("kim")
    assert user is not None
    raw, _, _ = await sessions.open(user, "10.0.0.5", "test")
    for _ in range(10):  # used every 20 minutes: stays alive for over 3 hours
        await clock.advance(20 * 60)
        assert await sessions.resolve(raw, "10.0.0.5") is not None
    await clock.advance(30 * 60)
    assert await sessions.resolve(raw, "10.0.0.5") is None
    assert await sessions.count_user("kim") == 0  # an ended session is deleted


async def test_a_session_ends_at_the_absolute_limit_however_busy(store: EventStore) -> None:
    sessions, clock = await _session_store(store, session_idle_min=30, session_max_h=2)
    user = await sessions.users.get_user("kim")
    assert user is not None
    raw, _, expires = await sessions.open(user, "10.0.0.5", "test")
    assert expires == clock.time_ns() + 2 * 3600 * 10**9
    for _ in range(11):
        await clock.advance(10 * 60)
        assert await sessions.resolve(raw, "10.0.0.5") is not None
    await clock.advance(10 * 60)  # 2 h after login
    assert await sessions.resolve(raw, "10.0.0.5") is None


async def test_last_seen_is_written_at_most_once_a_minute(store: EventStore) -> None:
    from sqlalchemy import select

    from gateway.storage.tables import sessions as table

    sessions, clock = await _session_store(store)
    user = await sessions.users.get_user("kim")
    assert user is not None
    raw, _, _ = await sessions.open(user, "10.0.0.5", "test")
    opened = clock.time_ns()

    async def last_seen() -> int:
        async with store.begin() as conn:
            return int(await conn.scalar(select(table.c.last_seen_ts)) or 0)

    await clock.advance(30)
    await sessions.resolve(raw, "")
    assert await last_seen() == opened
    await clock.advance(LAST_SEEN_EVERY_NS / 1e9)
    await sessions.resolve(raw, "")
    assert await last_seen() == clock.time_ns()


async def test_disabled_or_deleted_users_lose_their_sessions(store: EventStore) -> None:
    from sqlalchemy import delete

    from gateway.storage.tables import users as users_table

    sessions, _ = await _session_store(store)
    user = await sessions.users.get_user("kim")
    assert user is not None
    raw, _, _ = await sessions.open(user, "", "")
    await sessions.users.update_user("kim", disabled=True)
    assert await sessions.resolve(raw, "") is None
    await sessions.users.update_user("kim", disabled=False)
    raw, _, _ = await sessions.open(user, "", "")
    async with store.begin() as conn:
        await conn.execute(delete(users_table).where(users_table.c.username == "kim"))
    assert await sessions.resolve(raw, "") is None


async def test_close_user_and_purge(store: EventStore) -> None:
    sessions, clock = await _session_store(store, session_idle_min=10)
    user = await sessions.users.get_user("kim")
    assert user is not None
    keep, _, _ = await sessions.open(user, "", "")
    await sessions.open(user, "", "")
    await sessions.open(user, "", "")
    assert await sessions.close_user("kim", keep=session_digest(keep)) == 2
    assert await sessions.resolve(keep, "") is not None
    await clock.advance(11 * 60)
    assert await sessions.purge() == 1
    assert await sessions.count_user("kim") == 0
    for bad in ("", "x" * 500, "not-a-session"):
        assert await sessions.resolve(bad, "") is None


async def test_the_limiter_window_slides() -> None:
    clock = ManualClock()
    limiter = LoginLimiter(clock, max_failures=3, window_s=60)
    for _ in range(2):
        limiter.failure("root", "10.0.0.1")
    assert limiter.retry_after("root", "10.0.0.1") is None
    await clock.advance(30)
    limiter.failure("root", "10.0.0.1")
    assert limiter.retry_after("root", "10.0.0.1") == 30  # the first failure ages out first
    assert limiter.retry_after("ROOT", "10.9.9.9") == 30  # per username, case-folded
    assert limiter.retry_after("other", "10.0.0.1") == 30  # per address
    assert limiter.retry_after("other", "10.9.9.9") is None
    await clock.advance(30)
    assert limiter.retry_after("root", "10.0.0.1") is None  # the first two left the window
    limiter.failure("root", "10.0.0.1")
    assert limiter.retry_after("root", "10.0.0.1") is None  # 2 in the window
    limiter.failure("root", "10.0.0.1")
    assert limiter.retry_after("root", "10.0.0.1") == 30  # until the one at t=30 ages out


async def test_a_success_clears_the_username_but_not_the_address() -> None:
    clock = ManualClock()
    limiter = LoginLimiter(clock, max_failures=2, window_s=300)
    limiter.failure("root", "10.0.0.1")
    limiter.failure("root", "10.0.0.1")
    limiter.success("root")
    assert limiter.retry_after("root", "10.0.0.2") is None
    assert limiter.retry_after("root", "10.0.0.1") == 300


async def test_the_limiter_forgets_old_keys() -> None:
    clock = ManualClock()
    limiter = LoginLimiter(clock, max_failures=5, window_s=60, max_keys=100)
    for i in range(1000):
        limiter.failure(f"user{i}", f"10.0.{i // 250}.{i % 250}")
    assert len(limiter) <= 100
    await clock.advance(61)
    limiter.failure("late", "10.9.9.9")
    assert len(limiter) == 2  # everything older than the window is gone
