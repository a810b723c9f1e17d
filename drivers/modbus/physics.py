"""Plausible physics of the simulated estate (pure: no Modbus, no I/O, no clock).

The demo estate (:mod:`drivers.modbus.estate`) plays its device profiles on
Modbus servers; this module decides what the registers say. Each model
steps by ``dt`` seconds; :class:`EstatePhysics` wires them into the estate
of the demo and speaks in the profiles' point names (``winding_temp_a``,
``outlet_pressure``, bit names such as ``running``).

* **Load** follows a residential day (:func:`load_curve`, site-local hour):
  low at night, a morning peak around 07:30, a larger evening peak around
  20:00. Water demand (:func:`water_demand_curve`) peaks earlier in the
  morning and again in the evening.
* **Dry-type transformer**: each winding relaxes towards
  ``ambient + rise * load² (* 0.7 with the fans on)`` with a first-order lag
  (time constant 30 min, solved exactly for any ``dt``); phase B (the middle
  limb) runs a little hotter than A and C. The temperature controller's fan,
  alarm and latched trip outputs follow its setpoints. ``overheat`` adds a
  held extra rise (blocked ventilation) and jumps the windings there.
* **Meters** integrate active power into kWh (energy is the sum of
  ``P * dt`` over the sub-steps). Transformer 1 feeds a load of PF ~0.85
  that the **capacitor bank** compensates towards its target by switching
  25 kvar steps (one switching per 30 s); transformer 2 feeds a PF ~0.93 load.
* **Booster sets** (two zones, two pumps each) hold the header pressure at
  the setpoint with the lead pump on its drive's PID; a second pump is
  staged in when one cannot hold it, the set sleeps at night-time flows and
  wakes when the pressure falls out of the band. Pressure is solved
  quasi-statically from the pump curves (flow ~ sqrt(1 - p / shut-off)) and
  a demand that grows with sqrt(pressure), so a pump that trips at a peak
  drops the pressure to what the remaining pump can give, and its reset
  brings it back. A pump that is not in service (start/stop coil off) or
  tripped never runs.
* **Tanks** fall with the flow the pumps deliver and refill through a float
  valve (open below 75 %, closed above 85 %); pumps lose suction near empty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "INPUTS",
    "BoosterSet",
    "CapacitorBank",
    "EnergyMeter",
    "EstatePhysics",
    "PhysicsError",
    "PowerFlow",
    "Tank",
    "TcSetpoints",
    "Transformer",
    "initial_inputs",
    "load_curve",
    "power_flow",
    "water_demand_curve",
]

Out = dict[str, float | int | bool]
"""Point values of one device, by point (or bit) name."""


class PhysicsError(ValueError):
    """A physics call named a device that does not exist or is of the wrong kind."""


# --- daily curves ---------------------------------------------------------------------


def _bump(hour: float, centre: float, width: float) -> float:
    """A Gaussian bump on the 24 h circle."""
    d = (hour - centre + 12.0) % 24.0 - 12.0
    return math.exp(-0.5 * (d / width) ** 2)


def load_curve(hour: float) -> float:
    """Electrical load of a residential estate as a fraction of its peak (0..1), by local hour."""
    value = (
        0.26
        + 0.30 * _bump(hour, 7.5, 1.0)
        + 0.16 * _bump(hour, 12.0, 1.5)
        + 0.72 * _bump(hour, 20.0, 1.8)
    )
    return min(1.0, value)


def water_demand_curve(hour: float) -> float:
    """Domestic water demand as a fraction of its peak (0..1), by local hour."""
    value = (
        0.05
        + 0.95 * _bump(hour, 7.0, 0.9)
        + 0.30 * _bump(hour, 12.0, 1.2)
        + 0.80 * _bump(hour, 20.0, 1.5)
    )
    return min(1.0, value)


def _wobble(t: float, seed: int) -> float:
    """A small deterministic variation in -1..1 (sums of incommensurate sines)."""
    return (
        0.5 * math.sin(t / 97.0 + seed * 1.3)
        + 0.3 * math.sin(t / 23.0 + seed * 2.1)
        + 0.2 * math.sin(t / 7.1 + seed * 0.7)
    )


def _ambient(hour: float, base: float) -> float:
    """Room temperature: ``base`` with a 3 K daily swing, warmest at 15:00."""
    return base + 3.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)


# --- dry-type transformer --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TcSetpoints:
    """The temperature controller's own setpoints (°C)."""

    fan_start: float = 110.0
    fan_stop: float = 90.0
    alarm: float = 130.0
    trip: float = 150.0


