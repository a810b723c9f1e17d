"""The rule engine: readings, events and time in, condition changes out.

Pure and synchronous (no asyncio, no clock of its own: every input carries
its timestamp and :meth:`RuleEngine.tick` is told the time). Rules are
compiled once; readings are dispatched through a dict keyed by point, events
through a dict keyed by event type, so a reading of a point no rule watches
costs one dict miss. Timers of every rule (delays, stale data, windows,
schedule edges) share one heap; :meth:`RuleEngine.next_deadline` says when
:meth:`RuleEngine.tick` must run next.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.model import Event, Quality, Reading
from gateway.rules.combo import ComboEvaluator
from gateway.rules.condition import ConditionChange, RuleInfo
from gateway.rules.config import RuleConfig
from gateway.rules.defaults import rule_info
from gateway.rules.errors import DuplicateRuleError
from gateway.rules.evaluator import Evaluator, device_of
from gateway.rules.events import OfflineEvaluator
from gateway.rules.points import PointIndex, is_glob
from gateway.rules.schedule import CalendarConfig, Schedule
from gateway.rules.timers import Timers
from gateway.rules.wiring import build_evaluator, check_combo_graph, static_devices

__all__ = ["RuleEngine"]

_CACHE_LIMIT = 100_000  # run-time point names / event types remembered (a misbehaving
# publisher cannot grow the engine without bound; past it, lookups are just slower)


class _ScheduleGate:
    """Suspends and resumes one rule's evaluator at its schedule's edges."""

    def __init__(self, ev: Evaluator, schedule: Schedule, timers: Timers, start: int) -> None:
        self.ev = ev
        self.schedule = schedule
        self.timers = timers
        self.at: int | None = None
        ev.emitting = schedule.active_at(start)
        self._arm(start)

    def _arm(self, now: int) -> None:
        self.at = self.schedule.next_change(now)
        if self.at is not None:
            self.timers.schedule(self.at, self, None)

    def timer_valid(self, key: Hashable, ts: int) -> bool:
        return ts == self.at

    def on_timer(self, key: Hashable, ts: int, out: list[ConditionChange]) -> None:
        if self.schedule.active_at(ts):
            if not self.ev.emitting:
                self.ev.resume(ts, out)
        elif self.ev.emitting:
            self.ev.suspend(ts, out)
        self._arm(ts)


class RuleEngine:
    """Evaluates the site's rules; see the module docstring."""

    def __init__(
        self,
        rules: Sequence[RuleConfig],
        *,
        known_points: Iterable[str],
        device_kinds: Mapping[str, str],
        timezone: str,
        calendar: CalendarConfig,
        start_ns: int,
        units: Mapping[str, str] | None = None,
    ) -> None:
        """Compile ``rules``; raises :class:`~gateway.rules.errors.RuleError` (naming the
        rule, the field and the pattern) for a rule that cannot be evaluated."""
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r}; use an IANA name") from None
        self._start = start_ns
        self._timers = Timers()
        self._infos: dict[str, RuleInfo] = {}
        self._evals: dict[str, Evaluator] = {}
        self._by_point: dict[str, tuple[Evaluator, ...]] = {}
        self._dynamic: list[tuple[str, Evaluator]] = []
        self._by_event: dict[str, tuple[Evaluator, ...]] = {}
        self._event_globs: list[tuple[str, Evaluator]] = []
        self._dependents: dict[str, tuple[ComboEvaluator, ...]] = {}
        self._watch: dict[str, list[OfflineEvaluator]] = {}  # seeded offline devices
        self._pending: list[tuple[str, str, str]] = []  # (rule, source, reason) to clear
        index = PointIndex(known_points)
        by_point: dict[str, list[Evaluator]] = {}
        by_event: dict[str, list[Evaluator]] = {}
        for cfg in rules:
            if cfg.id in self._infos:
                raise DuplicateRuleError(cfg.id, "another rule has this id; ids must be unique")
            if not cfg.enabled:
                self._infos[cfg.id] = rule_info(cfg, device_kinds, static_devices(cfg))
                continue
            ev = build_evaluator(cfg, index, device_kinds, units or {}, self._timers)
            self._infos[cfg.id] = ev.info
            self._evals[cfg.id] = ev
            for p in ev.points:
                by_point.setdefault(p, []).append(ev)
            self._dynamic.extend((pattern, ev) for pattern in ev.dynamic)
            for t in ev.event_types:
                if is_glob(t):
                    self._event_globs.append((t, ev))
                else:
                    by_event.setdefault(t, [])
                    if ev not in by_event[t]:
                        by_event[t].append(ev)
            if cfg.schedule is not None:
                schedule = Schedule(cfg.schedule, timezone, calendar)
                _ScheduleGate(ev, schedule, self._timers, start_ns)
        self._by_point = {p: tuple(evs) for p, evs in by_point.items()}
        self._by_event = {t: tuple(evs) for t, evs in by_event.items()}
        self._bind_combos()
        for ev in self._evals.values():
            ev.start(start_ns)

    def _bind_combos(self) -> None:
        combos = [ev for ev in self._evals.values() if isinstance(ev, ComboEvaluator)]
        check_combo_graph(combos, self._infos)
        known: dict[str, Evaluator | None] = {rid: self._evals.get(rid) for rid in self._infos}
        dependents: dict[str, list[ComboEvaluator]] = {}
        for combo in combos:
            combo.bind(known)
            for rid in combo.refs:
                dependents.setdefault(rid, []).append(combo)
        self._dependents = {rid: tuple(cs) for rid, cs in dependents.items()}

    # -- public API -----------------------------------------------------------
    @property
    def infos(self) -> Mapping[str, RuleInfo]:
        """Rule id -> :class:`RuleInfo`, for every rule (disabled ones too)."""
        return MappingProxyType(self._infos)

    def on_reading(self, r: Reading) -> list[ConditionChange]:
        evs = self._by_point.get(r.point)
        if evs is None and self._dynamic:
            evs = self._learn(r.point)
        if not evs and not self._watch:
            return []
        out: list[ConditionChange] = []
        if evs:
            for ev in evs:
                ev.on_reading(r, out)
        if self._watch and r.quality is not Quality.BAD:
            watchers = self._watch.pop(device_of(r.point), None)
            for offline in watchers or ():
                offline.on_device_reading(device_of(r.point), r.ts, out)
        if out and self._dependents:
            self._propagate(out)
        return out

    def on_event(self, e: Event) -> list[ConditionChange]:
        evs = self._by_event.get(e.type)
        if evs is None:
            evs = self._learn_event(e.type)
        if not evs:
            return []
        out: list[ConditionChange] = []
        for ev in evs:
            ev.on_event(e, out)
        if out and self._dependents:
            self._propagate(out)
        return out

    def tick(self, now_ns: int) -> list[ConditionChange]:
        """Run every deadline at or before ``now_ns`` (delays, stale data, windows,
        schedule edges); also clears what :meth:`seed` found no longer evaluated."""
        out: list[ConditionChange] = []
        if self._pending:
            for rule, source, reason in self._pending:
                out.append(self._clear(rule, source, now_ns, reason))
            self._pending.clear()
        self._timers.run_due(now_ns, out)
        if out and self._dependents:
            self._propagate(out)
        return out

    def next_deadline(self) -> int | None:
        """When :meth:`tick` must run next (UTC ns; None: nothing is pending)."""
        if self._pending:
            return self._start
        return self._timers.next_deadline()

    def seed(self, active: Iterable[tuple[str, str]]) -> None:
        """Conditions that were active before a restart (from the alarm store): they
        clear when evaluation says so, instead of being announced again. A rule that
        is gone is ignored (the alarm manager keeps its alarm); a rule that is
        disabled, outside its schedule, or no longer watches the source clears it
        on the next :meth:`tick`."""
        for rule, source in active:
            ev = self._evals.get(rule)
            if ev is None:
                if rule in self._infos:
                    self._pending.append((rule, source, "disabled"))
                continue
            if not ev.emitting:
                self._pending.append((rule, source, "schedule"))
            elif not ev.covers(source):
                self._pending.append((rule, source, "not_watched"))
            else:
                if ev.dynamic and source not in self._by_point:
                    self._learn(source)
                ev.seed(source)
                if isinstance(ev, OfflineEvaluator):
                    self._watch.setdefault(source, []).append(ev)

    # -- internals ------------------------------------------------------------
    def _propagate(self, out: list[ConditionChange]) -> None:
        """Feed each change to the combo rules that refer to its rule (their own
        changes are appended and fed on in turn; the rule graph has no loops)."""
        i = 0
        while i < len(out):
            deps = self._dependents.get(out[i].rule)
            if deps:
                for combo in deps:
                    combo.on_rule_change(out[i], out)
            i += 1

    def _learn(self, point: str) -> tuple[Evaluator, ...]:
        """A point first seen at run time: which dynamic patterns match it (remembered)."""
        evs: list[Evaluator] = []
        for pattern, ev in self._dynamic:
            if ev not in evs and fnmatchcase(point, pattern):
                ev.add_point(point)
                evs.append(ev)
        found = tuple(evs)
        if len(self._by_point) < _CACHE_LIMIT or found:
            self._by_point[point] = found
        return found

    def _learn_event(self, etype: str) -> tuple[Evaluator, ...]:
        found = tuple(dict.fromkeys(ev for p, ev in self._event_globs if fnmatchcase(etype, p)))
        if len(self._by_event) < _CACHE_LIMIT or found:
            self._by_event[etype] = found
        return found

    def _clear(self, rule: str, source: str, ts: int, reason: str) -> ConditionChange:
        info = self._infos[rule]
        return ConditionChange(
            rule, source, device_of(source), False, ts, info.priority, data={"reason": reason}
        )
