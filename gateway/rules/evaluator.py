"""The compiled form of one rule, and the on-delay / off-delay machinery that
limit, state, rate, offline and combo rules share.

An :class:`Evaluator` keeps the committed state of each source (a point, a
device, an event group) and appends :class:`ConditionChange` values to the
``out`` list it is given. While its rule is outside its schedule it keeps
evaluating *silently* (``emitting`` is false), so that at the schedule's
start the conditions present at that moment are announced at once.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from gateway.model import Event, Reading, Value
from gateway.rules.condition import ConditionChange, RuleInfo
from gateway.rules.timers import Timers

__all__ = ["IDLE", "SEEDED", "Debounced", "Evaluator", "Track", "device_of"]

SEEDED = "?"  # active before a restart, level not known yet
IDLE = "\x00idle"  # no target waiting for its delay
_NS = 1_000_000_000


def device_of(source: str) -> str:
    """``'tx1.winding_temp'`` -> ``'tx1'``; a device id stays itself."""
    return source.partition(".")[0]


class Evaluator:
    """One enabled rule, compiled."""

    def __init__(self, info: RuleInfo, timers: Timers) -> None:
        self.rule = info.id
        self.info = info
        self.timers = timers
        self.emitting = True
        self.points: list[str] = []  # concrete points to index readings by
        self.dynamic: list[str] = []  # globs matched against points learned at run time
        self.event_types: list[str] = []  # event types (globs allowed) to index events by
        self.active: set[str] = set()  # sources whose condition is active (committed)

    # -- inputs ---------------------------------------------------------------
    def start(self, ts: int) -> None:
        """The engine starts at ``ts`` (stale rules arm their timers)."""

    def add_point(self, point: str) -> None:
        """A point learned at run time matches one of :attr:`dynamic`."""
        self.points.append(point)

    def on_reading(self, r: Reading, out: list[ConditionChange]) -> None:
        """A reading of one of this rule's points."""

    def on_event(self, e: Event, out: list[ConditionChange]) -> None:
        """An event of one of :attr:`event_types`."""

    def on_rule_change(self, change: ConditionChange, out: list[ConditionChange]) -> None:
        """A change of a rule this one refers to (combo rules)."""

    def timer_valid(self, key: Hashable, ts: int) -> bool:
        return False

    def on_timer(self, key: Hashable, ts: int, out: list[ConditionChange]) -> None:
        """A deadline this evaluator scheduled has come."""

    # -- state ----------------------------------------------------------------
    def covers(self, source: str) -> bool:
        """Whether ``source`` is one this rule can raise an alarm on."""
        return source in self.points or any(fnmatchcase(source, p) for p in self.dynamic)

    def seed(self, source: str) -> None:
        """The condition on ``source`` was active before a restart."""
        self.active.add(source)

    def is_active(self, source: str | None) -> bool:
        """For combo rules: a condition of this rule (on ``source``) is active now."""
        if not self.emitting:
            return False
        return source in self.active if source is not None else bool(self.active)

    def suspend(self, ts: int, out: list[ConditionChange]) -> None:
        """The schedule ends: clear every active condition, evaluate silently from now."""
        self.emitting = False
        for source in sorted(self.active):
            out.append(self.snapshot(source, ts, False, {"reason": "schedule"}))

    def resume(self, ts: int, out: list[ConditionChange]) -> None:
        """The schedule starts: announce the conditions present now."""
        self.emitting = True
        for source in sorted(self.active):
            out.append(self.snapshot(source, ts, True, {"reason": "schedule"}))

    def snapshot(
        self, source: str, ts: int, active: bool, data: Mapping[str, Any]
    ) -> ConditionChange:
        """The condition on ``source`` as a change (for schedule edges and clears)."""
        return ConditionChange(
            self.rule, source, device_of(source), active, ts, self.info.priority, data=data
        )


class Track:
    """The debounced state of one source."""

    __slots__ = ("due", "level", "pending", "value")

    def __init__(self) -> None:
        self.level: str | None = None  # committed: None = normal, else the active level
        self.pending: str | None = IDLE  # a target waiting for its delay
        self.due = 0  # when the pending target commits
        self.value: Value | None = None  # the last value seen