@dataclass
class Transformer:
    """Winding temperatures of a dry-type transformer and its temperature controller."""

    rated_kva: float
    rise_k: float = 95.0  # winding rise over ambient at rated load, fans off
    tau_s: float = 1800.0
    phase_factors: tuple[float, float, float] = (1.0, 1.05, 0.97)
    fan_factor: float = 0.7  # forced air takes the rise down to this fraction
    temps: list[float] = field(default_factory=lambda: [30.0, 30.0, 30.0])
    fan_on: bool = False
    alarm_on: bool = False
    trip_latched: bool = False
    extra_rise_k: float = 0.0
    _reset_before: bool = False

    def steady(self, ambient: float, load_pu: float, fan: bool | None = None) -> list[float]:
        fan = self.fan_on if fan is None else fan
        rise = self.rise_k * load_pu**2 * (self.fan_factor if fan else 1.0)
        return [ambient + rise * f + self.extra_rise_k for f in self.phase_factors]

    def settle(self, ambient: float, load_pu: float) -> None:
        """Start in thermal equilibrium (no history)."""
        self.temps = self.steady(ambient, load_pu)

    def step(
        self,
        dt: float,
        ambient: float,
        load_pu: float,
        setpoints: TcSetpoints,
        *,
        fan_manual: bool = False,
        reset: bool = False,
    ) -> None:
        decay = math.exp(-dt / self.tau_s)
        target = self.steady(ambient, load_pu)
        self.temps = [s + (t - s) * decay for t, s in zip(self.temps, target, strict=True)]
        hottest = max(self.temps)
        if hottest >= setpoints.fan_start:
            self.fan_on = True
        elif hottest <= setpoints.fan_stop:
            self.fan_on = False
        self.fan_on = self.fan_on or fan_manual
        if hottest >= setpoints.alarm:
            self.alarm_on = True
        elif hottest < setpoints.alarm - 2.0:
            self.alarm_on = False
        if hottest >= setpoints.trip:
            self.trip_latched = True
        elif reset and not self._reset_before:  # a rising edge of the reset contact
            self.trip_latched = False
            self.alarm_on = hottest >= setpoints.alarm
        self._reset_before = reset

    def overheat(self, celsius: float, ambient: float, load_pu: float) -> None:
        """Hold the hottest winding near ``celsius`` (e.g. blocked ventilation) from now on."""
        self.extra_rise_k = 0.0
        self.extra_rise_k = max(0.0, celsius - max(self.steady(ambient, load_pu)))
        self.temps = self.steady(ambient, load_pu)

    def cool(self) -> None:
        """End an overheat: the windings relax back with the thermal time constant."""
        self.extra_rise_k = 0.0


# --- electrical ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PowerFlow:
    """What a three-phase meter sees (totals and per phase a, b, c)."""

    p_kw: float
    q_kvar: float
    s_kva: float
    pf: float
    voltages: tuple[float, float, float]  # line to neutral, V
    currents: tuple[float, float, float]  # A
    phase_p_kw: tuple[float, float, float]
    phase_pf: tuple[float, float, float]
    frequency: float

    @property
    def line_voltages(self) -> tuple[float, float, float]:
        """Line-to-line voltages (ab, bc, ca), from the phase voltages (balanced angles)."""
        a, b, c = self.voltages
        return (
            math.sqrt(a * a + b * b + a * b),
            math.sqrt(b * b + c * c + b * c),
            math.sqrt(c * c + a * a + c * a),
        )


_SHARES = (0.345, 0.330, 0.325)
_V_OFFSETS = (0.8, -0.6, 0.2)
_PF_OFFSETS = (0.004, -0.003, 0.0)


