"""Stale rules: no reading for ``max_age_s``.

A point never seen since the engine started is stale ``max_age_s`` after the
start. One timer per point at a time: a reading only moves ``last``; when the
timer comes up early it re-arms at ``last + max_age``. A reading of bad
quality does not make a point fresh (the device talks, the data is missing).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from gateway.model import Quality, Reading
from gateway.rules.condition import ConditionChange, RuleInfo
from gateway.rules.config import StaleRuleConfig
from gateway.rules.evaluator import Evaluator, device_of
from gateway.rules.timers import Timers

__all__ = ["StaleEvaluator"]

_BAD = Quality.BAD


class StaleEvaluator(Evaluator):
    def __init__(self, cfg: StaleRuleConfig, info: RuleInfo, timers: Timers) -> None:
        super().__init__(info, timers)
        self.max_age_s = cfg.max_age_s
        self.max_age = round(cfg.max_age_s * 1e9)
        self.last: dict[str, int] = {}  # last fresh reading, or the start for a point never seen
        self.seen: set[str] = set()
        self.due: dict[str, int] = {}  # the one timer entry per point

    def start(self, ts: int) -> None:
        for p in self.points:
            self.last[p] = ts
            self._arm(p, ts + self.max_age)

    def _arm(self, point: str, at: int) -> None:
        self.due[point] = at
        self.timers.schedule(at, self, point)

    def on_reading(self, r: Reading, out: list[ConditionChange]) -> None:
        if r.quality is _BAD:
            return
        p = r.point
        last = self.last.get(p)
        if last is None or r.ts > last:
            self.last[p] = r.ts
        self.seen.add(p)
        if p in self.active:
            self.active.discard(p)
            if self.emitting:
                out.append(self.snapshot(p, r.ts, False, {}))
        if p not in self.due:
            self._arm(p, self.last[p] + self.max_age)

    def timer_valid(self, key: Hashable, ts: int) -> bool:
        return isinstance(key, str) and self.due.get(key) == ts

    def on_timer(self, key: Hashable, ts: int, out: list[ConditionChange]) -> None:
        assert isinstance(key, str)
        del self.due[key]
        stale_at = self.last[key] + self.max_age
        if stale_at > ts:  # a reading came since this was armed
            self._arm(key, stale_at)
            return
        if key not in self.active:
            self.active.add(key)
            if self.emitting:
                out.append(self.snapshot(key, stale_at, True, {}))

    def snapshot(
        self, source: str, ts: int, active: bool, data: Mapping[str, Any]
    ) -> ConditionChange:
        seen = source in self.seen
        data = {
            **data,
            "max_age_s": self.max_age_s,
            "last_seen": self.last.get(source) if seen else None,
        }
        return ConditionChange(
            self.rule, source, device_of(source), active, ts, self.info.priority,
            limit=self.max_age_s, unit="s", data=data,
        )  # fmt: skip
