"""Door supervision on a ManualClock: forced, held open, closed, tailgating."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.access.config import DoorConfig
from gateway.access.supervision import DoorInputs, DoorSupervisor, SupervisionError
from gateway.clock import ManualClock
from gateway.model import Event, Reading


def door(**kw: Any) -> DoorConfig:
    base: dict[str, Any] = {
        "id": "d1",
        "area": "estate",
        "relay": {"device": "r1", "seconds": 3},
        "held_open_s": 30,
        "prealarm_s": 20,
        "tailgate_window_s": 10,
    }
    base.update(kw)
    return DoorConfig.model_validate(base)


class Rig:
    def __init__(self, cfg: DoorConfig, grace_s: float = 1.0) -> None:
        self.clock = ManualClock()
        self.events: list[Event] = []
        self.sup = DoorSupervisor(cfg, self.clock, self._emit, grace_s=grace_s)

    async def _emit(self, e: Event) -> None:
        self.events.append(e)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


async def test_opening_after_a_grant_is_not_forced_and_a_quick_close_logs_nothing() -> None:
    r = Rig(door())
    await r.sup.contact(False)
    r.sup.grant()
    await r.clock.advance(1)
    await r.sup.contact(True)
    await r.clock.advance(5)
    await r.sup.contact(False)
    await r.clock.advance(60)
    assert r.types() == []
    await r.sup.close()


async def test_opening_without_a_grant_is_forced_and_closing_clears_it() -> None:
    r = Rig(door())
    await r.sup.contact(False)
    await r.sup.contact(True)
    assert r.types() == []  # within the grace a late grant could still excuse it
    await r.clock.advance(1)
    assert r.types() == ["door.forced"]
    assert r.events[0].source == "d1" and r.events[0].data == {"door": "d1"}
    await r.clock.advance(2)
    await r.sup.contact(False)
    assert r.types() == ["door.forced", "door.closed"]
    assert r.events[1].data["seconds"] == 3.0
    await r.sup.close()


async def test_a_grant_expires_after_relay_seconds_plus_two() -> None:
    r = Rig(door())
    await r.sup.contact(False)
    r.sup.grant()
    await r.clock.advance(5.5)  # 3 s relay + 2 s margin has passed
    await r.sup.contact(True)
    await r.clock.advance(1)
    assert r.types() == ["door.forced"]
    await r.sup.close()


async def test_a_grant_excuses_one_opening_only() -> None:
    r = Rig(door())
    await r.sup.contact(False)
    r.sup.grant()
    await r.sup.contact(True)
    await r.sup.contact(False)
    await r.sup.contact(True)
    await r.clock.advance(1)
    assert r.types() == ["door.forced"]
    await r.sup.close()


async def test_a_grant_just_after_the_opening_excuses_it() -> None:
    r = Rig(door())
    await r.sup.contact(False)
    await r.sup.contact(True)
    await r.clock.advance(0.5)
    r.sup.grant()  # the controller's decision travelled slower than the contact
    await r.clock.advance(5)
    assert r.types() == []
    await r.sup.close()


async def test_closed_again_within_the_grace_is_still_forced() -> None:
    r = Rig(door())
    await r.sup.contact(False)
    await r.sup.contact(True)
    await r.clock.advance(0.2)
    await r.sup.contact(False)
    assert r.types() == ["door.forced", "door.closed"]
    await r.sup.close()


async def test_exit_button_opening_is_not_forced() -> None:
    r = Rig(door())
    await r.sup.contact(False)
    r.sup.exit_request()
    await r.sup.contact(True)
    await r.clock.advance(2)
    await r.sup.contact(False)
    assert r.types() == []
    await r.sup.close()


async def test_held_open_prealarm_then_alarm_then_closed() -> None:
    r = Rig(door())
    await r.sup.contact(False)
    r.sup.grant()
    await r.sup.contact(True)
    await r.clock.advance(19.9)
    assert r.types() == []
    await r.clock.advance(0.2)
    assert r.types() == ["door.held_prealarm"]
    assert r.events[-1].data["seconds"] == 20
    await r.clock.advance(10)
    assert r.types() == ["door.held_prealarm", "door.held_open"]
    assert r.events[-1].data["seconds"] == 30
    await r.clock.advance(100)
    assert len(r.events) == 2  # held open is raised once per opening
    await r.sup.contact(False)
    assert r.types()[-1] == "door.closed"
    assert r.events[-1].data["seconds"] == pytest.approx(130.1)
    await r.sup.close()


async def test_no_prealarm_when_disabled() -> None:
    r = Rig(door(prealarm_s=None, held_open_s=15))
    await r.sup.contact(False)
    r.sup.grant()
    await r.sup.contact(True)
    await r.clock.advance(16)
    assert r.types() == ["door.held_open"]
    await r.sup.close()


async def test_open_at_first_report_is_supervised_for_held_but_not_forced() -> None:
    r = Rig(door())
    await r.sup.contact(True)
    await r.clock.advance(31)
    assert r.types() == ["door.held_prealarm", "door.held_open"]
    await r.sup.close()


async def test_tailgating_more_passages_than_grants_in_the_window() -> None:
    r = Rig(door(passages={"point": "gate1.count"}))
    r.sup.grant()
    await r.sup.passage(1)
    assert r.types() == []
    await r.clock.advance(2)
    await r.sup.passage(1)  # a second person went through on one grant
    assert r.types() == ["access.tailgate"]
    assert r.events[0].data == {"door": "d1", "passages": 2, "grants": 1, "unauthorised": 1}
    await r.sup.passage(0)
    await r.clock.advance(20)  # a new window
    r.sup.grant()
    r.sup.grant()
    await r.sup.passage(2)
    assert r.types() == ["access.tailgate"]
    await r.sup.close()


async def test_a_grant_late_in_a_window_still_authorises_its_passage() -> None:
    """Each grant has its own window: one given 9.8 s after an earlier passage
    covers the person who walks through 0.5 s later (a window counted from
    the first grant would have ended in between and called it a tailgate)."""
    r = Rig(door(passages={"point": "gate1.count"}))
    r.sup.grant()
    await r.sup.passage(1)
    await r.clock.advance(9.8)
    r.sup.grant()
    await r.clock.advance(0.5)
    await r.sup.passage(1)
    assert r.types() == []
    await r.clock.advance(11)  # that grant is used; a grant long ago covers nobody
    await r.sup.passage(1)
    assert r.types() == ["access.tailgate"]
    await r.sup.close()


async def test_passage_counter_point_increments_and_beam_edges() -> None:
    r = Rig(door(passages={"point": "gate1.count"}))
    await r.sup.reading("passages", 100)  # the first value is a baseline
    r.sup.grant()
    await r.sup.reading("passages", 101)
    await r.sup.reading("passages", 101)  # heartbeat: unchanged
    assert r.types() == []
    await r.sup.reading("passages", 103)
    assert r.types() == ["access.tailgate"]
    assert r.events[-1].data["passages"] == 3
    with pytest.raises(SupervisionError):
        await r.sup.reading("passages", "many")

    beam = Rig(door(passages={"point": "gate1.beam"}))
    await beam.sup.reading("passages", False)
    beam.sup.grant()
    await beam.sup.reading("passages", True)
    await beam.sup.reading("passages", False)
    await beam.sup.reading("passages", True)
    assert beam.types() == ["access.tailgate"]


async def test_contact_and_exit_points_with_normally_closed_wiring() -> None:
    r = Rig(door())
    # NC contact: False means open
    await r.sup.reading("contact", True, active_value=False)
    await r.sup.reading("exit", False, active_value=True)
    await r.sup.reading("exit", True, active_value=True)  # pressed
    await r.sup.reading("exit", True, active_value=True)  # still pressed: one request
    await r.sup.reading("contact", False, active_value=False)
    await r.clock.advance(2)
    assert r.types() == []
    await r.sup.reading("contact", True, active_value=False)
    await r.sup.reading("contact", False, active_value=False)  # opened again, no excuse left
    await r.clock.advance(1)
    assert r.types() == ["door.forced"]
    await r.sup.close()


async def test_door_inputs_route_events_and_points_to_their_doors() -> None:
    clock = ManualClock()
    out: list[Event] = []

    async def emit(e: Event) -> None:
        out.append(e)

    doors = [
        door(id="bar1", vehicle=True),
        door(id="d2", contact={"device": "ctl9"}, passages={"point": "d2.count"}),
    ]
    sups = {d.id: DoorSupervisor(d, clock, emit) for d in doors}
    inputs = DoorInputs(doors, sups)
    assert set(inputs.points) == {"d2.count"}
    sups["bar1"].grant()
    for occupied in (True, False, True, False):  # two cars left the exit loop on one grant
        await inputs.event(Event("barrier.loop", "bar1", 0, {"loop": "exit", "occupied": occupied}))
    await inputs.event(Event("barrier.loop", "bar1", 0, {"loop": "entry", "occupied": False}))
    assert [(e.type, e.source, e.data["passages"]) for e in out] == [("access.tailgate", "bar1", 2)]
    await inputs.event(Event("door.contact", "ctl9", 0, {"open": False}))
    await inputs.event(Event("door.contact", "d2", 0, {"open": True}))  # not its contact device
    assert sups["d2"].is_open is False
    await inputs.event(Event("gate.passage", "bar1", 0, {"count": "two"}))  # logged, ignored
    await inputs.reading(Reading("d2.count", "garbage", 0))  # logged, ignored
    assert len(out) == 1
    for s in sups.values():
        await s.close()