def power_flow(p_kw: float, q_kvar: float, load_pu: float, t: float) -> PowerFlow:
    """The meter's view of a load ``p_kw``/``q_kvar`` on a 400 V bus (``load_pu`` droops it)."""
    s_kva = math.hypot(p_kw, q_kvar)
    pf = p_kw / s_kva if s_kva > 0 else 1.0
    v_base = 230.0 * (1.02 - 0.04 * load_pu)
    voltages = tuple(v_base + off + 0.3 * _wobble(t, i) for i, off in enumerate(_V_OFFSETS))
    currents = tuple(s_kva * share * 1000.0 / v for share, v in zip(_SHARES, voltages, strict=True))
    phase_p = tuple(p_kw * share for share in _SHARES)
    phase_pf = tuple(max(-1.0, min(1.0, pf + off)) for off in _PF_OFFSETS)
    frequency = 50.0 + 0.02 * math.sin(t / 37.0) + 0.01 * math.sin(t / 11.0)
    return PowerFlow(
        p_kw,
        q_kvar,
        s_kva,
        pf,
        (voltages[0], voltages[1], voltages[2]),
        (currents[0], currents[1], currents[2]),
        (phase_p[0], phase_p[1], phase_p[2]),
        (phase_pf[0], phase_pf[1], phase_pf[2]),
        frequency,
    )


@dataclass
class EnergyMeter:
    """Energy registers: import and export kWh, counted from the active power."""

    import_kwh: float
    export_kwh: float = 0.0

    def step(self, dt: float, p_kw: float) -> None:
        if p_kw >= 0:
            self.import_kwh += p_kw * dt / 3600.0
        else:
            self.export_kwh += -p_kw * dt / 3600.0


@dataclass
class CapacitorBank:
    """An automatic PF controller switching equal capacitor steps (first in, first out)."""

    steps: int = 12
    step_kvar: float = 25.0  # at 400 V
    switch_delay_s: float = 30.0
    in_service: list[int] = field(default_factory=list)  # step indexes, oldest first
    _timer: float = 0.0

    def supplied_kvar(self, voltage_ll: float) -> float:
        return len(self.in_service) * self.step_kvar * (voltage_ll / 400.0) ** 2

    def step(
        self, dt: float, p_kw: float, q_load_kvar: float, voltage_ll: float, target: float
    ) -> None:
        """Switch at most one step per ``switch_delay_s`` towards ``target`` PF (lagging)."""
        self._timer += dt
        if self._timer < self.switch_delay_s:
            return
        q_net = q_load_kvar - self.supplied_kvar(voltage_ll)
        s = math.hypot(p_kw, q_net)
        pf = p_kw / s if s > 0 else 1.0
        step_now = self.step_kvar * (voltage_ll / 400.0) ** 2
        if q_net > 0 and pf < target and len(self.in_service) < self.steps:
            free = [i for i in range(self.steps) if i not in self.in_service]
            self.in_service.append(free[0])
            self._timer = 0.0
        elif q_net < -0.5 * step_now and self.in_service:
            self.in_service.pop(0)
            self._timer = 0.0

    def settle(self, p_kw: float, q_load_kvar: float, voltage_ll: float, target: float) -> None:
        """Start with the steps the target needs (no history)."""
        self.in_service = []
        for _ in range(self.steps):
            self._timer = self.switch_delay_s
            before = len(self.in_service)
            self.step(0.0, p_kw, q_load_kvar, voltage_ll, target)
            if len(self.in_service) == before:
                break
        self._timer = 0.0


# --- water -----------------------------------------------------------------------------


@dataclass
class Tank:
    """A water tank: falls with the outflow, refilled by a float valve."""

    area_m2: float = 25.0
    height_m: float = 3.0
    level_m: float = 2.4
    inlet_m3h: float = 30.0
    open_below: float = 0.75
    close_above: float = 0.85
    inlet_open: bool = False

    def step(self, dt: float, outflow_m3h: float) -> None:
        fraction = self.level_m / self.height_m
        if fraction < self.open_below:
            self.inlet_open = True
        elif fraction > self.close_above:
            self.inlet_open = False
        inflow = self.inlet_m3h if self.inlet_open else 0.0
        self.level_m += (inflow - outflow_m3h) * dt / 3600.0 / self.area_m2
        self.level_m = max(0.0, min(self.height_m, self.level_m))

    @property
    def suction(self) -> float:
        """Fraction of pump capacity the suction allows (pumps starve near empty)."""
        return max(0.0, min(1.0, self.level_m / 0.3))


