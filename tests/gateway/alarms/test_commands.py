"""Bus commands: the role table, argument checks, and refusals stored as events."""

from __future__ import annotations

import pytest

from gateway.alarms import ROLE_PERMISSIONS, ActionNotAllowed, InvalidAction
from gateway.model import AlarmState, Command, Priority
from tests.gateway.alarms.harness import Harness

FIRE = "fire@panel1.zone3"
DOOR = "door@gate1"


def cmd(action: str, role: str, user: str = "u1", origin: str = "api", **args: object) -> Command:
    return Command("alarms", action, args, id=f"c-{action}", user=user, role=role, origin=origin)


async def refusals(h: Harness) -> list[dict[str, object]]:
    return [dict(e.data) for e in await h.events("alarm.command_refused")]


@pytest.fixture
async def alarms(h: Harness) -> Harness:
    await h.apply(
        h.ch("fire", "panel1.zone3"),
        h.ch("door", "gate1"),
        h.ch("tx-trip", "tx1.breaker"),
        h.ch("pressure", "pump1.outlet", level="H"),
    )
    return h


async def test_viewer_may_do_nothing(alarms: Harness) -> None:
    h = alarms
    out = await h.m.handle_command(cmd("acknowledge", "viewer", id=DOOR))
    assert not out.ok and isinstance(out.error, ActionNotAllowed)
    assert str(out.error) == "Role 'viewer' may not acknowledge alarms."
    assert out.error.text("zh-CN") == "角色“viewer”无权对报警执行 acknowledge。"
    (ref,) = await refusals(h)
    assert ref["action"] == "acknowledge" and ref["alarm"] == DOOR
    assert (ref["user"], ref["role"], ref["origin"], ref["command_id"]) == (
        "u1",
        "viewer",
        "api",
        "c-acknowledge",
    )
    assert ref["reason_key"] == "alarms.error.role" and ref["error"] == "ActionNotAllowed"
    assert h.m.get(DOOR).state is AlarmState.UNACKNOWLEDGED  # type: ignore[union-attr]
    assert [e.type for e in h.notices] == ["alarm.command_refused"]


async def test_guard_acks_comments_and_shelves_but_not_fire_or_critical(alarms: Harness) -> None:
    h = alarms
    assert (await h.m.handle_command(cmd("acknowledge", "guard", id=DOOR, note="seen"))).ok
    ok = await h.m.handle_command(
        cmd("shelve", "guard", id=DOOR, reason="delivery", duration_min=30)
    )
    assert ok.ok and ok.alarms[0].state is AlarmState.SHELVED
    assert ok.alarms[0].data["shelved_until"] == h.clock.time_ns() + 1800 * 10**9
    fire = await h.m.handle_command(cmd("shelve", "guard", id=FIRE, reason="drill", duration_s=600))
    assert not fire.ok and isinstance(fire.error, ActionNotAllowed)
    assert "may not shelve alarm fire@panel1.zone3 (fire, high priority)" in str(fire.error)
    crit = await h.m.handle_command(
        cmd("shelve", "guard", id="tx-trip@tx1.breaker", reason="x", duration_s=60)
    )
    assert not crit.ok and "critical" in str(crit.error)
    assert h.m.get(FIRE).state is AlarmState.UNACKNOWLEDGED  # type: ignore[union-attr]
    reset = await h.m.handle_command(cmd("reset", "guard", id="tx-trip@tx1.breaker"))
    assert not reset.ok
    assert [r["action"] for r in await refusals(h)] == ["shelve", "shelve", "reset"]


async def test_engineer_may_hide_anything_but_fire(alarms: Harness) -> None:
    h = alarms
    trip = await h.m.handle_command(
        cmd("shelve", "engineer", id="tx-trip@tx1.breaker", reason="relay test", duration_s=600)
    )
    assert trip.ok
    fire = await h.m.handle_command(cmd("out_of_service", "engineer", id=FIRE, reason="x"))
    assert not fire.ok
    oos = await h.m.handle_command(
        cmd("out_of_service", "engineer", id="pressure@pump1.outlet", reason="bad transmitter")
    )
    assert oos.ok and oos.alarms[0].state is AlarmState.OUT_OF_SERVICE
    maint = await h.m.handle_command(
        cmd("maintenance", "engineer", device="gate1", on=True, reason="repair")
    )
    assert maint.ok and [a.id for a in maint.alarms] == [DOOR]
    assert h.m.maintenance == {"gate1"}


async def test_supervisor_may_shelve_fire(alarms: Harness) -> None:
    out = await alarms.m.handle_command(
        cmd("shelve", "supervisor", id=FIRE, reason="contractor works in zone 3", duration_s=3600)
    )
    assert out.ok and out.alarms[0].state is AlarmState.SHELVED


async def test_oncall_link_may_only_acknowledge(alarms: Harness) -> None:
    h = alarms
    ok = await h.m.handle_command(
        cmd("acknowledge", "oncall", user="李师傅", origin="link", id=FIRE)
    )
    assert ok.ok and ok.alarms[0].user == "李师傅" and ok.alarms[0].data["origin"] == "link"
    for action, args in (("comment", {"note": "x"}), ("shelve", {"reason": "x", "duration_s": 60})):
        out = await h.m.handle_command(cmd(action, "oncall", id=DOOR, **args))
        assert not out.ok and isinstance(out.error, ActionNotAllowed)


async def test_action_errors_and_bad_commands_become_refusals(alarms: Harness) -> None:
    h = alarms
    cases = [
        (cmd("acknowledge", "admin", id="nope@x"), "AlarmNotFound"),
        (cmd("reset", "admin", id="tx-trip@tx1.breaker"), "ActionNotAllowed"),  # still active
        (cmd("fly", "admin", id=DOOR), "InvalidAction"),
        (cmd("acknowledge", "admin"), "InvalidAction"),  # no id
        (cmd("shelve", "admin", id=DOOR, reason="x", duration_s=True), "InvalidAction"),
        (cmd("shelve", "admin", id=DOOR, reason="x", duration_s=10**9), "InvalidAction"),
        (cmd("maintenance", "admin", device="gate1", on="yes"), "InvalidAction"),
        (cmd("acknowledge", "janitor", id=DOOR), "ActionNotAllowed"),
        (Command("gate1", "acknowledge", {"id": DOOR}, user="u", role="admin"), "InvalidAction"),
        (cmd("acknowledge", "admin", user="", id=DOOR), "InvalidAction"),
    ]
    for command, error in cases:
        out = await h.m.handle_command(command)
        assert not out.ok and type(out.error).__name__ == error, (command, out.error)
    assert [r["error"] for r in await refusals(h)] == [e for _, e in cases]
    assert all(a.transition == "activated" for a in h.published)


def test_role_table() -> None:
    assert ROLE_PERMISSIONS["viewer"].actions == frozenset()
    assert ROLE_PERMISSIONS["oncall"].actions == {"acknowledge"}
    assert {"acknowledge", "comment", "shelve"} <= ROLE_PERMISSIONS["guard"].actions
    assert "reset" not in ROLE_PERMISSIONS["guard"].actions
    eng = ROLE_PERMISSIONS["engineer"]
    assert {"reset", "out_of_service", "maintenance"} <= eng.actions
    assert eng.hide_critical and not eng.hide_fire
    assert ROLE_PERMISSIONS["admin"].hide_fire and ROLE_PERMISSIONS["supervisor"].hide_fire
    assert InvalidAction.__mro__[1].__name__ == "AlarmActionError"
    assert Priority.CRITICAL.value == "critical"
