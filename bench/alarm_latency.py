"""Alarm latency: a value change at the source to the notification arriving,
through the whole gateway; and alarm transitions per second through the engine.

Setup (all on 127.0.0.1, free ports, a temp dir): a private Mosquitto; a
Modbus simulator (drivers.modbus.simulator, in this process) serving unit 1
(device ``mb1000``, polled every ``--period`` s) and unit 2 (``mb0500``,
every ``--period2`` s); an aiohttp webhook receiver and an aiomqtt subscriber
of ``estate/bench/notify/#`` in this process; and the gateway itself as a
subprocess (``python -m gateway run site.yaml``, uvloop, SQLite event store,
embedded time series) with the site file of bench/alarm_site.py: limit rules
without delays, escalation level 1 (after_min 0) to one person by ``webhook``
and, for the MQTT sensor, to a second person by the ``mqtt`` channel in the
same step. Flood and chattering detection are set out of reach and the
channels have no rate limit (see alarm_site.py for why).

1. MQTT sensor: each cycle takes a fresh device ``sensNNNN`` (so each cycle
   is a new alarm and a new escalation), publishes ``{"t": 90, "sent": ns}``
   (QoS 0) on ``bench/sensNNNN/t`` and times, from just before the publish,
   the webhook request's arrival at the receiver's handler and the MQTT
   notification's arrival at the subscriber (``kind: alarm``). Then it
   publishes 20 (clear) and waits for both ``cleared`` notices before the
   next cycle. ``--warmup`` cycles run first, unrecorded (Mosquitto delays
   the first ~30 QoS 0 messages after a connect: FIELD-NOTES). Target p99 <
   20 ms.
2. Modbus point: each cycle sleeps a random phase in [0, period), sets
   register ``rN`` of the simulated unit over the limit (in this process:
   the source changes at that instant), times the webhook's arrival, then
   sets it back and waits for the ``cleared`` notice. The latency holds the
   wait for the next poll (uniform in [0, period)); "after poll" is the
   arrival minus the alarm's ``ts`` (the reading's timestamp, taken by the
   gateway's clock, the same system clock): the gateway's own share.
   Target p99 <= period + 20 ms.
3. Engine transitions/s on one core, in process (bench/alarm_engine.py):
   RuleEngine + AlarmManager on a SQLite event store in a temp dir, fed
   batches of ``--batch`` readings (as RuleService delivers them) that cross a
   limit on every reading, over ``--points`` points; counted: transitions
   stored and published per second. Also the engine alone
   (RuleEngine.on_reading, no manager) and, for comparison, the manager with
   the default chattering/flood detection (most re-activations of a
   chattering point are then recorded but not announced).

Percentiles are nearest-rank. Run: ``.venv/bin/python bench/alarm_latency.py``
(about 4 minutes) or ``--quick`` (under a minute); ``--only mqtt modbus
engine`` picks parts; ``--profile out.prof`` runs the gateway under cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

import aiomqtt
from aiohttp import web

from bench.alarm_breakdown import Cycle, breakdown
from bench.alarm_engine import EngineFigures, run_engine
from bench.alarm_site import MODBUS_LIMIT, MQTT_LIMIT, SiteSpec, sensor, write_site
from drivers.modbus.datatypes import DataType, ValueSpec
from drivers.modbus.planner import Table
from drivers.modbus.simulator import ModbusSimulator, SimPoint, SimulatedDevice
from gateway.loop import run as run_loop

log = logging.getLogger("bench.alarm")
ROOT = Path(__file__).resolve().parents[1]
Key = tuple[str, str, str]  # (channel: hook | mqtt, kind, alarm source)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


@dataclass
class Series:
    name: str
    target: str = ""
    values_ms: list[float] = field(default_factory=list)
    after_poll_ms: list[float] = field(default_factory=list)
    missed: int = 0
    cycles: list[Cycle] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)  # breakdown lines
    channel: str = "hook"  # the gateway's channel name (for the breakdown)

    def row(self) -> str:
        if not self.values_ms:
            return f"  {self.name:<30} {0:>5} {'-':>8} {'-':>8} {'-':>8}  missed {self.missed}"
        v = sorted(self.values_ms)
        extra = f"  missed {self.missed}" if self.missed else ""
        return (
            f"  {self.name:<30} {len(v):>5} {percentile(v, 0.5):8.2f} {percentile(v, 0.99):8.2f} "
            f"{v[-1]:8.2f}  {self.target}{extra}"
        )


# -- receivers ----------------------------------------------------------------


class Arrivals:
    """Arrival times of notifications, by (channel, kind, source); a waiter is
    registered before the cause is sent, so nothing is missed."""

    def __init__(self) -> None:
        self._waiting: dict[Key, asyncio.Future[tuple[float, int, int]]] = {}
        self.unexpected = 0

    def expect(self, key: Key) -> asyncio.Future[tuple[float, int, int]]:
        fut: asyncio.Future[tuple[float, int, int]] = asyncio.get_running_loop().create_future()
        self._waiting[key] = fut
        return fut

    def arrived(self, key: Key, perf: float, wall_ns: int, alarm_ts: int) -> None:
        fut = self._waiting.pop(key, None)
        if fut is None or fut.done():
            self.unexpected += 1
            return
        fut.set_result((perf, wall_ns, alarm_ts))

    def forget(self, key: Key) -> None:
        self._waiting.pop(key, None)


def _key(channel: str, doc: dict[str, object]) -> tuple[Key, int]:
    alarm = doc.get("alarm")
    source = str(alarm.get("source", "")) if isinstance(alarm, dict) else ""
    ts = alarm.get("ts", 0) if isinstance(alarm, dict) else 0
    kind = str(doc.get("kind", ""))
    # Bob is level 2 (after_min 0, the same step as level 1): his message is 'escalated'.
    kind = "alarm" if kind == "escalated" else kind
    return (channel, kind, source), int(ts) if isinstance(ts, int) else 0


async def start_webhook(arrivals: Arrivals) -> tuple[web.AppRunner, str]:
    async def hook(request: web.Request) -> web.Response:
        perf, wall = time.perf_counter(), time.time_ns()
        doc = await request.json()
        key, ts = _key("hook", doc)
        arrivals.arrived(key, perf, wall, ts)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/hook"


async def mqtt_subscriber(port: int, arrivals: Arrivals, ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-notify-sub", logger=log) as c:
        await c.subscribe("estate/bench/notify/#", qos=0)
        ready.set()
        async for msg in c.messages:
            perf, wall = time.perf_counter(), time.time_ns()
            assert isinstance(msg.payload, bytes | bytearray)
            key, ts = _key("mqtt", json.loads(msg.payload))
            arrivals.arrived(key, perf, wall, ts)


# -- servers ------------------------------------------------------------------


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not start")


def start_gateway(site: Path, logfile: Path, profile: str | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable]
    if profile:
        cmd += ["-m", "cProfile", "-o", profile]
    cmd += ["-m", "gateway", "run", str(site), "--log-level", "warning"]
    out = logfile.open("wb")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- part 1: MQTT sensor --------------------------------------------------------


async def _wait(
    fut: asyncio.Future[tuple[float, int, int]], timeout: float
) -> tuple[float, int, int] | None:
    try:
        return await asyncio.wait_for(fut, timeout)
    except TimeoutError:
        return None


async def mqtt_cycles(
    port: int, arrivals: Arrivals, gw: subprocess.Popen[bytes], warmup: int, cycles: int
) -> tuple[Series, Series]:
    hook = Series("MQTT sensor -> webhook", "target p99 < 20")
    mq = Series("MQTT sensor -> MQTT notify", "target p99 < 20", channel="mq")
    record: list[Cycle] = []
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-source", logger=log) as pub:

        async def send(dev: str, value: float) -> tuple[float, int]:
            wall = time.time_ns()
            body = json.dumps({"t": value, "sent": wall})
            t0 = time.perf_counter()
            await pub.publish(f"bench/{dev}/t", body, qos=0)
            return t0, wall

        # Wait for the gateway: sensor 0 above the limit until its alarm arrives.
        dev, src = sensor(0), f"{sensor(0)}.t"
        first = arrivals.expect(("hook", "alarm", src))
        deadline = time.monotonic() + 90
        while not first.done():
            if gw.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the gateway did not notify (exit code {gw.returncode})")
            await send(dev, MQTT_LIMIT + 40)
            await asyncio.sleep(0.5)
        await send(dev, MQTT_LIMIT - 30)
        await asyncio.sleep(0.5)
        for i in range(1, 1 + warmup + cycles):
            dev, src = sensor(i), f"{sensor(i)}.t"
            futs = [arrivals.expect((ch, "alarm", src)) for ch in ("hook", "mqtt")]
            t0, wall = await send(dev, MQTT_LIMIT + 40)
            got = [await _wait(f, 5.0) for f in futs]
            cleared = [arrivals.expect((ch, "cleared", src)) for ch in ("hook", "mqtt")]
            await send(dev, MQTT_LIMIT - 30)
            for f in cleared:
                await _wait(f, 5.0)
            if i > warmup:
                cycle = Cycle(src, wall)
                for series, arrival in zip((hook, mq), got, strict=True):
                    if arrival is None:
                        series.missed += 1
                    else:
                        series.values_ms.append((arrival[0] - t0) * 1000)
                        cycle.arrived_ns[series.channel] = arrival[1]
                record.append(cycle)
            await asyncio.sleep(random.uniform(0.002, 0.01))
    hook.cycles = mq.cycles = record
    return hook, mq


# -- part 2: Modbus point -------------------------------------------------------


def sim_devices(registers: int) -> list[SimulatedDevice]:
    spec = ValueSpec(DataType.UINT16)
    pts = [SimPoint(f"r{i}", Table.HOLDING, i, spec, 100) for i in range(registers)]
    return [SimulatedDevice(1, pts), SimulatedDevice(2, pts)]


async def modbus_cycles(
    sim: ModbusSimulator,
    arrivals: Arrivals,
    unit: int,
    device: str,
    period: float,
    registers: int,
    cycles: int,
) -> Series:
    series = Series(
        f"Modbus {period:g} s poll -> webhook", f"target p99 <= {period * 1000 + 20:.0f}"
    )
    dev = sim.device(unit)
    warm = 2
    for i in range(warm + cycles):
        reg = f"r{i % registers}"
        src = f"{device}.{reg}"
        await asyncio.sleep(random.uniform(0, period))
        fut = arrivals.expect(("hook", "alarm", src))
        wall, t0 = time.time_ns(), time.perf_counter()
        dev.set(reg, MODBUS_LIMIT + 1000)
        got = await _wait(fut, 60.0 if i == 0 else period * 3 + 5)
        cleared = arrivals.expect(("hook", "cleared", src))
        dev.set(reg, 100)
        await _wait(cleared, period * 3 + 5)
        if i < warm:
            if got is None:
                raise SystemExit(f"no notification for {src}: is the Modbus driver polling?")
            continue
        if got is None:
            series.missed += 1
            continue
        series.values_ms.append((got[0] - t0) * 1000)
        series.after_poll_ms.append((got[1] - got[2]) / 1e6)
        series.cycles.append(Cycle(src, wall, {"hook": got[1]}))
    return series


# -- orchestration --------------------------------------------------------------


async def latency(args: argparse.Namespace, workdir: Path) -> list[Series]:
    broker, port = start_broker(workdir)
    arrivals = Arrivals()
    runner, hook_url = await start_webhook(arrivals)
    ready = asyncio.Event()
    sub = asyncio.create_task(mqtt_subscriber(port, arrivals, ready))
    sim: ModbusSimulator | None = None
    gw: subprocess.Popen[bytes] | None = None
    out: list[Series] = []
    try:
        await asyncio.wait_for(ready.wait(), 10)
        want_modbus = "modbus" in args.only
        if want_modbus:
            sim = ModbusSimulator(sim_devices(args.registers))
            await sim.start()
        spec = SiteSpec(
            data_dir=workdir / "data",
            broker_port=port,
            hook_url=hook_url,
            sensors=1 + args.warmup + args.mqtt_cycles,
            modbus_port=sim.port if sim is not None else None,
            registers=args.registers,
            period=args.period,
            period2=args.period2,
        )
        site = write_site(spec, workdir / "site.yaml")
        gw = start_gateway(site, workdir / "gateway.log", args.profile)
        t_start = time.perf_counter()
        hook, mq = await mqtt_cycles(port, arrivals, gw, args.warmup, args.mqtt_cycles)
        print(f"  (gateway up and notifying after {time.perf_counter() - t_start:.1f} s)")
        if "mqtt" in args.only:
            out += [hook, mq]
            print(hook.row(), flush=True)
            print(mq.row(), flush=True)
        if sim is not None:
            for unit, device, period in ((1, "mb1000", args.period), (2, "mb0500", args.period2)):
                if args.modbus_cycles2 == 0 and unit == 2:
                    continue
                n = args.modbus_cycles if unit == 1 else args.modbus_cycles2
                s = await modbus_cycles(sim, arrivals, unit, device, period, args.registers, n)
                out.append(s)
                print(s.row(), flush=True)
        if gw.poll() is not None:
            print(f"  the gateway stopped (exit {gw.returncode}); see its log below")
    finally:
        if gw is not None:
            await asyncio.to_thread(stop_process, gw)
            for s in out:
                s.stages = breakdown(workdir / "data" / "gateway.db", s.name, s.cycles, s.channel)
            text = (workdir / "gateway.log").read_text(errors="replace").strip()
            if text:
                lines = text.splitlines()
                print(f"  gateway log ({len(lines)} lines, last 15):")
                for line in lines[-15:]:
                    print(f"    {line}")
        sub.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await sub
        await runner.cleanup()
        if sim is not None:
            await sim.stop()
        stop_process(broker)
    return out


def print_table(series: Sequence[Series], engine: EngineFigures | None) -> None:
    print("\nSummary (latency in ms, nearest-rank percentiles)")
    if series:
        print(f"  {'path':<30} {'n':>5} {'p50':>8} {'p99':>8} {'max':>8}")
        for s in series:
            print(s.row())
        for s in series:
            if s.after_poll_ms:
                v = sorted(s.after_poll_ms)
                print(
                    f"  {s.name + ', after poll':<30} {len(v):>5} {percentile(v, 0.5):8.2f} "
                    f"{percentile(v, 0.99):8.2f} {v[-1]:8.2f}  (alarm ts -> webhook)"
                )
        print("\nWhere the time goes (gateway timestamps from its event store)")
        for s in series:
            for line in s.stages:
                print(line)
    if engine is not None:
        print(engine.table())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts: under a minute")
    ap.add_argument("--only", nargs="*", default=["mqtt", "modbus", "engine"])
    ap.add_argument("--mqtt-cycles", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=40, help="MQTT cycles not recorded")
    ap.add_argument("--modbus-cycles", type=int, default=60, help="cycles at --period")
    ap.add_argument("--modbus-cycles2", type=int, default=60, help="cycles at --period2 (0: skip)")
    ap.add_argument("--period", type=float, default=1.0, help="poll period of unit 1 (s)")
    ap.add_argument("--period2", type=float, default=0.5, help="poll period of unit 2 (s)")
    ap.add_argument("--registers", type=int, default=100, help="points per Modbus unit")
    ap.add_argument("--points", type=int, default=10_000, help="engine: points")
    ap.add_argument("--readings", type=int, default=200_000, help="engine: readings per run")
    ap.add_argument("--batch", type=int, default=1_000, help="engine: readings per batch")
    ap.add_argument("--profile", help="run the gateway under cProfile, writing this file")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (site file, log)")
    args = ap.parse_args()
    if args.quick:
        args.mqtt_cycles, args.warmup = 100, 30
        args.modbus_cycles, args.modbus_cycles2 = 10, 0
        args.readings, args.points = 50_000, 5_000
    logging.basicConfig(level=logging.WARNING)
    print(
        f"alarm latency bench: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"parts: {' '.join(args.only)}"
    )
    series: list[Series] = []
    workdir = Path(tempfile.mkdtemp(prefix="alarm-bench-"))
    try:
        if "mqtt" in args.only or "modbus" in args.only:
            print(
                f"\nLatency through the gateway subprocess: MQTT {args.mqtt_cycles} cycles "
                f"(+{args.warmup} warm-up); Modbus {args.modbus_cycles} at {args.period:g} s"
                + (f", {args.modbus_cycles2} at {args.period2:g} s" if args.modbus_cycles2 else "")
            )
            series = run_loop(latency(args, workdir))
        engine = None
        if "engine" in args.only:
            print(
                f"\nEngine on one core: {args.readings:,} readings over {args.points:,} points, "
                f"batches of {args.batch:,}, SQLite event store"
            )
            engine = run_loop(run_engine(workdir, args.points, args.readings, args.batch))
        print_table(series, engine)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.profile:
        import pstats

        print(f"\ncProfile of the gateway: {args.profile}")
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
