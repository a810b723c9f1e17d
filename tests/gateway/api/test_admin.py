"""Users, tokens and the audit trail through the admin routes of a real gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio

from gateway.api.auth.sessions import SessionStore
from gateway.model import to_datetime
from tests.fixtures.api import ApiHarness, api_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

API = "/api/v1"
BELOW_ADMIN = ("viewer", "guard", "engineer", "supervisor")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with api_gateway(tmp_path_factory.mktemp("admin")) as h:
        yield h


async def audit(api: ApiHarness, **filters: str) -> list[tuple[str, str, str]]:
    """(action, target, outcome) of the matching records, newest first."""
    return [(r.action, r.target, r.outcome) for r in await api.ctx.audit.query(**filters)]


async def test_users_crud_as_admin(api: ApiHarness) -> None:
    admin = await api.client("admin")
    r = await admin.post(
        f"{API}/users",
        json={
            "username": "li.wei",
            "display_name": "李伟",
            "role": "guard",
            "password": "first password",
            "locale": "zh-CN",
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["username"] == "li.wei" and created["display_name"] == "李伟"
    assert created["role"] == "guard" and created["locale"] == "zh-CN"
    assert created["disabled"] is False and created["created"].endswith("Z")
    assert "password" not in created and "password_hash" not in created

    listed = (await admin.get(f"{API}/users")).json()
    assert "li.wei" in [u["username"] for u in listed]

    r = await admin.patch(f"{API}/users/li.wei", json={"role": "engineer", "locale": "en"})
    assert r.status_code == 200
    assert r.json()["role"] == "engineer" and r.json()["locale"] == "en"
    assert r.json()["display_name"] == "李伟"  # untouched

    records = await api.ctx.audit.query(username=f"token:{await token_id(api, 'admin')}")
    ours = [(r.action, r.target, r.outcome) for r in records if r.target == "li.wei"]
    assert ours == [("user.update", "li.wei", "ok"), ("user.create", "li.wei", "ok")]
    update = next(r for r in records if r.action == "user.update")
    assert update.detail["changes"] == {"role": "engineer", "locale": "en"}


async def token_id(api: ApiHarness, role: str) -> str:
    token = await api.token(role)
    info = await api.ctx.auth.tokens.verify(token)
    assert info is not None
    return info.id


async def test_user_create_refusals(api: ApiHarness) -> None:
    admin = await api.client("admin")
    body = {"username": "dup", "role": "viewer", "password": "long enough"}
    assert (await admin.post(f"{API}/users", json=body)).status_code == 201
    again = await admin.post(f"{API}/users", json=body)
    assert again.status_code == 409 and "exists" in again.json()["detail"]
    for bad in (
        {**body, "username": "bad name"},
        {**body, "username": "new1", "role": "root"},
        {**body, "username": "new2", "password": "short"},
        {**body, "username": "new3", "locale": "fr"},
        {**body, "username": "new4", "extra": 1},
        {**body, "username": "new5", "password": " spaces around "},
    ):
        r = await admin.post(f"{API}/users", json=bad)
        assert r.status_code == 422, (bad, r.text)
    assert [u.username for u in await api.ctx.auth.users.list_users()].count("dup") == 1
    assert not {"new1", "new2", "new3", "new4", "new5"} & {
        u.username for u in await api.ctx.auth.users.list_users()
    }
    # The policy refusal reached the route and is in the trail; pydantic's 422s never ran it.
    assert ("user.create", "new5", "failed") in await audit(api, action="user.create")
    assert ("user.create", "dup", "failed") in await audit(api, action="user.create")


async def test_patch_an_unknown_user_is_404(api: ApiHarness) -> None:
    admin = await api.client("admin")
    r = await admin.patch(f"{API}/users/nobody", json={"role": "guard"})
    assert r.status_code == 404
    assert ("user.update", "nobody", "failed") in await audit(api, action="user.update")


async def test_disabling_a_user_or_a_new_password_ends_their_sessions(api: ApiHarness) -> None:
    admin = await api.client("admin")
    pw = await api.user("mo", "guard")
    sessions = api.ctx.auth.sessions
    assert isinstance(sessions, SessionStore)

    async def logged_in() -> httpx.AsyncClient:
        c = await api.client(None)
        r = await c.post(f"{API}/auth/login", json={"username": "mo", "password": pw})
        assert r.status_code == 200
        return c

    c = await logged_in()
    r = await admin.patch(f"{API}/users/mo", json={"password": "new password 1"})
    assert r.status_code == 200
    assert (await c.get(f"{API}/auth/me")).status_code == 401
    pw = "new password 1"
    c = await logged_in()
    assert (await admin.patch(f"{API}/users/mo", json={"disabled": True})).status_code == 200
    assert (await c.get(f"{API}/auth/me")).status_code == 401
    assert await sessions.count_user("mo") == 0
    records = await api.ctx.audit.query(action="user.update", limit=2)
    assert records[0].detail["changes"] == {"disabled": True}
    assert records[1].detail["changes"] == {"password": True}  # never the password itself
    assert "new password 1" not in str(records[1].detail)


async def test_tokens_crud_as_admin(api: ApiHarness) -> None:
    admin = await api.client("admin")
    r = await admin.post(f"{API}/tokens", json={"name": "BMS", "role": "viewer", "expires_days": 7})
    assert r.status_code == 201
    token, info = r.json()["token"], r.json()["info"]
    assert token.startswith(f"gwt_{info['id']}_")
    assert info["role"] == "viewer" and info["created_by"].startswith("token:")
    assert info["revoked"] is None and info["last_used"] is None
    assert info["expires"] > info["created"]

    listed = (await admin.get(f"{API}/tokens")).json()
    assert info["id"] in [t["id"] for t in listed]
    assert all("token" not in t and "token_hash" not in t for t in listed)

    async with httpx.AsyncClient(
        base_url=api.url, headers={"Authorization": f"Bearer {token}"}
    ) as bms:
        assert (await bms.get(f"{API}/auth/me")).json()["user"]["role"] == "viewer"
        assert (await admin.delete(f"{API}/tokens/{info['id']}")).status_code == 204
        assert (await bms.get(f"{API}/auth/me")).status_code == 401
    again = await admin.delete(f"{API}/tokens/{info['id']}")
    assert again.status_code == 404
    revoked = next(t for t in (await admin.get(f"{API}/tokens")).json() if t["id"] == info["id"])
    assert revoked["revoked"] is not None
    trail = await audit(api, action="token.*")
    assert trail[:3] == [
        ("token.revoke", info["id"], "failed"),
        ("token.revoke", info["id"], "ok"),
        ("token.create", info["id"], "ok"),
    ]


async def test_token_create_refusals(api: ApiHarness) -> None:
    admin = await api.client("admin")
    for bad in (
        {"name": "", "role": "viewer"},
        {"name": "x", "role": "god"},
        {"name": "x", "role": "viewer", "expires_days": 0},
        {"name": "x" * 129, "role": "viewer"},
    ):
        assert (await admin.post(f"{API}/tokens", json=bad)).status_code == 422, bad


@pytest.mark.parametrize("role", BELOW_ADMIN)
async def test_every_other_role_is_refused_and_the_refusal_audited(
    api: ApiHarness, role: str
) -> None:
    c = await api.client(role)
    who = f"token:{await token_id(api, role)}"
    calls = [
        ("GET", f"{API}/users", None, None),
        (
            "POST",
            f"{API}/users",
            {"username": f"x{role}", "role": "admin", "password": "p" * 9},
            "user.create",
        ),
        ("PATCH", f"{API}/users/anyone", {"role": "admin"}, "user.update"),
        ("GET", f"{API}/tokens", None, None),
        ("POST", f"{API}/tokens", {"name": "mine", "role": "admin"}, "token.create"),
        ("DELETE", f"{API}/tokens/abc", None, "token.revoke"),
    ]
    for method, url, body, _ in calls:
        r = await c.request(method, url, json=body)
        assert r.status_code == 403, (role, method, url, r.text)
    denied = [(r.action, r.outcome) for r in await api.ctx.audit.query(username=who)]
    assert denied == [(a, "denied") for *_, a in reversed(calls) if a is not None]
    assert await api.ctx.auth.users.get_user(f"x{role}") is None


async def test_supervisor_reads_the_audit_but_viewer_does_not(api: ApiHarness) -> None:
    assert (await (await api.client("supervisor")).get(f"{API}/audit")).status_code == 200
    assert (await (await api.client("admin")).get(f"{API}/audit")).status_code == 200
    for role in ("viewer", "guard", "engineer"):
        assert (await (await api.client(role)).get(f"{API}/audit")).status_code == 403


async def test_the_last_enabled_admin_cannot_be_demoted_or_disabled(api: ApiHarness) -> None:
    admin = await api.client("admin")
    users = api.ctx.auth.users
    # Only token admins so far: make "root" the one enabled admin user.
    assert await users.count_admins() == 0
    await api.user("root", "admin")
    for change in ({"role": "supervisor"}, {"disabled": True}):
        r = await admin.patch(f"{API}/users/root", json=change)
        assert r.status_code == 409 and "last enabled admin" in r.json()["detail"]
    root = await users.get_user("root")
    assert root is not None and root.role == "admin" and not root.disabled  # rolled back
    assert await audit(api, action="user.update", limit=2) == [
        ("user.update", "root", "failed"),
        ("user.update", "root", "failed"),
    ]
    # With a second admin, the first can go; then the second is the last one.
    await api.user("root2", "admin")
    assert (await admin.patch(f"{API}/users/root", json={"role": "guard"})).status_code == 200
    assert (await admin.patch(f"{API}/users/root2", json={"disabled": True})).status_code == 409
    # Other changes to the last admin are fine.
    r = await admin.patch(f"{API}/users/root2", json={"display_name": "Root Two", "role": "admin"})
    assert r.status_code == 200 and r.json()["display_name"] == "Root Two"


async def test_audit_paging_and_filters(api: ApiHarness) -> None:
    log = api.ctx.audit
    start = api.now()
    ids = [
        await log.record(
            None, f"paging.step{i % 2}", f"t{i}", "ok", "1.2.3.4", {"i": i}, username="pager"
        )
        for i in range(7)
    ]
    assert all(i is not None for i in ids)
    sup = await api.client("supervisor")
    seen: list[int] = []
    before: int | None = None
    while True:
        params: dict[str, str | int] = {"username": "pager", "limit": 3}
        if before is not None:
            params["before_id"] = before
        page = (await sup.get(f"{API}/audit", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        before = page["next_before_id"]
        if before is None:
            break
    assert seen == sorted(ids, reverse=True)  # newest first, each exactly once

    r = await sup.get(f"{API}/audit", params={"username": "pager", "action": "paging.step1"})
    assert [i["target"] for i in r.json()["items"]] == ["t5", "t3", "t1"]
    r = await sup.get(f"{API}/audit", params={"action": "paging.*", "limit": 100})
    assert len(r.json()["items"]) == 7 and r.json()["next_before_id"] is None
    item = r.json()["items"][0]
    assert item["client"] == "1.2.3.4" and item["detail"] == {"i": 6}
    assert item["auth"] == "anonymous" and item["ts"].endswith("Z")

    later = (to_datetime(api.now()) + timedelta(hours=1)).isoformat()
    r = await sup.get(f"{API}/audit", params={"username": "pager", "since": later})
    assert r.json()["items"] == []
    r = await sup.get(
        f"{API}/audit",
        params={"username": "pager", "since": to_datetime(start).isoformat(), "until": later},
    )
    assert len(r.json()["items"]) == 7


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"before_id": 0},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},  # no zone: ambiguous
        {"until": "1700000000"},  # a Unix time: the API speaks ISO 8601
    ],
)
async def test_bad_audit_filters_are_422(api: ApiHarness, params: dict[str, object]) -> None:
    sup = await api.client("supervisor")
    r = await sup.get(f"{API}/audit", params=params)
    assert r.status_code == 422, r.text


async def test_audit_times_beyond_the_nanosecond_range_mean_any(api: ApiHarness) -> None:
    sup = await api.client("supervisor")
    r = await sup.get(
        f"{API}/audit",
        params={"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z", "limit": 1},
    )
    assert r.status_code == 200 and len(r.json()["items"]) == 1


async def test_a_null_field_in_a_patch_changes_nothing(api: ApiHarness) -> None:
    admin = await api.client("admin")
    pw = await api.user("nully", "guard")
    r = await admin.patch(f"{API}/users/nully", json={"password": None, "role": None})
    assert r.status_code == 200 and r.json()["role"] == "guard"
    assert await api.ctx.auth.users.check_password("nully", pw) is not None
    (record,) = await api.ctx.audit.query(action="user.update", limit=1)
    assert record.target == "nully" and record.detail["changes"] == {}
