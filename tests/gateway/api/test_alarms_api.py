"""Alarms over HTTP against a real gateway: the board (filters, order, one
alarm, its history), every operator action with its state change and its
audit record, the role matrix (the route's minimum role, then the alarm
manager's table), and what each bad request gets.

Each test raises its own alarms (points of its own) on the shared gateway.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from gateway.api.audit import AuditRecord
from tests.fixtures.api import ApiHarness, api_gateway, site_document

pytestmark = pytest.mark.asyncio(loop_scope="module")

A = "/api/v1/alarms"
PRIORITY_RANK = {"critical": 3, "high": 2, "medium": 1, "low": 0}


def extra_site(tmp: Path) -> dict[str, Any]:
    """The fixture site plus devices and rules enough for one alarm per test."""
    base = site_document(tmp)

    def points(prefix: str, n: int, unit: str = "") -> dict[str, Any]:
        return {f"{prefix}{i}": ({"unit": unit} if unit else {}) for i in range(1, n + 1)}

    devices = [
        *base["devices"],
        {"id": "tx2", "kind": "transformer", "name": "2# 变压器", "location": "B1 配电房"}
        | {"points": points("p", 12, "°C")},
        {"id": "tx3", "kind": "transformer", "name": "3# 变压器", "location": "B1 配电房"}
        | {"points": points("c", 4, "°C")},
        {"id": "fire2", "kind": "fire_panel", "name": "2# 消防分区", "location": "2F"}
        | {"points": points("z", 3)},
        {"id": "pump2", "kind": "pump", "name": "2# 水泵", "location": "B2 水泵房"}
        | {"points": points("q", 3, "MPa")},
        {"id": "pump3", "kind": "pump", "name": "3# 水泵", "location": "B2 水泵房"}
        | {"points": points("q", 2, "MPa")},
    ]
    rules = [
        *base["rules"],
        {"id": "hot2", "points": ["tx2.*"], "high": 100, "priority": "high"},
        {"id": "crit3", "points": ["tx3.*"], "high": 100, "priority": "critical"},
        {
            "id": "zone",
            "type": "state",
            "points": ["fire2.*"],
            "equals": True,
            "priority": "critical",
            "category": "fire",
        },
        {"id": "low2", "points": ["pump2.*", "pump3.*"], "low": 0.2, "priority": "medium"},
    ]
    return {"devices": devices, "rules": rules}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    tmp = tmp_path_factory.mktemp("alarms")
    async with api_gateway(tmp, **extra_site(tmp)) as h:
        yield h


async def raise_alarm(api: ApiHarness, rule: str, point: str, value: float | bool) -> str:
    alarm_id = f"{rule}@{point}"
    await api.reading(point, value)
    await api.wait_alarm(alarm_id)
    return alarm_id


async def audits(api: ApiHarness, action: str, target: str) -> list[AuditRecord]:
    """The audit records of ``action`` on ``target`` (an id, device or path), newest first."""
    return [r for r in await api.ctx.audit.query(action=action, limit=1000) if r.target == target]


async def who(api: ApiHarness, role: str) -> str:
    """The principal name of the harness's bearer token of ``role``."""
    await api.token(role)
    (info,) = [i for i in await api.ctx.auth.tokens.list() if i.name == f"test-{role}"]
    return f"token:{info.id}"


# -- anonymous ---------------------------------------------------------------------


