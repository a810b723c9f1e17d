"""Access incidents the demo stages on its own, so the control room sees
the access alarms arrive without anyone forcing a door.

Every ``every_s`` seconds the next scenario of :data:`INCIDENTS` is played on
the real hardware of the demo (:class:`~gateway.demo.access_field.AccessField`):

- ``blacklisted``: the card reported lost is presented at the north gate
  (``access.denied`` with reason ``blacklisted`` and ``access.blacklisted``);
- ``forced``: the power room door contact opens with no grant and no exit
  request (``door.forced``, then ``door.closed``);
- ``tailgate``: one resident's card opens the north gate and the beam counts
  two people (``access.tailgate``);
- ``held_open``: a resident goes through the north gate and leaves it open
  past its limit (``door.held_prealarm``, ``door.held_open``, ``door.closed``).

Runs on the injectable clock; the holder of a tailgate or held-open passage
is taken from the traffic's :class:`~gateway.demo.access_traffic.Whereabouts`
so the traffic keeps knowing who is inside.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.demo.access_field import POWER_DOOR, AccessField
from gateway.demo.access_seed import DemoRoster
from gateway.demo.access_traffic import AccessFieldError, Direction, Trip, Whereabouts

__all__ = ["INCIDENTS", "Incident", "IncidentScheduler", "Stage"]

log = logging.getLogger("gateway.demo.access_incidents")


@dataclass(slots=True)
class Stage:
    """What a scenario plays on."""

    field: AccessField
    roster: DemoRoster
    where: Whereabouts
    clock: Clock
    rng: random.Random
    held_open_s: float  # the north gate's held-open limit
    forced_open_s: float = 10.0  # how long the forced power room door stays open


@dataclass(frozen=True, slots=True)
class Incident:
    name: str  # a key of the demoaccess.incident.* texts
    play: Callable[[Stage], Awaitable[bool]]  # True: the incident happened as staged


async def _blacklisted(s: Stage) -> bool:
    return not await s.field.walk(s.roster.blacklisted, "in")


async def _forced(s: Stage) -> bool:
    async with s.field.lock(POWER_DOOR):
        await s.field.power_door(s.forced_open_s)
    return True


async def _resident_walk(s: Stage, *, people: int = 1, hold_s: float = 2.0) -> bool:
    """A resident who is outside comes in (or, if all are in, one goes out)."""
    direction: Direction = "in"
    holder = s.where.pick(s.roster.residents, direction, s.rng)
    if holder is None:
        direction = "out"
        holder = s.where.pick(s.roster.residents, direction, s.rng)
    if holder is None:
        return False
    s.where.claim(holder)
    passed = False
    try:
        passed = await s.field.walk(holder, direction, people=people, hold_s=hold_s)
    finally:
        s.where.settle(Trip("walk", holder, direction, s.clock.now()), passed)
    return passed


async def _tailgate(s: Stage) -> bool:
    return await _resident_walk(s, people=2)


async def _held_open(s: Stage) -> bool:
    return await _resident_walk(s, hold_s=s.held_open_s + 5.0)


INCIDENTS: tuple[Incident, ...] = (
    Incident("blacklisted", _blacklisted),
    Incident("forced", _forced),
    Incident("tailgate", _tailgate),
    Incident("held_open", _held_open),
)


class IncidentScheduler:
    def __init__(
        self,
        stage: Stage,
        *,
        every_s: float = 180.0,
        first_after_s: float = 20.0,
        on_incident: Callable[[str, bool], None] | None = None,
    ) -> None:
        if every_s <= 0:
            raise ValueError("every_s must be positive")
        self.stage = stage
        self.every_s = every_s
        self.first_after_s = first_after_s
        self.on_incident = on_incident
        self.staged: list[str] = []  # names of the incidents that happened as staged
        self.last: str | None = None

    async def run(self) -> None:
        """Play the next incident every ``every_s`` seconds, forever."""
        clock = self.stage.clock
        await clock.sleep(self.first_after_s)
        i = 0
        while True:
            incident = INCIDENTS[i % len(INCIDENTS)]
            i += 1
            started = clock.monotonic()
            await self.play(incident)
            await clock.sleep(max(self.every_s - (clock.monotonic() - started), 1.0))

    async def play(self, incident: Incident) -> bool:
        """One incident now; False when it could not be staged (logged)."""
        self.last = incident.name
        try:
            ok = await incident.play(self.stage)
        except AccessFieldError as e:
            log.warning("demo incident %s failed: %s", incident.name, e)
            ok = False
        if ok:
            self.staged.append(incident.name)
        log.info("demo incident %s %s", incident.name, "staged" if ok else "not staged")
        if self.on_incident is not None:
            self.on_incident(incident.name, ok)
        return ok
