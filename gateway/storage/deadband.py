"""Report by exception: keep a reading only when it says something new.

Per point, a reading is written when

* it is the first one seen for the point, or
* its quality differs from the last written reading's, or
* ``heartbeat`` seconds (of reading time, not wall-clock time) have passed
  since the last written reading, or
* its value changed: for numbers (``int``/``float``, not ``bool``) by *more*
  than the point's ``deadband`` from the last **written** value (as an OPC UA
  absolute deadband: with a deadband of 0 every change is written and only
  exact repeats are dropped); for anything else, when it is not equal (a
  change of type counts as a change; NaN after NaN is no change).

Comparing with the last written value, not the last seen one, means a slow
drift is still recorded once it adds up to more than the deadband.

Settings come from the drivers' :class:`~gateway.driver.PointSpec` s: a
spec's ``deadband`` when it is above 0 (else the site default), its
``heartbeat`` when set (else the site default). A spec whose device or name
holds ``*`` matches any text there (exact specs win, then wildcard specs in
the order given); the resolution is cached per point.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.driver import PointSpec
from gateway.model import Quality, Reading, Value

__all__ = ["Deadband", "PointSettings"]


@dataclass(frozen=True, slots=True)
class PointSettings:
    deadband: float
    heartbeat_ns: int | None  # None: write only on change


def _is_number(v: Value) -> bool:
    t = type(v)
    return t is float or t is int or (isinstance(v, int | float) and not isinstance(v, bool))


def _changed(new: Value, old: Value, deadband: float) -> bool:
    if _is_number(new) and _is_number(old):
        if new != new or old != old:  # NaN on either side
            return not (new != new and old != old)
        return bool(abs(new - old) > deadband)  # type: ignore[operator]
    return type(new) is not type(old) or new != old


class Deadband:
    """A per-point filter; :meth:`accept` says whether to write a reading."""

    def __init__(
        self,
        points: Iterable[PointSpec] = (),
        *,
        default_deadband: float = 0.0,
        default_heartbeat_s: float | None = None,
    ) -> None:
        if default_deadband < 0:
            raise ValueError("default_deadband must not be negative")
        if default_heartbeat_s is not None and default_heartbeat_s <= 0:
            raise ValueError("default_heartbeat_s must be positive (or None)")
        self._default = self._settings(None, default_deadband, default_heartbeat_s)
        self._exact: dict[str, PointSettings] = {}
        self._patterns: list[tuple[re.Pattern[str], PointSettings]] = []
        for spec in points:
            if spec.deadband < 0:
                raise ValueError(f"point {spec.point}: deadband must not be negative")
            s = self._settings(spec, default_deadband, default_heartbeat_s)
            if "*" in spec.point:
                rx = ".*".join(re.escape(part) for part in spec.point.split("*"))
                self._patterns.append((re.compile(rx, re.DOTALL), s))
            else:
                self._exact.setdefault(spec.point, s)
        self._resolved: dict[str, PointSettings] = {}
        # Last written reading per point: (value, ts, quality, settings).
        self._last: dict[str, tuple[Value, int, Quality, PointSettings]] = {}
        self.filtered = 0

    @staticmethod
    def _settings(
        spec: PointSpec | None, default_deadband: float, default_heartbeat_s: float | None
    ) -> PointSettings:
        deadband = spec.deadband if spec is not None and spec.deadband > 0 else default_deadband
        hb = spec.heartbeat if spec is not None and spec.heartbeat is not None else None
        if hb is None:
            hb = default_heartbeat_s
        return PointSettings(deadband, None if hb is None else round(hb * 1e9))

    def settings(self, point: str) -> PointSettings:
        """The deadband and heartbeat that apply to ``point`` (cached)."""
        s = self._resolved.get(point)
        if s is None:
            s = self._exact.get(point)
            if s is None:
                s = next((ps for rx, ps in self._patterns if rx.fullmatch(point)), self._default)
            self._resolved[point] = s
        return s

    def accept(self, r: Reading) -> bool:
        """True: write ``r`` (it becomes the point's last written reading)."""
        return bool(self.filter((r,)))

    def filter(self, readings: Iterable[Reading]) -> list[Reading]:
        """The readings to write, in order (each kept one becomes its point's last written)."""
        out: list[Reading] = []
        keep = out.append
        last = self._last
        filtered = 0
        for r in readings:
            point = r.point
            prev = last.get(point)
            if prev is not None:
                value, ts, quality, s = prev
                v = r.value
                if (r.quality is quality or r.quality == quality) and (
                    s.heartbeat_ns is None or r.ts - ts < s.heartbeat_ns
                ):
                    tv, tp = type(v), type(value)
                    if (tv is float or tv is int) and (tp is float or tp is int):
                        if v == v and value == value:  # neither is NaN: the common case
                            if abs(v - value) <= s.deadband:  # type: ignore[operator]
                                filtered += 1
                                continue
                        elif v != v and value != value:  # NaN again
                            filtered += 1
                            continue
                    elif not _changed(v, value, s.deadband):
                        filtered += 1
                        continue
                last[point] = (v, r.ts, r.quality, s)
            else:
                last[point] = (r.value, r.ts, r.quality, self.settings(point))
            keep(r)
        self.filtered += filtered
        return out