async def test_anonymous_gets_401_on_every_alarm_route(api: ApiHarness) -> None:
    alarm_id = await raise_alarm(api, "hot2", "tx2.p12", 150)
    anon = await api.client(None)
    gets = [A, f"{A}/{alarm_id}", f"{A}/{alarm_id}/history"]
    posts = {
        "acknowledge": {},
        "reset": {},
        "shelve": {"reason": "r", "duration_min": 5},
        "unshelve": {},
        "comment": {"note": "n"},
        "out-of-service": {"reason": "r"},
        "return-to-service": {},
    }
    answers: list[httpx.Response] = [await anon.get(u) for u in gets]
    answers += [await anon.post(f"{A}/{alarm_id}/{a}", json=b) for a, b in posts.items()]
    answers.append(await anon.post("/api/v1/devices/tx2/maintenance", json={"on": False}))
    assert [r.status_code for r in answers] == [401] * len(answers)
    assert all(r.headers["www-authenticate"] == "Bearer" for r in answers)
    bad = httpx.AsyncClient(base_url=api.url, headers={"Authorization": "Bearer gw_nonsense"})
    async with bad:
        assert (await bad.post(f"{A}/{alarm_id}/acknowledge", json={})).status_code == 401
    rec = api.ctx.alerting.manager.get(alarm_id)
    assert rec is not None and not rec.acked  # nothing happened


# -- the board -----------------------------------------------------------------------


async def test_list_filters_and_sorts_critical_first_then_newest(api: ApiHarness) -> None:
    start = datetime.now(UTC)
    medium = await raise_alarm(api, "low2", "pump2.q1", 0.1)
    high_old = await raise_alarm(api, "hot2", "tx2.p1", 150)
    high_new = await raise_alarm(api, "hot2", "tx2.p2", 150)
    critical = await raise_alarm(api, "crit3", "tx3.c1", 150)
    viewer = await api.client("viewer")

    r = await viewer.get(A)
    assert r.status_code == 200
    body = r.json()
    items = body["items"]
    keys = [(PRIORITY_RANK[a["priority"]], a["updated"]) for a in items]
    assert keys == sorted(keys, key=lambda k: (-k[0], _neg_iso(k[1])))
    mine = [a["id"] for a in items if a["id"] in {medium, high_old, high_new, critical}]
    assert mine == [critical, high_new, high_old, medium]
    assert {"control_room": "main"}.items() <= body["floods"][0].items()
    assert isinstance(body["floods"][0]["active"], bool)

    one = next(a for a in items if a["id"] == high_old)
    assert one["rule"] == "hot2" and one["source"] == "tx2.p1" and one["device"] == "tx2"
    assert one["device_name"] == "2# 变压器" and one["location"] == "B1 配电房"
    assert one["state"] == "unacknowledged" and one["priority"] == "high"
    assert one["category"] == "electrical"
    assert one["value"] == 150 and one["limit"] == 100 and one["unit"] == "°C"
    assert one["active"] is True and one["acked"] is False and one["latched"] is False
    assert one["count"] == 1 and one["control_room"] == "main"
    assert one["first"].endswith("Z") and one["activated"] == one["first"]
    assert one["cleared"] is None and one["acked_at"] is None and one["shelved_until"] is None
    crit = next(a for a in items if a["id"] == critical)
    assert crit["latched"] is True  # critical alarms latch (alarms.latch_critical)

    async def ids(**params: Any) -> list[str]:
        r = await viewer.get(A, params=params)
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["items"]]

    assert await ids(device="pump2") == [medium]
    assert await ids(device="tx2", priority="high", since=start.isoformat()) == [high_new, high_old]
    both = await ids(priority=["critical", "medium"], since=start.isoformat())
    assert both == [critical, medium]
    assert medium in await ids(category="water") and high_old not in await ids(category="water")
    assert high_old in await ids(category=["water", "electrical"])
    assert await ids(state="shelved", device="tx3") == []
    assert critical in await ids(state=["unacknowledged", "acknowledged"])
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await ids(since=later) == []
    assert await ids(until=start.isoformat(), device="pump2") == []
    assert await ids(until=later, device="pump2") == [medium]

    for bad in ({"state": "burning"}, {"priority": "urgent"}, {"since": "2026-01-01T00:00:00"}):
        r = await viewer.get(A, params=bad)
        assert r.status_code == 422, bad  # unknown value, or a time without its zone

    got = await viewer.get(f"{A}/{high_old}")
    assert got.status_code == 200 and got.json() == one