class Debounced(Evaluator):
    """Per-source levels with on-delay (to a more severe level) and off-delay (back)."""

    def __init__(
        self, info: RuleInfo, timers: Timers, on_delay_s: float, off_delay_s: float
    ) -> None:
        super().__init__(info, timers)
        self.on_ns = round(on_delay_s * _NS)
        self.off_ns = round(off_delay_s * _NS)
        self.tracks: dict[str, Track] = {}

    def delay(self, old: str | None, new: str | None) -> int:
        if old == SEEDED:
            return 0  # adopt the level a restart did not know, at once
        return self.off_ns if new is None else self.on_ns

    def drive(
        self,
        source: str,
        tr: Track,
        target: str | None,
        ts: int,
        value: Value | None,
        out: list[ConditionChange],
    ) -> None:
        """The condition on ``source`` should be ``target`` as of ``ts``."""
        if tr.pending != IDLE and tr.due <= ts:  # its delay ran out before this sample
            self.commit(source, tr, tr.pending, tr.due, out)
        tr.value = value
        if target == tr.level:
            tr.pending = IDLE
            return
        if target == tr.pending:
            return
        delay = self.delay(tr.level, target)
        if delay <= 0:
            self.commit(source, tr, target, ts, out)
            return
        tr.pending = target
        tr.due = ts + delay
        self.timers.schedule(tr.due, self, source)

    def commit(
        self, source: str, tr: Track, new: str | None, ts: int, out: list[ConditionChange]
    ) -> None:
        old = tr.level
        tr.level = new
        tr.pending = IDLE
        if new is None:
            self.active.discard(source)
        else:
            self.active.add(source)
        change = self.change(source, tr, old, new, ts)
        if change is not None and self.emitting:
            out.append(change)

    def change(
        self, source: str, tr: Track, old: str | None, new: str | None, ts: int
    ) -> ConditionChange | None:
        """The change for ``old`` -> ``new`` (None: say nothing)."""
        if new is not None:
            if old == SEEDED:  # still active after a restart: nothing new to say
                return None
            return self.describe(source, tr, new, ts, True, {}, level_change=old is not None)
        return self.describe(source, tr, "" if old in (None, SEEDED) else old, ts, False, {})

    def timer_valid(self, key: Hashable, ts: int) -> bool:
        tr = self.tracks.get(key) if isinstance(key, str) else None
        return tr is not None and tr.pending != IDLE and tr.due == ts

    def on_timer(self, key: Hashable, ts: int, out: list[ConditionChange]) -> None:
        if isinstance(key, str):
            tr = self.tracks[key]
            self.commit(key, tr, tr.pending, ts, out)

    def track(self, source: str) -> Track:
        tr = self.tracks.get(source)
        if tr is None:
            tr = self.tracks[source] = Track()
        return tr

    def seed(self, source: str) -> None:
        tr = self.track(source)
        tr.level = SEEDED
        self.active.add(source)

    def suspend(self, ts: int, out: list[ConditionChange]) -> None:
        super().suspend(ts, out)
        for source in list(self.active):
            tr = self.tracks[source]
            if tr.level == SEEDED:  # nothing known to announce when the schedule returns
                tr.level = None
                self.active.discard(source)

    def snapshot(
        self, source: str, ts: int, active: bool, data: Mapping[str, Any]
    ) -> ConditionChange:
        tr = self.tracks.get(source)
        if tr is None:
            return super().snapshot(source, ts, active, data)
        level = "" if tr.level in (None, SEEDED) else tr.level
        return self.describe(source, tr, level or "", ts, active, data)

    def describe(
        self,
        source: str,
        tr: Track,
        level: str,
        ts: int,
        active: bool,
        data: Mapping[str, Any],
        *,
        level_change: bool = False,
    ) -> ConditionChange:
        """The condition at ``level`` ('' when not known) as a change; kinds add
        their level's priority, limit and unit."""
        return ConditionChange(
            self.rule, source, device_of(source), active, ts, self.info.priority,
            value=tr.value, level_change=level_change, data=data,
        )  # fmt: skip
