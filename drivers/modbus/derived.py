"""Derived points: values computed in the gateway from a device's own points.

A device config may add ``derived:`` points (``tx1.winding_temp_max`` from
the three winding temperatures, ``pump1.run_hours`` from a run-status bit).
:class:`DerivedSpec` is the config of one; it is checked at load time
(``INPUTS`` and ``OPTIONS`` are the tables of how many inputs and which
options each function takes). :class:`DerivedPoints` is the engine of one
device: the driver feeds it the freshly decoded points of each read and
publishes what it returns. Derived points are computed from the device's
points only, never from other derived points.

Instantaneous functions (computed from the latest value of each input)
-----------------------------------------------------------------------
``max``, ``min``, ``mean``, ``sum``, ``load_percent``, ``power_factor``.

* Computed whenever a feed carries at least one of the inputs, over the
  latest value of every input (inputs absent from the feed keep their last
  value, however old); nothing until every input has been seen once.
* ``bool`` counts as 0/1 (``sum`` of run bits = pumps running). A ``str``,
  NaN or infinity cannot be computed with and counts as a BAD input.
* Quality is the worst of the inputs' (GOOD < UNCERTAIN < BAD).
* A BAD input makes the output BAD. The reading is still published, so
  consumers learn the point is unreliable, and its value is the function
  over the inputs that are not BAD (a max over the two healthy windings).
  When no input is left (or power factor misses P or S) nothing is
  published for that feed.
* ``load_percent = 100 * max(|input|) / rating``: the largest of the inputs
  (the three phase currents) against the rated value. Magnitudes, so a
  transformer loaded in reverse (export) is loaded too. ``rating`` is a
  number or the name of a device parameter, resolved when the engine is
  built (:func:`resolve_rating`).
* ``power_factor = P / S`` (inputs ``[P, S]``, for a meter that lacks PF;
  the sign of P is kept, negative = export). ``S == 0`` (no load) publishes
  nothing: PF is undefined then, and inventing 0 or 1 would lie. A negative
  S is a wrong register and publishes nothing either (logged once).
  ``|P| > S`` is impossible: within ``PF_TOLERANCE`` (register rounding,
  meter class) PF is clamped to +/-1 silently; beyond it PF is clamped and
  the reading is UNCERTAIN.

Counters (persisted in :class:`~drivers.modbus.derived_state.DerivedState`)
---------------------------------------------------------------------------
``run_hours``, ``starts``, ``daily_energy``; one input each. A counter
publishes its total on every usable sample of its input, with the input's
quality. A BAD (or unusable) sample never advances a counter and publishes
nothing; the last published total stands.

* ``run_hours``: the input is a run status (bool, or a number 0/1; any
  other value is unusable). Between two consecutive good samples the
  interval counts when the earlier one was running (sample and hold, as a
  historian steps a status), unless it is longer than ``max_gap_s``
  (gateway down, device offline): then it counts nothing. A sample older
  than the previous one (clock stepped back) counts nothing and becomes the
  new reference. Published in hours.
* ``starts``: rising edges (stopped -> running) between good samples, also
  across a gap (it must have started at some time). The very first sample
  is not a start, and a device running before a restart and still running
  after it is not a new start.
* ``daily_energy``: the input is an energy counter (kWh). The output is the
  energy since local midnight in the site time zone ``tz``: the sum of the
  positive deltas between good samples. A drop of the counter is:

  - a wrap when ``wrap_at`` is set and the wrapped delta
    ``wrap_at - previous + current`` is under half of ``wrap_at`` (serial
    number arithmetic): that delta counts, Event ``meter.counter_wrapped``
    (data: point, previous, current, wrap_at);
  - otherwise a meter replacement: delta 0, the new value becomes the
    baseline, Event ``meter.replaced`` (data: point, previous, current).

  At the local day change the total restarts from 0; the delta of the first
  sample of a new day (which crosses midnight) belongs wholly to the new
  day. The baseline and today's total persist: after a restart mid-day the
  total continues, and the energy used while the gateway was down is
  counted at the first sample after it (the meter kept counting). The first
  day ever counts from the first sample, not from midnight.

Readings are named ``f"{device}.{name}"``, stamped with the feed's ``ts``
and rounded to ``precision`` when set. ``deadband``/``heartbeat_s`` are for
the driver's report-by-exception (:meth:`DerivedPoints.point_specs`); the
engine returns every computed value. When a persisted entry was built by
another function or input (config changed), that counter restarts from zero.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Self
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from drivers.modbus.derived_state import (
    DerivedEntry,
    DerivedState,
    EnergyState,
    RunHoursState,
    StartsState,
)
from gateway.driver import PointSpec, StrictModel
from gateway.model import Event, Quality, Reading, Value

__all__ = [
    "INPUTS",
    "OPTIONS",
    "PF_TOLERANCE",
    "DerivedFunction",
    "DerivedPoints",
    "DerivedSpec",
    "resolve_rating",
]

log = logging.getLogger("drivers.modbus.derived")

PF_TOLERANCE = 0.01
"""|P| may exceed S by this fraction of S before the power factor turns UNCERTAIN."""

_NS = 1_000_000_000


class DerivedFunction(enum.StrEnum):
    MAX = "max"
    MIN = "min"
    MEAN = "mean"
    SUM = "sum"
    LOAD_PERCENT = "load_percent"
    POWER_FACTOR = "power_factor"
    RUN_HOURS = "run_hours"
    STARTS = "starts"
    DAILY_ENERGY = "daily_energy"


F = DerivedFunction
_AGGREGATES = frozenset({F.MAX, F.MIN, F.MEAN, F.SUM})
_COUNTERS = frozenset({F.RUN_HOURS, F.STARTS, F.DAILY_ENERGY})

INPUTS: Mapping[DerivedFunction, tuple[int, int | None]] = {
    F.MAX: (2, None),
    F.MIN: (2, None),
    F.MEAN: (2, None),
    F.SUM: (2, None),
    F.LOAD_PERCENT: (1, None),
    F.POWER_FACTOR: (2, 2),
    F.RUN_HOURS: (1, 1),
    F.STARTS: (1, 1),
    F.DAILY_ENERGY: (1, 1),
}
"""(fewest, most) inputs of each function; ``None`` = no upper bound."""

OPTIONS: Mapping[DerivedFunction, frozenset[str]] = {
    **{f: frozenset[str]() for f in F},
    F.LOAD_PERCENT: frozenset({"rating"}),
    F.RUN_HOURS: frozenset({"max_gap_s"}),
    F.DAILY_ENERGY: frozenset({"wrap_at"}),
}
"""The function-specific options each function accepts (the rest is common)."""

_INPUT_HINT: Mapping[DerivedFunction, str] = {
    F.POWER_FACTOR: " ([active power P, apparent power S])",
    F.RUN_HOURS: " (a run status)",
    F.STARTS: " (a run status)",
    F.DAILY_ENERGY: " (an energy counter)",
    F.LOAD_PERCENT: " (e.g. the phase currents; the largest is used)",
}


class DerivedSpec(StrictModel):
    """One derived point of a device (the key of ``derived:`` is its name)."""

    function: DerivedFunction = Field(description="What to compute.")
    inputs: list[str] = Field(description="Point names of the same device, e.g. winding_temp_a.")
    rating: float | str | None = Field(
        None,
        description="load_percent only: the rated value (e.g. rated current in A), "
        "or the name of a device parameter holding it.",
    )
    wrap_at: float | None = Field(
        None,
        description="daily_energy only: the counter value at which it rolls over to 0 "
        "(e.g. 4294967296 * scale).",
    )
    max_gap_s: float = Field(
        300,
        description="run_hours only: an interval between two samples longer than this "
        "(gateway down, device offline) is not counted.",
    )
    unit: str = Field("", description="Unit of the derived value.")
    description: str = Field("", description="Free text for people.")
    deadband: float | None = Field(
        None, ge=0, description="Report by exception: ignore changes smaller than this."
    )
    heartbeat_s: float | None = Field(
        None, gt=0, description="...but report at least every this many seconds."
    )
    precision: int | None = Field(None, ge=0, description="Round the value to this many decimals.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        f = self.function
        fewest, most = INPUTS[f]
        n = len(self.inputs)
        wanted = f"{fewest} input{'' if fewest == 1 else 's'}{_INPUT_HINT.get(f, '')}"
        if most == fewest and n != fewest:
            raise ValueError(f"function {f.value!r} needs exactly {wanted}, got {n}")
        if n < fewest:
            raise ValueError(f"function {f.value!r} needs at least {wanted}, got {n}")
        if any(not name for name in self.inputs):
            raise ValueError("inputs: an input name is empty")
        duplicates = sorted({i for i in self.inputs if self.inputs.count(i) > 1})
        if duplicates:
            raise ValueError(f"inputs: {', '.join(duplicates)} listed more than once")
        for option in ("rating", "wrap_at", "max_gap_s"):
            if self._is_set(option) and option not in OPTIONS[f]:
                users = [g.value for g in F if option in OPTIONS[g]]
                raise ValueError(
                    f"option {option!r} is only for function {users[0]!r}, not {f.value!r}"
                )
        if f is F.LOAD_PERCENT:
            if self.rating is None:
                raise ValueError(
                    "function 'load_percent' needs 'rating': the rated value "
                    "(e.g. 630 for 630 A) or the name of a device parameter"
                )
            if isinstance(self.rating, str):
                if not self.rating.strip():
                    raise ValueError("rating: the parameter name is empty")
            else:
                _check_rating(self.rating, "rating")
        if self.wrap_at is not None and not (math.isfinite(self.wrap_at) and self.wrap_at > 0):
            raise ValueError(f"wrap_at must be a number > 0, got {self.wrap_at}")
        if not (math.isfinite(self.max_gap_s) and self.max_gap_s > 0):
            raise ValueError(f"max_gap_s must be a number > 0, got {self.max_gap_s}")
        return self

    def _is_set(self, option: str) -> bool:
        if option == "max_gap_s":
            default: float = type(self).model_fields["max_gap_s"].default
            return self.max_gap_s != default
        return getattr(self, option) is not None


def _check_rating(value: float, what: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a number > 0, got {value}")
    return value


def resolve_rating(spec: DerivedSpec, params: Mapping[str, float]) -> float | None:
    """The rated value of a ``load_percent`` spec (None for other functions).

    A string rating names a device parameter; a missing one, or one that is
    not a number > 0, raises ValueError naming the parameter.
    """
    if spec.function is not F.LOAD_PERCENT or spec.rating is None:
        return None
    if not isinstance(spec.rating, str):
        return float(spec.rating)
    name = spec.rating
    if name not in params:
        known = ", ".join(sorted(params)) or "none"
        raise ValueError(f"rating: device parameter {name!r} is not defined (parameters: {known})")
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"rating: device parameter {name!r} is not a number: {value!r}")
    return _check_rating(float(value), f"rating: device parameter {name!r}")


_RANK = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}


def _worst(a: Quality, b: Quality) -> Quality:
    return a if _RANK[a] >= _RANK[b] else b


def _number(value: Value) -> float | None:
    """A finite number (bool = 0/1), or None when the value cannot be computed with."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _status(value: Value) -> bool | None:
    """A run status: bool or 0/1, else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    return None


class DerivedPoints:
    """The derived points of one device (see the module docstring for the rules)."""

    def __init__(
        self,
        device: str,
        specs: Mapping[str, DerivedSpec],
        *,
        params: Mapping[str, float] = {},  # read only, so a shared default is safe
        state: DerivedState,
        tz: ZoneInfo,
    ) -> None:
        self.device = device
        self._specs = dict(specs)
        self._state = state
        self._tz = tz
        self._latest: dict[str, tuple[Value, Quality]] = {}
        self._warned: set[str] = set()
        self._ratings: dict[str, float] = {}
        for name, spec in self._specs.items():
            where = f"device {device!r}, derived point {name!r}"
            for i in spec.inputs:
                if i in self._specs:
                    raise ValueError(
                        f"{where}: input {i!r} is itself a derived point; "
                        "derived points are computed from the device's own points only"
                    )
            try:
                rating = resolve_rating(spec, params)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from e
            if rating is not None:
                self._ratings[name] = rating
            if spec.function in _COUNTERS:
                self._entry(name, spec)  # create (or reset) it now
        self._inputs = frozenset(i for s in self._specs.values() for i in s.inputs)

    @property
    def inputs(self) -> frozenset[str]:
        """Every input point name, so the driver knows what to feed."""
        return self._inputs

    def point_specs(self) -> list[PointSpec]:
        """The derived points as the rest of the gateway sees them."""
        return [
            PointSpec(
                device=self.device,
                name=name,
                unit=spec.unit,
                deadband=spec.deadband or 0.0,
                heartbeat=spec.heartbeat_s,
                description=spec.description,
            )
            for name, spec in self._specs.items()
        ]

    def feed(self, values: Mapping[str, tuple[Value, Quality]], ts: int) -> list[Reading | Event]:
        """The freshly decoded points of one read (UTC ns) -> readings and events to publish."""
        fresh = [i for i in values if i in self._inputs]
        if not fresh:
            return []
        for i in fresh:
            self._latest[i] = values[i]
        out: list[Reading | Event] = []
        for name, spec in self._specs.items():
            if spec.function in _COUNTERS:
                sample = values.get(spec.inputs[0])
                if sample is not None:
                    self._count(name, spec, sample, ts, out)
            elif any(i in values for i in spec.inputs):
                reading = self._instant(name, spec, ts)
                if reading is not None:
                    out.append(reading)
        return out

    # -- instantaneous ------------------------------------------------------

    def _instant(self, name: str, spec: DerivedSpec, ts: int) -> Reading | None:
        latest = [self._latest.get(i) for i in spec.inputs]
        numbers: list[float | None] = []
        quality = Quality.GOOD
        for sample in latest:
            if sample is None:
                return None  # not every input seen yet
            value, q = sample
            number = _number(value)
            if number is None or q is Quality.BAD:
                quality = Quality.BAD
                numbers.append(None)
            else:
                quality = _worst(quality, q)
                numbers.append(number)
        usable = [n for n in numbers if n is not None]
        f = spec.function
        if f is F.POWER_FACTOR:
            p, s = numbers
            if p is None or s is None:
                return None
            pf = self._power_factor(name, p, s)
            if pf is None:
                return None
            value, q_pf = pf
            quality = _worst(quality, q_pf)
        elif not usable:
            return None
        elif f is F.MAX:
            value = max(usable)
        elif f is F.MIN:
            value = min(usable)
        elif f is F.SUM:
            value = math.fsum(usable)
        elif f is F.MEAN:
            value = math.fsum(usable) / len(usable)
        else:  # load_percent
            value = 100.0 * max(abs(n) for n in usable) / self._ratings[name]
        return self._reading(name, spec, value, ts, quality)

    def _power_factor(self, name: str, p: float, s: float) -> tuple[float, Quality] | None:
        if s == 0:
            return None
        if s < 0:
            self._warn_once(name, f"apparent power S is negative ({s}); no power factor")
            return None
        pf = p / s
        if abs(pf) <= 1:
            return pf, Quality.GOOD
        clamped = math.copysign(1.0, pf)
        if abs(p) - s <= PF_TOLERANCE * s:
            return clamped, Quality.GOOD
        return clamped, Quality.UNCERTAIN

    # -- counters -----------------------------------------------------------

    def _count(
        self,
        name: str,
        spec: DerivedSpec,
        sample: tuple[Value, Quality],
        ts: int,
        out: list[Reading | Event],
    ) -> None:
        raw, quality = sample
        if quality is Quality.BAD:
            return
        entry = self._entry(name, spec)
        if isinstance(entry, RunHoursState | StartsState):
            running = _status(raw)
            if running is None:
                self._warn_once(name, f"run status {raw!r} is not a bool or 0/1; ignored")
                return
            if isinstance(entry, RunHoursState):
                self._run_hours(entry, spec, running, ts)
                value: float = entry.seconds / 3600.0
            else:
                if entry.running is False and running:
                    entry.count += 1
                entry.running = running
                value = entry.count
        else:
            counter = _number(raw)
            if counter is None:
                self._warn_once(name, f"energy counter {raw!r} is not a number; ignored")
                return
            self._energy(entry, spec, counter, ts, out)
            value = entry.today
        self._state.dirty = True
        out.append(self._reading(name, spec, value, ts, quality))

    def _run_hours(self, entry: RunHoursState, spec: DerivedSpec, running: bool, ts: int) -> None:
        if entry.running and entry.last_ts is not None:
            gap = ts - entry.last_ts
            if 0 < gap <= spec.max_gap_s * _NS:
                entry.seconds += gap / _NS
        entry.running = running
        entry.last_ts = ts

    def _energy(
        self,
        entry: EnergyState,
        spec: DerivedSpec,
        counter: float,
        ts: int,
        out: list[Reading | Event],
    ) -> None:
        day = self._local_day(ts)
        previous = entry.counter
        delta = 0.0
        if previous is not None:
            if counter >= previous:
                delta = counter - previous
            else:
                delta = self._drop(entry, spec, previous, counter, ts, out)
        if entry.day is None or day > entry.day:
            entry.day, entry.today = day, delta
        else:  # same day (or the clock stepped back: keep adding to the stored day)
            entry.today += delta
        entry.counter = counter
        entry.last_ts = ts

    def _drop(
        self,
        entry: EnergyState,
        spec: DerivedSpec,
        previous: float,
        counter: float,
        ts: int,
        out: list[Reading | Event],
    ) -> float:
        point = f"{self.device}.{entry.input}"
        wrap_at = spec.wrap_at
        if wrap_at is not None:
            wrapped = wrap_at - previous + counter
            if 0 <= wrapped < wrap_at / 2:
                out.append(
                    Event(
                        "meter.counter_wrapped",
                        self.device,
                        ts,
                        {
                            "point": point,
                            "previous": previous,
                            "current": counter,
                            "wrap_at": wrap_at,
                        },
                    )
                )
                return wrapped
        log.warning("%s dropped from %s to %s: meter replaced", point, previous, counter)
        out.append(
            Event(
                "meter.replaced",
                self.device,
                ts,
                {"point": point, "previous": previous, "current": counter},
            )
        )
        return 0.0

    # -- helpers ------------------------------------------------------------

    def _entry(self, name: str, spec: DerivedSpec) -> DerivedEntry:
        entry = self._state.get(self.device, name)
        wanted = spec.function.value
        if entry is not None and entry.function == wanted and entry.input == spec.inputs[0]:
            return entry
        if entry is not None:
            log.info(
                "%s.%s: saved state was for %s(%s), now %s(%s); restarting from zero",
                self.device,
                name,
                entry.function,
                entry.input,
                wanted,
                spec.inputs[0],
            )
        fresh: DerivedEntry
        if spec.function is F.RUN_HOURS:
            fresh = RunHoursState(input=spec.inputs[0])
        elif spec.function is F.STARTS:
            fresh = StartsState(input=spec.inputs[0])
        else:
            fresh = EnergyState(input=spec.inputs[0])
        self._state.put(self.device, name, fresh)
        return fresh

    def _local_day(self, ts: int) -> date:
        return datetime.fromtimestamp(ts // _NS, self._tz).date()

    def _reading(
        self, name: str, spec: DerivedSpec, value: float, ts: int, quality: Quality
    ) -> Reading:
        if spec.precision is not None:
            value = round(value, spec.precision)
        return Reading(f"{self.device}.{name}", value, ts, quality)

    def _warn_once(self, name: str, message: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning("%s.%s: %s", self.device, name, message)