def _neg_iso(ts: str) -> float:
    return -datetime.fromisoformat(ts).timestamp()


async def test_unknown_alarm_is_404_everywhere_and_audited(api: ApiHarness) -> None:
    guard = await api.client("guard")
    assert (await guard.get(f"{A}/nope@tx2.p9")).status_code == 404
    assert (await guard.get(f"{A}/nope@tx2.p9/history")).status_code == 404
    assert (await guard.get(f"{A}/no-at-sign/history")).status_code == 404
    r = await guard.post(f"{A}/nope@tx2.p9/acknowledge", json={"note": "?"})
    assert r.status_code == 404
    assert "No alarm nope@tx2.p9" in r.json()["detail"]
    (rec,) = await audits(api, "alarm.acknowledge", "nope@tx2.p9")
    assert rec.outcome == "failed" and rec.role == "guard"
    assert rec.detail["note"] == "?" and "No alarm" in rec.detail["error"]


# -- actions and the role matrix ---------------------------------------------------------


async def test_guard_acknowledges_once_then_409(api: ApiHarness) -> None:
    alarm_id = await raise_alarm(api, "hot2", "tx2.p3", 150)
    guard = await api.client("guard")
    r = await guard.post(f"{A}/{alarm_id}/acknowledge", json={"note": "on my way 马上到"})
    assert r.status_code == 200, r.text
    out = r.json()
    guard_name = await who(api, "guard")
    assert out["state"] == "acknowledged" and out["acked"] is True
    assert out["acked_by"] == guard_name and out["acked_at"] is not None
    assert (await guard.get(f"{A}/{alarm_id}")).json() == out
    (ok,) = await audits(api, "alarm.acknowledge", alarm_id)
    assert (ok.outcome, ok.username, ok.role, ok.auth) == ("ok", guard_name, "guard", "token")
    assert ok.detail == {"note": "on my way 马上到"} and ok.client == "127.0.0.1"

    again = await guard.post(f"{A}/{alarm_id}/acknowledge", json={})
    assert again.status_code == 409
    assert again.json()["detail"] == f"Alarm {alarm_id} is already acknowledged."
    failed, _ = await audits(api, "alarm.acknowledge", alarm_id)
    assert failed.outcome == "failed" and "already acknowledged" in failed.detail["error"]

    # the history: newest first, its own alarm.* events, the refusal included
    history = (await guard.get(f"{A}/{alarm_id}/history")).json()
    assert [e["type"] for e in history] == [
        "alarm.command_refused",
        "alarm.acknowledged",
        "alarm.activated",
    ]
    assert history[1]["data"]["note"] == "on my way 马上到"
    assert history[1]["data"]["user"] == guard_name
    assert history[1]["data"]["origin"] == "api:127.0.0.1"
    assert [e["id"] for e in history] == sorted((e["id"] for e in history), reverse=True)
    assert (await guard.get(f"{A}/{alarm_id}/history", params={"limit": 1})).json() == history[:1]


async def test_viewer_cannot_acknowledge(api: ApiHarness) -> None:
    alarm_id = await raise_alarm(api, "hot2", "tx2.p4", 150)
    viewer = await api.client("viewer")
    r = await viewer.post(f"{A}/{alarm_id}/acknowledge", json={"note": "x"})
    assert r.status_code == 403
    assert "guard" in r.json()["detail"]
    (denied,) = await audits(api, "alarm.acknowledge", f"{A}/{alarm_id}/acknowledge")
    assert denied.outcome == "denied" and denied.role == "viewer"
    assert (await viewer.get(f"{A}/{alarm_id}")).json()["state"] == "unacknowledged"


