"""Limit rules: HH/H/L/LL with deadband, on-delay and off-delay.

One condition per point; the level is a sub-condition (OPC A&E style). Going
to a more severe level waits the on-delay, going back (to a milder level or
to normal) waits the off-delay. With a deadband, a high level holds while the
value stays above ``limit - deadband`` (a low level below ``limit +
deadband``), so a value hovering at the limit does not chatter. A reading of
bad quality is ignored; an uncertain one is evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.model import Priority, Quality, Reading
from gateway.rules.condition import ConditionChange, RuleInfo
from gateway.rules.config import LimitRuleConfig
from gateway.rules.evaluator import IDLE, SEEDED, Debounced, Track, device_of
from gateway.rules.timers import Timers

__all__ = ["LimitEvaluator"]

_SEVERITY = {None: 0, "H": 1, "L": 1, "HH": 2, "LL": 2, SEEDED: 3}
_HIGH = frozenset({"H", "HH"})
_HH_HOLD = frozenset({"HH", SEEDED})
_H_HOLD = frozenset({"H", "HH", SEEDED})
_LL_HOLD = frozenset({"LL", SEEDED})
_L_HOLD = frozenset({"L", "LL", SEEDED})
_BAD = Quality.BAD


class LimitEvaluator(Debounced):
    def __init__(
        self, cfg: LimitRuleConfig, info: RuleInfo, timers: Timers, units: Mapping[str, str]
    ) -> None:
        super().__init__(info, timers, cfg.on_delay_s, cfg.off_delay_s)
        levels = cfg.levels()
        self.limits: dict[str, float] = {name: v for name, (v, _) in levels.items()}
        self.priorities: dict[str, Priority] = {name: p for name, (_, p) in levels.items()}
        self.hh = self.limits.get("HH")
        self.h = self.limits.get("H")
        self.l = self.limits.get("L")
        self.ll = self.limits.get("LL")
        self.deadband = cfg.deadband
        self.units = units

    def level_for(self, v: float, cur: str | None) -> str | None:
        """The level ``v`` is at, given the committed level ``cur`` (for the deadband)."""
        db = self.deadband
        hh, h, l, ll = self.hh, self.h, self.l, self.ll  # noqa: E741
        if hh is not None and (v >= hh or (cur in _HH_HOLD and v > hh - db)):
            return "HH"
        if h is not None and (v >= h or (cur in _H_HOLD and v > h - db)):
            return "H"
        if ll is not None and (v <= ll or (cur in _LL_HOLD and v < ll + db)):
            return "LL"
        if l is not None and (v <= l or (cur in _L_HOLD and v < l + db)):
            return "L"
        return None

    def on_reading(self, r: Reading, out: list[ConditionChange]) -> None:
        v = r.value
        if r.quality is _BAD or isinstance(v, str):
            return
        tr = self.tracks.get(r.point)
        if tr is None:
            tr = self.tracks[r.point] = Track()
        target = self.level_for(v, tr.level)
        if target == tr.level and tr.pending == IDLE:
            tr.value = v  # the common case: nothing changes
            return
        self.drive(r.point, tr, target, r.ts, v, out)

    def delay(self, old: str | None, new: str | None) -> int:
        if old == SEEDED:
            return 0
        if new is None:
            return self.off_ns
        if old is None or (new in _HIGH) != (old in _HIGH):
            return self.on_ns
        return self.on_ns if _SEVERITY[new] > _SEVERITY[old] else self.off_ns

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
        if self.deadband:
            data = {**data, "deadband": self.deadband}
        return ConditionChange(
            self.rule, source, device_of(source), active, ts,
            self.priorities.get(level, self.info.priority), level=level, value=tr.value,
            limit=self.limits.get(level), unit=self.units.get(source, ""),
            level_change=level_change, data=data,
        )  # fmt: skip
