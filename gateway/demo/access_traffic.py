"""Residents and vehicles going in and out of the demo estate on a daily curve.

:class:`TrafficScheduler` starts passages at a rate that follows
:class:`TrafficCurve` in the site's time zone (morning and evening peaks,
quiet nights), on the injectable clock: the gap to the next passage is
``uniform(0.5, 1.5) / rate``, so an hour holds close to the curve's count
and a test runs a day on a :class:`~gateway.clock.ManualClock`. In the
morning most people leave, in the evening most come home.

The scheduler only decides who goes where (a :class:`Trip`); a ``perform``
callable plays it and says whether the person got through. In the demo that
is ``AccessField.perform`` (:mod:`gateway.demo.access_field`): a card at a
real OSDP reader (a libosdp PD) or a plate read and loop events published by
MQTT, then, once the gateway
pulses the door's relay, the door contact opens, the passage is counted and
the contact closes, as a person sees a turnstile or a barrier work.
:class:`Whereabouts` is what the simulation believes about who is inside,
started from the gateway's stored presence so a second demo run does not
send everyone in twice (which anti-passback would flag).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from gateway.access.config import OUTSIDE
from gateway.clock import Clock
from gateway.demo.access_seed import DemoHolder, DemoRoster

__all__ = [
    "HOURLY",
    "AccessFieldError",
    "Direction",
    "Mode",
    "TrafficCurve",
    "TrafficScheduler",
    "Trip",
    "Whereabouts",
]

log = logging.getLogger("gateway.demo.access_traffic")

Direction = Literal["in", "out"]
Mode = Literal["walk", "drive", "power_room"]

# Relative passages per local hour (0-23): quiet nights, the school and work
# run 07-09, lunch, and the evening return 17-19.
HOURLY: tuple[float, ...] = (
    0.08, 0.05, 0.04, 0.04, 0.05, 0.12, 0.35, 0.85, 1.00, 0.60, 0.40, 0.45,
    0.50, 0.45, 0.40, 0.45, 0.60, 0.90, 1.00, 0.75, 0.55, 0.40, 0.25, 0.14,
)  # fmt: skip


class AccessFieldError(RuntimeError):
    """The simulated hardware could not play a passage (reader, broker or DI module down)."""


class TrafficCurve:
    """Passages per hour at a moment: ``peak_per_hour`` times the weight of the
    local hour, interpolated linearly from one whole hour to the next."""

    def __init__(
        self, timezone: str, peak_per_hour: float, weights: Sequence[float] = HOURLY
    ) -> None:
        if len(weights) != 24 or min(weights) <= 0:
            raise ValueError("weights: 24 positive numbers, one per local hour")
        if peak_per_hour <= 0:
            raise ValueError("peak_per_hour must be positive")
        top = max(weights)
        self.weights = tuple(w / top for w in weights)
        self.peak_per_hour = peak_per_hour
        self.zone = ZoneInfo(timezone)

    def _hour(self, when: datetime) -> float:
        local = when.astimezone(self.zone)
        return local.hour + local.minute / 60 + (local.second + local.microsecond / 1e6) / 3600

    def per_hour(self, when: datetime) -> float:
        h = self._hour(when)
        i = int(h) % 24
        frac = h - int(h)
        w = self.weights
        return self.peak_per_hour * (w[i] + frac * (w[(i + 1) % 24] - w[i]))

    def expected(self, start: datetime, end: datetime, step_s: float = 60.0) -> float:
        """How many passages the curve gives between ``start`` and ``end`` (midpoint sum)."""
        total, t = 0.0, start
        step = timedelta(seconds=step_s)
        while t < end:
            dt = min(step, end - t)
            total += self.per_hour(t + dt / 2) * dt.total_seconds() / 3600
            t += dt
        return total

    def out_share(self, when: datetime) -> float:
        """The chance that a passage is someone leaving: high in the morning, low
        in the evening."""
        h = self._hour(when)
        if 5 <= h < 10:
            return 0.75
        if 16 <= h < 21:
            return 0.25
        return 0.5


@dataclass(frozen=True, slots=True)
class Trip:
    mode: Mode
    holder: DemoHolder
    direction: Direction
    at: datetime


class Whereabouts:
    """Who the simulation believes is inside, and who is on the move right now."""

    def __init__(self, presence: Mapping[str, str] | None = None) -> None:
        self.inside: set[str] = {k for k, area in (presence or {}).items() if area != OUTSIDE}
        self.busy: set[str] = set()

    def pick(
        self, pool: Iterable[DemoHolder], direction: Direction, rng: random.Random
    ) -> DemoHolder | None:
        """Someone free who can go ``direction`` (inside to go out, outside to come in)."""
        leaving = direction == "out"
        free = [h for h in pool if h.id not in self.busy and (h.id in self.inside) == leaving]
        return rng.choice(free) if free else None

    def claim(self, holder: DemoHolder) -> None:
        self.busy.add(holder.id)

    def settle(self, trip: Trip, passed: bool) -> None:
        """The trip is over; a passage that went through moves the holder."""
        self.busy.discard(trip.holder.id)
        if passed and trip.mode != "power_room":
            if trip.direction == "in":
                self.inside.add(trip.holder.id)
            else:
                self.inside.discard(trip.holder.id)


Perform = Callable[[Trip], Awaitable[bool]]


class TrafficScheduler:
    """Starts trips on the curve and hands each to ``perform`` (concurrently)."""

    def __init__(
        self,
        roster: DemoRoster,
        curve: TrafficCurve,
        clock: Clock,
        perform: Perform,
        *,
        whereabouts: Whereabouts | None = None,
        seed: int = 1,
        vehicle_share: float = 0.3,
        power_room_share: float = 0.03,
        power_room_open: Callable[[int], bool] | None = None,
        first_after_s: float = 2.0,
    ) -> None:
        if not 0 <= vehicle_share + power_room_share <= 1:
            raise ValueError("vehicle_share + power_room_share must be within 0-1")
        self.roster = roster
        self.curve = curve
        self.clock = clock
        self.perform = perform
        self.where = whereabouts or Whereabouts()
        self.rng = random.Random(seed)
        self.vehicle_share = vehicle_share
        self.power_room_share = power_room_share
        self.power_room_open = power_room_open or (lambda _ts: True)
        self.first_after_s = first_after_s
        self.started: Counter[Mode] = Counter()
        self.passed: Counter[Mode] = Counter()
        self.trips: list[Trip] = []  # the last few, newest last
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Start trips until cancelled (then the trips under way are cancelled too)."""
        try:
            await self.clock.sleep(self.first_after_s)
            while True:
                trip = self.next_trip()
                if trip is not None:
                    self._spawn(trip)
                rate = self.curve.per_hour(self.clock.now()) / 3600
                await self.clock.sleep(self.rng.uniform(0.5, 1.5) / rate)
        finally:
            await self.close()

    def next_trip(self) -> Trip | None:
        """Who goes where now (None: nobody free for it); claims the holder."""
        now = self.clock.now()
        r = self.rng.random()
        direction: Direction = "out" if self.rng.random() < self.curve.out_share(now) else "in"
        mode: Mode
        if r < self.power_room_share:
            if not self.power_room_open(self.clock.time_ns()):
                return None
            mode, direction = "power_room", "in"
            free = [h for h in self.roster.electricians if h.id not in self.where.busy]
            holder = self.rng.choice(free) if free else None
        else:
            mode = "drive" if r < self.power_room_share + self.vehicle_share else "walk"
            pool = self.roster.vehicles if mode == "drive" else self.roster.walkers
            holder = self.where.pick(pool, direction, self.rng)
            if holder is None:
                direction = "in" if direction == "out" else "out"
                holder = self.where.pick(pool, direction, self.rng)
        if holder is None:
            return None
        self.where.claim(holder)
        trip = Trip(mode, holder, direction, now)
        self.started[mode] += 1
        self.trips = [*self.trips[-49:], trip]
        return trip

    def _spawn(self, trip: Trip) -> None:
        task = asyncio.create_task(self._play(trip), name=f"trip:{trip.holder.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play(self, trip: Trip) -> None:
        passed = False
        try:
            passed = await self.perform(trip)
        except AccessFieldError as e:
            log.warning(
                "demo trip of %s (%s %s) failed: %s", trip.holder.id, trip.mode, trip.direction, e
            )
        finally:
            self.where.settle(trip, passed)
        if passed:
            self.passed[trip.mode] += 1

    async def close(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
