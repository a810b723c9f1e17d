"""Door supervision: forced open, held open, tailgating, from what a door reports.

One :class:`DoorSupervisor` per door watches its contact, its exit button
and its passage counter (driver events or DI points, translated by the
access service) and the grants the service makes, and emits:

- ``door.forced``: the contact opened with no grant within ``relay.seconds
  + 2`` s before it and no exit request (a grant or exit request arriving
  within ``grace_s`` after the opening still excuses it: a controller's
  ``card.decision`` may travel slower than a DI module's contact);
- ``door.held_prealarm`` after ``prealarm_s`` open, ``door.held_open`` after
  ``held_open_s`` open (``seconds`` in data);
- ``door.closed`` when a door that raised one of those closes (it clears
  their alarms; an ordinary passage does not log a close);
- ``access.tailgate``: more passages counted within ``tailgate_window_s``
  of a grant than there were grants (``passages``, ``grants`` in data).

Every timer runs on the injectable :class:`~gateway.clock.Clock`, so a test
holds a door open for a minute with ``ManualClock.advance(60)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from gateway.access.config import DoorConfig, InputConfig
from gateway.clock import Clock
from gateway.model import Event, Reading, Value

__all__ = [
    "DOOR_CLOSED",
    "DOOR_FORCED",
    "DOOR_HELD_OPEN",
    "DOOR_HELD_PREALARM",
    "INPUT_EVENTS",
    "TAILGATE",
    "DoorInputs",
    "DoorSupervisor",
    "InputRole",
    "SupervisionError",
]

log = logging.getLogger("gateway.access.supervision")

DOOR_FORCED = "door.forced"
DOOR_HELD_PREALARM = "door.held_prealarm"
DOOR_HELD_OPEN = "door.held_open"
DOOR_CLOSED = "door.closed"
TAILGATE = "access.tailgate"
INPUT_EVENTS = frozenset({"door.contact", "door.exit_request", "gate.passage", "barrier.loop"})

_DEFAULT_RELEASE_S = 3.0  # a door without a relay (monitor mode): the usual strike time
_EXCUSE_MARGIN_S = 2.0

InputRole = Literal["contact", "exit", "passages"]
Emit = Callable[[Event], Awaitable[None]]


class SupervisionError(ValueError):
    """A reading the supervisor cannot use (a counter point that is not a number)."""


class DoorSupervisor:
    """The supervision state of one door; :meth:`close` cancels its timers."""

    def __init__(self, door: DoorConfig, clock: Clock, emit: Emit, *, grace_s: float = 1.0) -> None:
        self.door = door
        self.clock = clock
        self._emit = emit
        self.grace_s = grace_s
        release = door.relay.seconds if door.relay is not None else _DEFAULT_RELEASE_S
        self.excuse_s = release + _EXCUSE_MARGIN_S
        self._excuses: deque[float] = deque()  # monotonic times of grants / exit requests
        self.is_open: bool | None = None  # None: not reported yet
        self._opened_at = 0.0
        self._alarmed = False  # forced or held raised during this opening
        self._pending_forced = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: asyncio.Task[None] | None = None
        self._forced_check: asyncio.Task[None] | None = None
        self._last_point: dict[InputRole, Value] = {}
        # tailgating: each grant authorises one passage within tailgate_window_s
        # of it; a passage with no such grant left is a tailgate.
        self._unused: deque[float] = deque()  # grants not yet passed through
        self._grants: deque[float] = deque()  # every grant of the window (for the report)
        self._passages: deque[float] = deque()
        self.forced = 0
        self.tailgates = 0

    # -- what the service reports ------------------------------------------------
    def grant(self) -> None:
        """A grant (or a controller's granted decision): excuses the next opening
        and authorises one passage."""
        self._excuse()
        self._authorise()

    def exit_request(self) -> None:
        """The exit button: the opening after it is not forced; one passage out."""
        self._excuse()
        self._authorise()

    async def contact(self, is_open: bool) -> None:
        """The door contact changed (repeats of the same state are ignored)."""
        was, self.is_open = self.is_open, is_open
        if was is is_open:
            return
        now = self.clock.monotonic()
        if is_open:
            self._opened_at = now
            self._alarmed = False
            self._start_held()
            if was is None:
                return  # open when first reported: nothing says how it opened
            if self._take_excuse(now):
                return
            if self.grace_s <= 0:
                await self._raise_forced()
            else:
                self._pending_forced = True
                self._forced_check = self._spawn(self._check_forced())
        else:
            self._cancel(self._held)
            self._held = None
            if self._pending_forced:  # closed again within the grace: still forced
                self._cancel(self._forced_check)
                self._forced_check = None
                self._pending_forced = False
                await self._raise_forced()
            if self._alarmed:
                self._alarmed = False
                await self._send(DOOR_CLOSED, {"seconds": round(now - self._opened_at, 1)})

    async def passage(self, count: int = 1) -> None:
        """``count`` people or vehicles went through (a beam, a turnstile)."""
        if count <= 0:
            return
        now = self.clock.monotonic()
        self._expire(now)
        unauthorised = 0
        for _ in range(count):
            self._passages.append(now)
            if self._unused:
                self._unused.popleft()
            else:
                unauthorised += 1
        if unauthorised:
            self.tailgates += 1
            await self._send(
                TAILGATE,
                {
                    "passages": len(self._passages),
                    "grants": len(self._grants),
                    "unauthorised": unauthorised,
                },
            )

    async def reading(self, role: InputRole, value: Value, active_value: bool = True) -> None:
        """A point of this door changed: a contact or exit button (``value ==
        active_value`` means open / pressed) or a passage counter (an
        increasing number, or a beam that is ``active_value`` while broken).
        Unchanged values (heartbeats) do nothing."""
        last = self._last_point.get(role)
        self._last_point[role] = value
        if role == "contact":
            await self.contact(bool(value) == active_value)
        elif role == "exit":
            if bool(value) == active_value and (last is None or bool(last) != active_value):
                self.exit_request()
        elif isinstance(value, bool):
            if value == active_value and last is not None and bool(last) != active_value:
                await self.passage(1)
        elif isinstance(value, int | float):
            if isinstance(last, int | float) and not isinstance(last, bool) and value > last:
                await self.passage(int(value - last))
        else:
            raise SupervisionError(f"door {self.door.id}: passage counter value {value!r}")

    async def close(self) -> None:
        """Cancel the timers (the gateway stops)."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- internals ------------------------------------------------------------------
    def _excuse(self) -> None:
        now = self.clock.monotonic()
        self._excuses.append(now)
        if self._pending_forced:  # the grant came just after the opening
            self._pending_forced = False
            self._cancel(self._forced_check)
            self._forced_check = None
            self._excuses.pop()

    def _take_excuse(self, now: float) -> bool:
        while self._excuses and now - self._excuses[0] > self.excuse_s:
            self._excuses.popleft()
        if self._excuses:
            self._excuses.popleft()
            return True
        return False

    def _authorise(self) -> None:
        now = self.clock.monotonic()
        self._expire(now)
        self._unused.append(now)
        self._grants.append(now)

    def _expire(self, now: float) -> None:
        """Forget grants and passages older than the tailgate window."""
        oldest = now - self.door.tailgate_window_s
        for q in (self._unused, self._grants, self._passages):
            while q and q[0] < oldest:
                q.popleft()

    async def _check_forced(self) -> None:
        await self.clock.sleep(self.grace_s)
        if self._pending_forced:
            self._pending_forced = False
            self._forced_check = None
            await self._raise_forced()

    async def _raise_forced(self) -> None:
        self._alarmed = True
        self.forced += 1
        await self._send(DOOR_FORCED, {})

    def _start_held(self) -> None:
        self._cancel(self._held)
        self._held = self._spawn(self._held_timer())

    async def _held_timer(self) -> None:
        door = self.door
        waited = 0.0
        if door.prealarm_s is not None:
            await self.clock.sleep(door.prealarm_s)
            waited = door.prealarm_s
            self._alarmed = True
            await self._send(DOOR_HELD_PREALARM, {"seconds": door.prealarm_s})
        await self.clock.sleep(door.held_open_s - waited)
        self._alarmed = True
        await self._send(DOOR_HELD_OPEN, {"seconds": door.held_open_s})

    async def _send(self, etype: str, data: dict[str, Any]) -> None:
        event = Event(etype, self.door.id, self.clock.time_ns(), {"door": self.door.id, **data})
        # Shielded: a timer cancelled while the bus applies back-pressure must
        # not leave the event delivered to some subscribers only.
        await asyncio.shield(self._emit(event))

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=f"door:{self.door.id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("door %s: supervision timer failed: %r", self.door.id, task.exception())

    @staticmethod
    def _cancel(task: asyncio.Task[None] | None) -> None:
        if task is not None and not task.done():
            task.cancel()


class DoorInputs:
    """Routes what doors report to their supervisors: ``door.contact``,
    ``door.exit_request`` and ``gate.passage`` events of each input's device
    (default: the door id), readings of input points (a DI module channel),
    and at a vehicle barrier the ``barrier.loop`` events (a vehicle leaving
    the ``exit`` loop has passed)."""

    def __init__(
        self, doors: Sequence[DoorConfig], supervisors: Mapping[str, DoorSupervisor]
    ) -> None:
        self._sups = supervisors
        self._events: dict[tuple[str, str], list[str]] = {}  # (type, source) -> doors
        self.points: dict[str, list[tuple[str, InputRole, bool]]] = {}
        self._loops: dict[tuple[str, str], bool] = {}
        for door in doors:
            self._on("door.contact", door.contact, door, "contact")
            self._on("door.exit_request", door.exit_button, door, "exit")
            self._on("gate.passage", door.passages, door, "passages")
            if door.vehicle:
                self._events.setdefault(("barrier.loop", door.id), []).append(door.id)

    def _on(self, etype: str, inp: InputConfig | None, door: DoorConfig, role: InputRole) -> None:
        if inp is not None and inp.point is not None:
            self.points.setdefault(inp.point, []).append((door.id, role, inp.active_value))
        else:
            source = inp.device if inp is not None and inp.device else door.id
            self._events.setdefault((etype, source), []).append(door.id)

    async def reading(self, r: Reading) -> None:
        for door, role, active in self.points.get(r.point, ()):
            try:
                await self._sups[door].reading(role, r.value, active)
            except SupervisionError as e:
                log.warning("%s: %s", r.point, e)

    async def event(self, e: Event) -> None:
        for door in self._events.get((e.type, e.source), ()):
            sup = self._sups[door]
            if e.type == "door.contact":
                await sup.contact(e.data.get("open") is True)
            elif e.type == "door.exit_request":
                sup.exit_request()
            elif e.type == "gate.passage":
                count = e.data.get("count", 1)
                if isinstance(count, int) and not isinstance(count, bool):
                    await sup.passage(count)
                else:
                    log.warning("gate.passage from %s: count %r is not a number", e.source, count)
            else:
                key = (door, str(e.data.get("loop", "")))
                occupied = e.data.get("occupied") is True
                was, self._loops[key] = self._loops.get(key), occupied
                if key[1] == "exit" and was and not occupied:
                    await sup.passage(1)