@dataclass
class Pump:
    """One pump of a booster set, as its drive reports it."""

    tripped: bool = False
    fault_code: int = 0
    running: bool = False
    frequency: float = 0.0
    flow_m3h: float = 0.0
    _reset_before: bool = False


@dataclass
class BoosterSet:
    """A constant-pressure booster set of equal pumps on variable-frequency drives."""

    pumps: list[Pump]
    q_max_m3h: float = 30.0  # one pump at 50 Hz into an open outlet
    p_shut_mpa: float = 0.8  # one pump at 50 Hz against a closed outlet
    peak_demand_m3h: float = 36.0  # at p_ref
    p_ref_mpa: float = 0.45
    p_static_mpa: float = 0.05  # what the mains gives with every pump stopped
    band_mpa: float = 0.05  # wake from sleep below setpoint - band
    f_min_hz: float = 25.0
    stage_delay_s: float = 15.0
    destage_delay_s: float = 60.0
    sleep_flow_m3h: float = 3.0
    sleep_delay_s: float = 300.0
    vessel_mpa_per_m3: float = 0.25  # pressure lost per m³ drawn from the vessel while asleep
    filter_tau_s: float = 3.0
    pressure: float = 0.45
    n_running: int = 1
    _stage_timer: float = 0.0
    _destage_timer: float = 0.0
    _sleep_timer: float = 0.0

    def _capacity(self, n: int, suction: float) -> float:
        return n * self.q_max_m3h * suction

    def _p_max(self, n: int, demand0: float, suction: float) -> float:
        """Pressure ``n`` pumps at 50 Hz hold against a demand of ``demand0`` at p_ref."""
        cap = self._capacity(n, suction)
        if cap <= 0:
            return 0.0
        if demand0 <= 0:
            return self.p_shut_mpa
        return cap**2 / (cap**2 / self.p_shut_mpa + demand0**2 / self.p_ref_mpa)

    def demand(self, pressure: float, demand0: float) -> float:
        return demand0 * math.sqrt(max(0.0, pressure) / self.p_ref_mpa)

    def step(
        self,
        dt: float,
        demand_pu: float,
        in_service: Sequence[bool],
        setpoint: float,
        suction: float,
        resets: Sequence[bool],
    ) -> float:
        """Advance; returns the flow delivered (m³/h)."""
        for pump, reset in zip(self.pumps, resets, strict=True):
            if reset and not pump._reset_before and pump.tripped:
                pump.tripped, pump.fault_code = False, 0
            pump._reset_before = reset
        available = [
            p for p, ok in zip(self.pumps, in_service, strict=True) if ok and not p.tripped
        ]
        demand0 = self.peak_demand_m3h * demand_pu
        n = min(self.n_running, len(available))
        if n == 0 and available and self.pressure < setpoint - self.band_mpa:
            n = 1  # wake (or first start)
        n = self._stage(dt, n, len(available), demand0, setpoint, suction)
        self.n_running = n
        running = available[:n]
        for pump in self.pumps:
            pump.running = pump in running
            pump.frequency = 0.0
            pump.flow_m3h = 0.0
        if n == 0:
            drawn = self.demand(self.pressure, demand0) * dt / 3600.0
            self.pressure = max(self.p_static_mpa, self.pressure - drawn * self.vessel_mpa_per_m3)
            return self.demand(self.pressure, demand0)
        p_max = self._p_max(n, demand0, suction)
        if p_max >= setpoint:
            target = setpoint
            flow = self.demand(setpoint, demand0)
            x2 = (flow / self._capacity(n, suction)) ** 2 + setpoint / self.p_shut_mpa
            x = max(self.f_min_hz / 50.0, min(1.0, math.sqrt(x2)))
        else:
            target = max(self.p_static_mpa, p_max)
            x = 1.0
        self.pressure = target + (self.pressure - target) * math.exp(-dt / self.filter_tau_s)
        flow = self.demand(self.pressure, demand0)
        for pump in running:
            pump.frequency = 50.0 * x
            pump.flow_m3h = flow / n
        return flow

    def _stage(
        self, dt: float, n: int, available: int, demand0: float, setpoint: float, suction: float
    ) -> int:
        if n == 1 and demand0 < self.sleep_flow_m3h:
            self._sleep_timer += dt
            if self._sleep_timer >= self.sleep_delay_s:
                self._sleep_timer = 0.0
                return 0
        else:
            self._sleep_timer = 0.0
        if 1 <= n < available and self._p_max(n, demand0, suction) < setpoint - 0.01:
            self._stage_timer += dt
            if self._stage_timer >= self.stage_delay_s:
                self._stage_timer = 0.0
                return n + 1
        else:
            self._stage_timer = 0.0
        if n >= 2 and self._p_max(n - 1, demand0, suction) > setpoint + 0.03:
            self._destage_timer += dt
            if self._destage_timer >= self.destage_delay_s:
                self._destage_timer = 0.0
                return n - 1
        else:
            self._destage_timer = 0.0
        return n

    def pump_values(self, pump: Pump, rated_voltage: float = 380.0) -> Out:
        """The drive's running values (power, current, voltage) from flow and pressure."""
        if not pump.running:
            return {
                "output_frequency": 0.0,
                "motor_current": 0.0,
                "output_voltage": 0,
                "output_power": 0.0,
            }
        x = pump.frequency / 50.0
        hydraulic_kw = pump.flow_m3h / 3600.0 * self.pressure * 1000.0
        power_kw = hydraulic_kw / 0.65 + 0.3 * x
        voltage = rated_voltage * x
        current = power_kw * 1000.0 / (math.sqrt(3) * voltage * 0.85) + 4.0 * x
        return {
            "output_frequency": round(pump.frequency, 2),
            "motor_current": round(current, 1),
            "output_voltage": round(voltage),
            "output_power": round(power_kw, 1),
        }


