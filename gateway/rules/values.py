"""State rules (a fault code, a breaker position) and rate-of-change rules.

Both ignore readings of bad quality and share the on/off delays of
:class:`~gateway.rules.evaluator.Debounced`.

The rate is the change of the value over the last ``window_s``, per minute:
``(v(now) - v(now - window)) / window``. Values are held between readings (a
driver reports by exception), so the window slides on a timer too: a jump
followed by silence clears once the jump leaves the window.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Hashable, Mapping
from typing import Any

from gateway.model import Quality, Reading, Value
from gateway.rules.condition import ConditionChange, RuleInfo
from gateway.rules.config import RateRuleConfig, StateRuleConfig
from gateway.rules.evaluator import IDLE, Debounced, Track, device_of
from gateway.rules.timers import Timers

__all__ = ["RateEvaluator", "StateEvaluator"]

_ON = "ON"
_RISE = "RISE"
_FALL = "FALL"
_BAD = Quality.BAD
_NS = 1_000_000_000


class StateEvaluator(Debounced):
    def __init__(
        self, cfg: StateRuleConfig, info: RuleInfo, timers: Timers, units: Mapping[str, str]
    ) -> None:
        super().__init__(info, timers, cfg.on_delay_s, cfg.off_delay_s)
        self.units = units
        if cfg.equals is not None:
            self.op, values = "equals", [cfg.equals]
        elif cfg.not_equals is not None:
            self.op, values = "not_equals", [cfg.not_equals]
        elif cfg.in_ is not None:
            self.op, values = "in", list(cfg.in_)
        else:
            self.op, values = "not_in", list(cfg.not_in or ())
        self.values: tuple[Value, ...] = tuple(values)
        self.matches_when_found = self.op in ("equals", "in")
        self.numeric = all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in self.values
        )

    def test(self, value: Value) -> bool:
        if self.numeric and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        return (value in self.values) is self.matches_when_found

    def on_reading(self, r: Reading, out: list[ConditionChange]) -> None:
        if r.quality is _BAD:
            return
        tr = self.tracks.get(r.point)
        if tr is None:
            tr = self.tracks[r.point] = Track()
        target = _ON if self.test(r.value) else None
        if target == tr.level and tr.pending == IDLE:
            tr.value = r.value
            return
        self.drive(r.point, tr, target, r.ts, r.value, out)

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
        single = self.op in ("equals", "not_equals")
        limit = self.values[0] if single and not isinstance(self.values[0], bool) else None
        data = {**data, "op": self.op, "values": list(self.values)}
        return ConditionChange(
            self.rule, source, device_of(source), active, ts, self.info.priority,
            value=tr.value, limit=limit, unit=self.units.get(source, ""), data=data,
        )  # fmt: skip


class RateTrack(Track):
    __slots__ = ("rate", "samples", "slide_at")

    def __init__(self) -> None:
        super().__init__()
        self.samples: deque[tuple[int, float]] = deque()
        self.slide_at: int | None = None
        self.rate = 0.0


class RateEvaluator(Debounced):
    def __init__(
        self, cfg: RateRuleConfig, info: RuleInfo, timers: Timers, units: Mapping[str, str]
    ) -> None:
        super().__init__(info, timers, cfg.on_delay_s, cfg.off_delay_s)
        self.rise = cfg.rise_per_min
        self.fall = cfg.fall_per_min
        self.window_s = cfg.window_s
        self.window_ns = round(cfg.window_s * _NS)
        self.units = units
        self.rates: dict[str, RateTrack] = {}

    def track(self, source: str) -> RateTrack:
        tr = self.rates.get(source)
        if tr is None:
            tr = self.rates[source] = RateTrack()
            self.tracks[source] = tr
        return tr

    def on_reading(self, r: Reading, out: list[ConditionChange]) -> None:
        v = r.value
        if r.quality is _BAD or isinstance(v, str):
            return
        tr = self.track(r.point)
        if tr.samples and r.ts < tr.samples[-1][0]:
            return  # late sample: the window has moved past it
        tr.samples.append((r.ts, float(v)))
        self.evaluate(r.point, tr, r.ts, v, out)

    def evaluate(
        self, source: str, tr: RateTrack, now: int, value: Value | None, out: list[ConditionChange]
    ) -> None:
        s = tr.samples
        cutoff = now - self.window_ns
        while len(s) >= 2 and s[1][0] <= cutoff:
            s.popleft()
        tr.rate = rate = (s[-1][1] - s[0][1]) * 60.0 / self.window_s
        if self.rise is not None and rate >= self.rise:
            target: str | None = _RISE
        elif self.fall is not None and -rate >= self.fall:
            target = _FALL
        else:
            target = None
        self.drive(source, tr, target, now, value, out)
        if len(s) >= 2:
            slide = s[1][0] + self.window_ns
            if tr.slide_at != slide:
                tr.slide_at = slide
                self.timers.schedule(slide, self, ("slide", source))

    def timer_valid(self, key: Hashable, ts: int) -> bool:
        if isinstance(key, tuple):
            tr = self.rates.get(key[1])
            return tr is not None and tr.slide_at == ts
        return super().timer_valid(key, ts)

    def on_timer(self, key: Hashable, ts: int, out: list[ConditionChange]) -> None:
        if isinstance(key, tuple):
            tr = self.rates[key[1]]
            tr.slide_at = None
            self.evaluate(key[1], tr, ts, tr.value, out)
        else:
            super().on_timer(key, ts, out)

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
        rate = self.rates[source].rate if source in self.rates else 0.0
        direction = {_RISE: "rise", _FALL: "fall"}.get(level, "")
        limit = self.rise if level == _RISE else self.fall if level == _FALL else None
        data = {
            **data,
            "direction": direction,
            "rate_per_min": round(rate, 6),
            "window_s": self.window_s,
        }
        return ConditionChange(
            self.rule, source, device_of(source), active, ts, self.info.priority,
            value=tr.value, limit=limit, unit=self.units.get(source, ""),
            level_change=level_change, data=data,
        )  # fmt: skip
