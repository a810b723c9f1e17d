"""Event rules (counters in a window, per group) and offline rules.

An event rule counts matching events per group (the event source, a data
key, or the whole site) within ``window_s``; at ``count`` the group's
condition becomes active, its source being the group value. It clears on a
``clear_on`` event of the same group (which also resets the count), or after
``clear_after_s`` without a new matching event. Events are not states: out of
its schedule an event rule ignores events, and it starts afresh when the
schedule begins.

An offline rule follows ``device.offline`` / ``device.online`` (source = the
device), optionally only when the device stays offline ``delay_s``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from gateway.model import Event, Value
from gateway.rules.condition import ConditionChange, RuleInfo
from gateway.rules.config import EventRuleConfig, OfflineRuleConfig
from gateway.rules.evaluator import SEEDED, Debounced, Evaluator, Track
from gateway.rules.timers import Timers

__all__ = ["EventEvaluator", "OfflineEvaluator"]

_NS = 1_000_000_000
_MISSING = object()
OFFLINE = "device.offline"
ONLINE = "device.online"


class _Group:
    __slots__ = ("last", "timer_at", "times")

    def __init__(self) -> None:
        self.times: deque[int] = deque()
        self.last = 0
        self.timer_at: int | None = None


class EventEvaluator(Evaluator):
    def __init__(self, cfg: EventRuleConfig, info: RuleInfo, timers: Timers) -> None:
        super().__init__(info, timers)
        self.count_types = cfg.event_types()
        self.clear_types = cfg.clear_types()
        self.event_types = [*self.count_types, *self.clear_types]
        where = dict(cfg.where)
        source = where.pop("source", None)
        self.source_glob = None if source is None else str(source)
        self.where: list[tuple[str, Value]] = list(where.items())
        self.count = cfg.count
        self.window_s = cfg.window_s
        self.window = round(cfg.window_s * _NS)
        self.clear_after = round((cfg.clear_after_s or cfg.window_s) * _NS)
        self.group_by = cfg.group_by
        self.group_key = cfg.group_by[5:] if cfg.group_by.startswith("data.") else ""
        self.groups: dict[str, _Group] = {}
        self._roles: dict[str, tuple[bool, bool]] = {}
        self.start_ns = 0

    def start(self, ts: int) -> None:
        self.start_ns = ts

    def covers(self, source: str) -> bool:
        return True  # any group value may be a source

    def _role(self, etype: str) -> tuple[bool, bool]:
        role = self._roles.get(etype)
        if role is None:
            role = self._roles[etype] = (
                any(fnmatchcase(etype, p) for p in self.count_types),
                any(fnmatchcase(etype, p) for p in self.clear_types),
            )
        return role

    def _matches(self, e: Event) -> bool:
        if self.source_glob is not None and not fnmatchcase(e.source, self.source_glob):
            return False
        return all(e.data.get(k, _MISSING) == v for k, v in self.where)

    def _group(self, e: Event) -> str | None:
        if self.group_key:
            v = e.data.get(self.group_key)
            return None if v is None else str(v)
        return e.source if self.group_by == "source" else "site"

    def on_event(self, e: Event, out: list[ConditionChange]) -> None:
        if not self.emitting:
            return
        counts, clears = self._role(e.type)
        if counts and self._matches(e):
            self._count(e, out)
        elif clears:
            key = self._group(e)
            if key is not None:
                self.groups.pop(key, None)
                if key in self.active:
                    self.active.discard(key)
                    out.append(self.snapshot(key, e.ts, False, {"cleared_by": e.type}))

    def _count(self, e: Event, out: list[ConditionChange]) -> None:
        key = self._group(e)
        if key is None:
            return
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = _Group()
        times = g.times
        times.append(e.ts)
        cutoff = e.ts - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        if e.ts > g.last:
            g.last = e.ts
        if key not in self.active and len(times) >= self.count:
            self.active.add(key)
            data = {
                "count": len(times),
                "window_s": self.window_s,
                "event": e.type,
                "event_source": e.source,
            }
            out.append(self.snapshot(key, e.ts, True, data))
            self._arm(key, g, exact=True)
        else:
            self._arm(key, g)

    def _arm(self, key: str, g: _Group, *, exact: bool = False) -> None:
        """Arm the group's one timer; a later deadline leaves an earlier entry standing
        (it re-arms when it comes up) unless ``exact``, so a burst costs no heap growth."""
        if key in self.active:
            want = g.last + self.clear_after
        elif g.times:
            want = g.times[0] + self.window
        else:
            return
        if g.timer_at is None or want < g.timer_at or (exact and want != g.timer_at):
            g.timer_at = want
            self.timers.schedule(want, self, key)

    def timer_valid(self, key: Hashable, ts: int) -> bool:
        g = self.groups.get(key) if isinstance(key, str) else None
        return g is not None and g.timer_at == ts

    def on_timer(self, key: Hashable, ts: int, out: list[ConditionChange]) -> None:
        assert isinstance(key, str)
        g = self.groups[key]
        g.timer_at = None
        if key in self.active:
            clear_at = g.last + self.clear_after
            if clear_at <= ts:
                self.active.discard(key)
                del self.groups[key]
                if self.emitting:
                    out.append(self.snapshot(key, clear_at, False, {"reason": "quiet"}))
                return
        else:
            cutoff = ts - self.window
            while g.times and g.times[0] <= cutoff:
                g.times.popleft()
            if not g.times:
                del self.groups[key]
                return
        self._arm(key, g)

    def seed(self, source: str) -> None:
        super().seed(source)
        g = self.groups[source] = _Group()
        g.last = self.start_ns
        self._arm(source, g)

    def suspend(self, ts: int, out: list[ConditionChange]) -> None:
        super().suspend(ts, out)
        self.active.clear()
        self.groups.clear()

    def resume(self, ts: int, out: list[ConditionChange]) -> None:
        self.emitting = True  # events are not states: start counting afresh

    def snapshot(
        self, source: str, ts: int, active: bool, data: Mapping[str, Any]
    ) -> ConditionChange:
        device = source if self.group_by == "source" else ""
        count = data.get("count")
        return ConditionChange(
            self.rule, source, device, active, ts, self.info.priority,
            value=count, limit=self.count if count is not None else None, data=data,
        )  # fmt: skip


class OfflineEvaluator(Debounced):
    def __init__(self, cfg: OfflineRuleConfig, info: RuleInfo, timers: Timers) -> None:
        super().__init__(info, timers, cfg.delay_s, 0.0)
        self.event_types = [OFFLINE, ONLINE]
        self.patterns = list(cfg.devices)
        self._watched: dict[str, bool] = {}

    def covers(self, source: str) -> bool:
        hit = self._watched.get(source)
        if hit is None:
            hit = self._watched[source] = any(fnmatchcase(source, p) for p in self.patterns)
        return hit

    def on_event(self, e: Event, out: list[ConditionChange]) -> None:
        if not self.covers(e.source):
            return
        tr = self.track(e.source)
        if e.type == OFFLINE:
            self.drive(e.source, tr, "ON", e.ts, str(e.data.get("reason", "")), out)
        elif e.type == ONLINE:
            self.drive(e.source, tr, None, e.ts, tr.value, out)

    def on_device_reading(self, device: str, ts: int, out: list[ConditionChange]) -> None:
        """A good reading of ``device`` arrived: it clears a condition seeded before a
        restart (a driver does not announce ``device.online`` for a device it never
        saw down, so after a restart the reading is the only sign)."""
        tr = self.tracks.get(device)
        if tr is not None and tr.level == SEEDED:
            self.drive(device, tr, None, ts, tr.value, out)

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
        reason = tr.value if isinstance(tr.value, str) else ""
        return ConditionChange(
            self.rule, source, source, active, ts, self.info.priority,
            data={**data, "reason": reason} if reason else data,
        )  # fmt: skip