# --- the estate of the demo ------------------------------------------------------------

_TRANSFORMERS = {"tx1": ("pm1", 0.85, 1), "tx2": ("pm2", 0.70, 2)}  # meter, share of peak, seed
_ZONES = {"low": (("pump1", "pump2"), "tank1"), "high": (("pump3", "pump4"), "tank2")}
_PUMPS = {name: zone for zone, (names, _) in _ZONES.items() for name in names}

_SENSOR_FAULTS = tuple(f"sensor_{ph}_{kind}" for ph in "abc" for kind in ("open", "short"))
_TC_INPUTS: dict[str, float | int | bool] = {
    "fan_start_setpoint": 110,
    "fan_stop_setpoint": 90,
    "alarm_setpoint": 130,
    "trip_setpoint": 150,
    "fan_manual": False,
    "reset_alarm": False,
    **dict.fromkeys(_SENSOR_FAULTS, False),  # set by hand (a pin) to simulate a broken sensor
}
_PUMP_INPUTS: dict[str, float | int | bool] = {
    "pressure_setpoint": 0.45,
    "start_stop": True,
    "fault_reset": False,
}
INPUTS: Mapping[str, Mapping[str, float | int | bool]] = {
    "tx1": _TC_INPUTS,
    "tx2": _TC_INPUTS,
    "cap1": {"pf_target": 0.95},
    **{name: _PUMP_INPUTS for name in _PUMPS},
}
"""Points that clients write and the physics reads back, with their initial values."""


def initial_inputs() -> dict[str, Out]:
    """A fresh copy of :data:`INPUTS`."""
    return {device: dict(values) for device, values in INPUTS.items()}