async def test_guard_shelves_and_unshelves_a_high_electrical_alarm(api: ApiHarness) -> None:
    alarm_id = await raise_alarm(api, "hot2", "tx2.p5", 150)
    guard = await api.client("guard")
    before = datetime.now(UTC)
    r = await guard.post(
        f"{A}/{alarm_id}/shelve", json={"reason": "sensor being replaced", "duration_min": 30}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["state"] == "shelved" and out["shelve_reason"] == "sensor being replaced"
    assert out["shelved_by"] == await who(api, "guard")
    until = datetime.fromisoformat(out["shelved_until"])
    assert before + timedelta(minutes=29) < until < before + timedelta(minutes=31)
    assert (await guard.get(f"{A}/{alarm_id}")).json()["state"] == "shelved"
    (ok,) = await audits(api, "alarm.shelve", alarm_id)
    assert ok.outcome == "ok"
    assert ok.detail == {"reason": "sensor being replaced", "duration_min": 30}

    r = await guard.post(f"{A}/{alarm_id}/unshelve", json={"note": "replaced"})
    assert r.status_code == 200 and r.json()["state"] == "unacknowledged"
    assert r.json()["shelved_until"] is None
    assert (await guard.post(f"{A}/{alarm_id}/unshelve", json={})).status_code == 409
    assert [a.outcome for a in await audits(api, "alarm.unshelve", alarm_id)] == ["failed", "ok"]


async def test_guard_cannot_shelve_fire_but_a_supervisor_can(api: ApiHarness) -> None:
    alarm_id = await raise_alarm(api, "zone", "fire2.z1", True)
    guard, supervisor = await api.client("guard"), await api.client("supervisor")
    body = {"reason": "drill in zone 1", "duration_min": 60}
    r = await guard.post(f"{A}/{alarm_id}/shelve", json=body)
    assert r.status_code == 403
    assert r.json()["detail"] == (
        f"Role 'guard' may not shelve alarm {alarm_id} (fire, critical priority)."
    )
    (denied,) = await audits(api, "alarm.shelve", alarm_id)
    assert denied.outcome == "denied" and denied.role == "guard"
    assert (await guard.get(f"{A}/{alarm_id}")).json()["state"] == "unacknowledged"

    r = await supervisor.post(f"{A}/{alarm_id}/shelve", json=body)
    assert r.status_code == 200 and r.json()["state"] == "shelved"
    assert r.json()["category"] == "fire" and r.json()["priority"] == "critical"
    ok, _ = await audits(api, "alarm.shelve", alarm_id)
    assert ok.outcome == "ok" and ok.role == "supervisor"


async def test_engineer_resets_a_latched_critical_alarm(api: ApiHarness) -> None:
    alarm_id = await raise_alarm(api, "crit3", "tx3.c2", 150)
    guard, engineer = await api.client("guard"), await api.client("engineer")
    manager = api.ctx.alerting.manager
    assert (await guard.post(f"{A}/{alarm_id}/acknowledge", json={})).status_code == 200

    still = await engineer.post(f"{A}/{alarm_id}/reset", json={})
    assert still.status_code == 409 and "still active" in still.json()["detail"]

    await api.reading("tx3.c2", 20)
    await api.wait_for(lambda: not getattr(manager.get(alarm_id), "active", True))
    out = (await guard.get(f"{A}/{alarm_id}")).json()
    assert out["state"] == "acknowledged" and out["latched"] is True and out["active"] is False

    by_guard = await guard.post(f"{A}/{alarm_id}/reset", json={})
    assert by_guard.status_code == 403  # the manager's table: resetting is for engineers
    assert by_guard.json()["detail"] == "Role 'guard' may not reset alarms."

    r = await engineer.post(f"{A}/{alarm_id}/reset", json={"note": "breaker checked"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "normal" and r.json()["latched"] is False
    assert manager.get(alarm_id) is None  # plainly normal: off the board
    assert (await guard.get(f"{A}/{alarm_id}")).status_code == 404
    history = (await guard.get(f"{A}/{alarm_id}/history")).json()
    assert history[0]["type"] == "alarm.reset" and history[0]["data"]["note"] == "breaker checked"
    outcomes = [(a.outcome, a.role) for a in await audits(api, "alarm.reset", alarm_id)]
    assert outcomes == [("ok", "engineer"), ("denied", "guard"), ("failed", "engineer")]


async def test_comment_out_of_service_and_back(api: ApiHarness) -> None:
    alarm_id = await raise_alarm(api, "hot2", "tx2.p6", 150)
    guard, engineer = await api.client("guard"), await api.client("engineer")

    r = await guard.post(f"{A}/{alarm_id}/comment", json={"note": "smell of burning"})
    assert r.status_code == 200 and r.json()["state"] == "unacknowledged"
    assert (await guard.post(f"{A}/{alarm_id}/comment", json={"note": ""})).status_code == 422
    blank = await guard.post(f"{A}/{alarm_id}/comment", json={"note": "   "})
    assert blank.status_code == 422 and blank.json()["detail"] == "A comment needs a note."

    by_guard = await guard.post(f"{A}/{alarm_id}/out-of-service", json={"reason": "broken"})
    assert by_guard.status_code == 403
    r = await engineer.post(f"{A}/{alarm_id}/out-of-service", json={"reason": "probe broken"})
    assert r.status_code == 200
    assert r.json()["state"] == "out_of_service" and r.json()["oos_reason"] == "probe broken"
    assert (
        await engineer.post(f"{A}/{alarm_id}/out-of-service", json={"reason": "x"})
    ).status_code == 409
    shelve = await guard.post(f"{A}/{alarm_id}/shelve", json={"reason": "x", "duration_min": 5})
    assert shelve.status_code == 409 and "out of service" in shelve.json()["detail"]

    r = await engineer.post(f"{A}/{alarm_id}/return-to-service", json={"note": "new probe"})
    assert r.status_code == 200 and r.json()["state"] == "unacknowledged"
    assert r.json()["out_of_service"] is False

    outcomes = {
        action: [a.outcome for a in await audits(api, action, alarm_id)]
        for action in ("alarm.comment", "alarm.out_of_service", "alarm.return_to_service")
    }
    assert outcomes == {
        "alarm.comment": ["failed", "ok"],  # the empty note never reached the route
        "alarm.out_of_service": ["failed", "ok", "denied"],
        "alarm.return_to_service": ["ok"],
    }
    types = [e["type"] for e in (await guard.get(f"{A}/{alarm_id}/history")).json()]
    assert types[:3] == [
        "alarm.returned_to_service",
        "alarm.command_refused",
        "alarm.command_refused",
    ]
    assert "alarm.out_of_service" in types and "alarm.comment" in types


async def test_bad_bodies_are_422_and_change_nothing(api: ApiHarness) -> None:
    alarm_id = await raise_alarm(api, "hot2", "tx2.p7", 150)
    guard = await api.client("guard")
    url = f"{A}/{alarm_id}/shelve"
    for body in (
        {"reason": "x", "duration_min": 0},  # not positive
        {"reason": "x", "duration_min": -5},
        {"reason": "x", "duration_min": 10**9},  # beyond any site's limit
        {"reason": "x", "duration_min": "soon"},
        {"reason": "x", "duration_min": 1.5},
        {"reason": "", "duration_min": 5},  # a reason is required
        {"duration_min": 5},
        {"reason": "x", "duration_min": 5, "extra": 1},  # unknown field
    ):
        r = await guard.post(url, json=body)
        assert r.status_code == 422, body
    assert (await guard.post(url, content=b"{not json")).status_code == 422
    # within the API's ceiling but over this site's alarms.shelve.max_hours (24 h)
    r = await guard.post(url, json={"reason": "x", "duration_min": 25 * 60})
    assert r.status_code == 422 and "at most 24" in r.json()["detail"]
    (failed,) = await audits(api, "alarm.shelve", alarm_id)  # the only one that got through
    assert failed.outcome == "failed" and failed.detail["duration_min"] == 1500
    ack = await guard.post(f"{A}/{alarm_id}/acknowledge", json={"note": 5})
    assert ack.status_code == 422
    assert (await guard.get(f"{A}/{alarm_id}")).json()["state"] == "unacknowledged"


async def test_maintenance_suppresses_a_devices_alarms(api: ApiHarness) -> None:
    alarm_id = await raise_alarm(api, "low2", "pump3.q1", 0.05)
    guard, engineer = await api.client("guard"), await api.client("engineer")
    url = "/api/v1/devices/pump3/maintenance"

    assert (await guard.post(url, json={"on": True, "reason": "x"})).status_code == 403
    no_reason = await engineer.post(url, json={"on": True})
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    r = await engineer.post(url, json={"on": True, "reason": "seal replacement"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["device"] == "pump3" and out["maintenance"] is True
    (alarm,) = out["alarms"]
    assert alarm["id"] == alarm_id and alarm["state"] == "suppressed"
    assert alarm["suppressed_by"] == ["maintenance:pump3"]
    assert (await engineer.post(url, json={"on": True, "reason": "y"})).status_code == 409
    unknown = await engineer.post("/api/v1/devices/pump99/maintenance", json={"on": False})
    assert unknown.status_code == 404

    r = await engineer.post(url, json={"on": False})
    assert r.status_code == 200 and r.json()["maintenance"] is False
    assert r.json()["alarms"][0]["state"] == "unacknowledged"
    outcomes = [a.outcome for a in await audits(api, "device.maintenance", "pump3")]
    assert outcomes == ["ok", "failed", "ok", "failed"]
    (denied,) = await audits(api, "device.maintenance", url)
    assert denied.outcome == "denied" and denied.role == "guard"
    (missing,) = await audits(api, "device.maintenance", "pump99")
    assert missing.outcome == "failed"


async def take_write_lock(database: str) -> sqlite3.Connection:
    """A connection holding SQLite's write lock. Polled without blocking: a
    blocking wait in the event loop would stall the gateway's own transaction
    that holds the lock at that moment (a deadlock until the timeout)."""
    locker = sqlite3.connect(database, timeout=0, isolation_level=None)
    async with asyncio.timeout(30):
        while True:
            try:
                locker.execute("BEGIN IMMEDIATE")
                return locker
            except sqlite3.OperationalError:  # another writer: try again shortly
                await asyncio.sleep(0.02)


async def test_store_outage_is_503_and_nothing_changes(tmp_path: Path) -> None:
    """A real outage on a gateway of its own: another connection holds SQLite's
    write lock (as a backup tool would), so writes fail with 'database is locked'
    after the store's busy timeout (5 s) while reads go on (WAL)."""
    async with api_gateway(tmp_path) as h:
        alarm_id = await raise_alarm(h, "tx1-hot", "tx1.winding_temp_a", 150)
        guard = await h.client("guard")
        assert (await guard.get(A)).status_code == 200  # the token's last use is written now
        manager = h.ctx.alerting.manager
        database = make_url(h.ctx.store.url).database
        assert database is not None
        locker = await take_write_lock(database)
        try:
            await h.reading("tx1.winding_temp_a", 20)  # the clear waits for the store
            await h.wait_for(lambda: manager.store_down, timeout=60, what="the outage noticed")
            failed_before = h.ctx.audit.failed_writes
            r = await guard.post(f"{A}/{alarm_id}/acknowledge", json={"note": "n"})
            assert r.status_code == 503
            assert "cannot be written" in r.json()["detail"]
            assert h.ctx.audit.failed_writes == failed_before + 1  # logged, not stored
            rec = manager.get(alarm_id)
            assert rec is not None and not rec.acked  # nothing changed
            board = await guard.get(A)  # the board is served from memory
            assert board.status_code == 200 and board.json()["items"][0]["id"] == alarm_id
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await h.wait_for(lambda: not manager.store_down, timeout=60, what="the store back")
        r = await guard.post(f"{A}/{alarm_id}/acknowledge", json={"note": "n"})
        assert r.status_code == 200 and r.json()["state"] == "normal"