class EstatePhysics:
    """The physics of the demo estate, by device name and profile point names.

    Devices: ``tx1``/``tx2`` (dry_type_tc, 1000 kVA each), ``pm1``/``pm2``
    (meters of tx1/tx2), ``cap1`` (capacitor bank on tx1's busbar),
    ``pump1..pump4`` (booster_pump_vfd: pumps 1-2 the low zone fed from
    ``tank1``, pumps 3-4 the high zone fed from ``tank2``). :meth:`step`
    takes what clients wrote (coils, setpoints) as ``inputs`` and returns
    every simulated point's value; the DI module has no physics.
    """

    def __init__(self, tz: ZoneInfo, now: datetime, *, max_substep_s: float = 5.0) -> None:
        if now.tzinfo is None:
            raise PhysicsError("now must be an aware datetime")
        if not max_substep_s > 0:
            raise PhysicsError(f"max_substep_s must be > 0, got {max_substep_s}")
        self.tz = tz
        self.max_substep_s = max_substep_s
        self.t = 0.0  # seconds simulated
        self.now = now
        self.transformers = {name: Transformer(rated_kva=1000.0) for name in _TRANSFORMERS}
        self.meters = {"pm1": EnergyMeter(1_203_456.7), "pm2": EnergyMeter(845_210.35)}
        self._loads: dict[str, tuple[float, float, float, float]] = {}  # p, q, load, t
        self.bank = CapacitorBank()
        self.pf_target = 0.95
        self.sets = {zone: BoosterSet([Pump(), Pump()]) for zone in _ZONES}
        self.tanks = {"tank1": Tank(level_m=2.4), "tank2": Tank(level_m=2.3)}
        self.setpoints = {name: TcSetpoints() for name in _TRANSFORMERS}
        self.sensor_faults = dict.fromkeys(_TRANSFORMERS, False)
        self._settle()

    # --- time ------------------------------------------------------------------------

    def hour(self, when: datetime) -> float:
        local = when.astimezone(self.tz)
        return local.hour + local.minute / 60.0 + local.second / 3600.0

    def load_pu(self, transformer: str, hour: float, t: float) -> float:
        """Load of a transformer in per unit of its rating."""
        share, seed = _TRANSFORMERS[transformer][1], _TRANSFORMERS[transformer][2]
        return share * load_curve(hour) * (1.0 + 0.015 * _wobble(t, seed))

    def _settle(self) -> None:
        hour = self.hour(self.now)
        for name, tx in self.transformers.items():
            tx.settle(_ambient(hour, 27.0), self._electrical(name, hour, 0.0, settle=True))
        for zone in self.sets.values():
            zone.pressure = 0.45
            zone.n_running = 1 if water_demand_curve(hour) * zone.peak_demand_m3h < 20 else 2
        self._substep(0.0, hour, INPUTS)  # derive every output from the settled state

    # --- stepping ----------------------------------------------------------------------

    def step(
        self, dt: float, now: datetime, inputs: Mapping[str, Mapping[str, object]] | None = None
    ) -> dict[str, Out]:
        """Advance to ``now`` (``dt`` seconds after the previous step) in sub-steps.

        ``inputs`` are the values clients may have written (:data:`INPUTS`),
        by device; a missing one keeps its default (:func:`initial_inputs`).
        """
        inputs = inputs or {}
        if dt < 0 or not math.isfinite(dt):
            raise PhysicsError(f"dt must be a finite number >= 0, got {dt}")
        if now.tzinfo is None:
            raise PhysicsError("now must be an aware datetime")
        self._take_inputs(inputs)
        n = max(1, math.ceil(dt / self.max_substep_s)) if dt > 0 else 0
        for i in range(n):
            h = dt / n
            when = now - timedelta(seconds=dt - h * (i + 1))
            self.t += h
            self._substep(h, self.hour(when), inputs)
        self.now = now
        return self.outputs()

    def _take_inputs(self, inputs: Mapping[str, Mapping[str, object]]) -> None:
        for name in self.transformers:
            given = inputs.get(name, {})
            self.setpoints[name] = TcSetpoints(
                fan_start=_num(given.get("fan_start_setpoint"), 110.0),
                fan_stop=_num(given.get("fan_stop_setpoint"), 90.0),
                alarm=_num(given.get("alarm_setpoint"), 130.0),
                trip=_num(given.get("trip_setpoint"), 150.0),
            )
            self.sensor_faults[name] = any(bool(given.get(bit, False)) for bit in _SENSOR_FAULTS)
        self.pf_target = _num(inputs.get("cap1", {}).get("pf_target"), self.pf_target)

    def _electrical(self, name: str, hour: float, dt: float, *, settle: bool = False) -> float:
        """Load flow of one transformer's busbar; returns the transformer load (p.u.)."""
        meter, t = _TRANSFORMERS[name][0], self.t
        demand_pu = self.load_pu(name, hour, t)
        kva = self.transformers[name].rated_kva * demand_pu
        load_pf = 0.85 + 0.02 * demand_pu if name == "tx1" else 0.93 + 0.01 * demand_pu
        p = kva * load_pf
        q = kva * math.sqrt(1.0 - load_pf**2)
        if name == "tx1":
            v_ll = 400.0 * (1.02 - 0.04 * demand_pu)
            if settle:
                self.bank.settle(p, q, v_ll, self.pf_target)
            else:
                self.bank.step(dt, p, q, v_ll, self.pf_target)
            q -= self.bank.supplied_kvar(v_ll)
        self._loads[meter] = (p, q, demand_pu, t)
        self.meters[meter].step(dt, p)
        return math.hypot(p, q) / self.transformers[name].rated_kva

    def flow(self, meter: str) -> PowerFlow:
        """What meter ``pm1``/``pm2`` sees now."""
        return power_flow(*self._loads[meter])

    def _substep(self, dt: float, hour: float, inputs: Mapping[str, Mapping[str, object]]) -> None:
        for name, tx in self.transformers.items():
            load = self._electrical(name, hour, dt)
            given = inputs.get(name, {})
            tx.step(
                dt,
                _ambient(hour, 27.0),
                load,
                self.setpoints[name],
                fan_manual=bool(given.get("fan_manual", False)),
                reset=bool(given.get("reset_alarm", False)),
            )
        demand = water_demand_curve(hour)
        for zone, (pumps, tank_name) in _ZONES.items():
            tank = self.tanks[tank_name]
            booster = self.sets[zone]
            lead = inputs.get(pumps[0], {})
            setpoint = _num(lead.get("pressure_setpoint"), 0.45)
            in_service = [bool(inputs.get(p, {}).get("start_stop", True)) for p in pumps]
            resets = [bool(inputs.get(p, {}).get("fault_reset", False)) for p in pumps]
            flow = booster.step(dt, demand, in_service, setpoint, tank.suction, resets)
            tank.step(dt, flow)

    # --- faults --------------------------------------------------------------------------

    def trip_pump(self, name: str, code: int = 2) -> None:
        """The drive of ``name`` trips with fault ``code`` (stays tripped until reset)."""
        pump = self._pump(name)
        if code < 1:
            raise PhysicsError(f"a trip needs a fault code >= 1, got {code}")
        pump.tripped, pump.fault_code, pump.running = True, code, False

    def reset_pump(self, name: str) -> None:
        """Clear the trip of ``name``, as the drive's fault reset does."""
        pump = self._pump(name)
        pump.tripped, pump.fault_code = False, 0

    def overheat(self, name: str, celsius: float = 140.0) -> None:
        """Push the windings of transformer ``name`` to about ``celsius`` and hold them there."""
        tx = self._transformer(name)
        load = self.flow(_TRANSFORMERS[name][0]).s_kva / tx.rated_kva
        tx.overheat(celsius, _ambient(self.hour(self.now), 27.0), load)

    def cool(self, name: str) -> None:
        self._transformer(name).cool()

    def _pump(self, name: str) -> Pump:
        zone = _PUMPS.get(name)
        if zone is None:
            raise PhysicsError(f"{name!r} is not a pump (pumps: {', '.join(_PUMPS)})")
        return self.sets[zone].pumps[_ZONES[zone][0].index(name)]

    def _transformer(self, name: str) -> Transformer:
        tx = self.transformers.get(name)
        if tx is None:
            known = ", ".join(self.transformers)
            raise PhysicsError(f"{name!r} is not a transformer (transformers: {known})")
        return tx

    # --- outputs -------------------------------------------------------------------------

    def outputs(self) -> dict[str, Out]:
        """Every simulated point's value now, by device and point (or bit) name."""
        out: dict[str, Out] = {}
        for name, tx in self.transformers.items():
            out[name] = {**self._tc_values(tx), "sensor_fault": self.sensor_faults[name]}
        out["pm1"] = self._sdm630_values(self.flow("pm1"), self.meters["pm1"])
        out["pm2"] = self._int_meter_values(self.flow("pm2"), self.meters["pm2"])
        out["cap1"] = self._bank_values()
        for zone, (pumps, tank_name) in _ZONES.items():
            booster = self.sets[zone]
            for i, name in enumerate(pumps):
                pump = booster.pumps[i]
                values: Out = {
                    "running": pump.running,
                    "faulted": pump.tripped,
                    "remote": True,
                    "fault_code": pump.fault_code,
                    "outlet_pressure": round(booster.pressure + 0.002 * i, 3),
                }
                values.update(booster.pump_values(pump))
                out[name] = values
            tank = self.tanks[tank_name]
            out[tank_name] = {
                "level": round(tank.level_m, 3),
                "high_level_switch": tank.level_m >= 0.95 * tank.height_m,
                "low_level_switch": tank.level_m <= 0.10 * tank.height_m,
            }
        return out

    @staticmethod
    def _tc_values(tx: Transformer) -> Out:
        return {
            "winding_temp_a": round(tx.temps[0], 1),
            "winding_temp_b": round(tx.temps[1], 1),
            "winding_temp_c": round(tx.temps[2], 1),
            "fan_running": tx.fan_on,
            "alarm_output": tx.alarm_on,
            "trip_output": tx.trip_latched,
        }

    @staticmethod
    def _sdm630_values(flow: PowerFlow, meter: EnergyMeter) -> Out:
        v, i, pp, pf = flow.voltages, flow.currents, flow.phase_p_kw, flow.phase_pf
        return {
            "voltage_a": v[0],
            "voltage_b": v[1],
            "voltage_c": v[2],
            "current_a": i[0],
            "current_b": i[1],
            "current_c": i[2],
            "active_power_a": pp[0],
            "active_power_b": pp[1],
            "active_power_c": pp[2],
            "pf_a": pf[0],
            "pf_b": pf[1],
            "pf_c": pf[2],
            "active_power": flow.p_kw,
            "apparent_power": flow.s_kva,
            "reactive_power": flow.q_kvar,
            "meter_pf": flow.pf,
            "frequency": flow.frequency,
            "import_energy": meter.import_kwh,
            "export_energy": meter.export_kwh,
            "total_energy": meter.import_kwh + meter.export_kwh,
        }

    @staticmethod
    def _int_meter_values(flow: PowerFlow, meter: EnergyMeter) -> Out:
        v, i, pp = flow.voltages, flow.currents, flow.phase_p_kw
        ab, bc, ca = flow.line_voltages
        return {
            "voltage_a": round(v[0], 1),
            "voltage_b": round(v[1], 1),
            "voltage_c": round(v[2], 1),
            "voltage_ab": round(ab, 1),
            "voltage_bc": round(bc, 1),
            "voltage_ca": round(ca, 1),
            "current_a": round(i[0], 1),
            "current_b": round(i[1], 1),
            "current_c": round(i[2], 1),
            "frequency": round(flow.frequency, 2),
            "active_power": round(flow.p_kw, 3),
            "reactive_power": round(flow.q_kvar, 3),
            "apparent_power": round(flow.s_kva, 3),
            "meter_pf": round(flow.pf, 3),
            "active_power_a": round(pp[0], 3),
            "active_power_b": round(pp[1], 3),
            "active_power_c": round(pp[2], 3),
            # The register holds the counter modulo 2^32 (x 0.01 kWh), as the meter does.
            "import_energy": _wrapped_centi(meter.import_kwh),
            "export_energy": _wrapped_centi(meter.export_kwh),
        }

    def _bank_values(self) -> Out:
        flow = self.flow("pm1")
        v_ll = sum(flow.line_voltages) / 3.0
        load = flow.s_kva / self.transformers["tx1"].rated_kva
        target = self.pf_target
        full = len(self.bank.in_service) == self.bank.steps
        leading = flow.q_kvar < 0
        values: Out = {
            "measured_pf": round(abs(flow.pf), 3),
            "voltage": round(v_ll, 1),
            "current": round(flow.currents[0], 1),
            "reactive_power": round(flow.q_kvar, 1),
            "voltage_thd": round(1.8 + 2.2 * load, 1),
            "current_thd": round(6.0 + 9.0 * load, 1),
            "over_voltage": v_ll > 440.0,
            "under_voltage": v_ll < 340.0,
            "under_compensation": full and not leading and flow.pf < target - 0.03,
            "over_compensation": leading and not self.bank.in_service,
            "harmonic_alarm": 1.8 + 2.2 * load > 5.0,
            "auto_mode": True,
            "pf_leading": leading,
            "step_count": self.bank.steps,
        }
        for i in range(12):
            values[f"step_{i + 1:02d}"] = i in self.bank.in_service
        return values


def _wrapped_centi(kwh: float) -> float:
    """A kWh counter as a uint32 register of 0.01 kWh shows it (modulo 2^32)."""
    return (math.floor(kwh * 100) % 2**32) / 100


def _num(value: object, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)
