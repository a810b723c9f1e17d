"""Modbus polling: the gateway's driver beside a bare pymodbus client loop, in one run.

Setup: ``--sim-procs`` simulator processes (bench/modbus_sim_proc.py), each on
its own port serving its share of ``--devices`` unit ids with ``--registers``
holding registers each, so that the simulators are not the limit (their CPU
is printed). ``--connections`` TCP connections are spread over the
simulators, each polling its share of the units. The measured client runs in
a process of its own (bench/modbus_poll_proc.py); this process reads its CPU
time (user + system, psutil) at the edges of the measuring window, after a
warm-up, and its peak RSS (VmHWM) at the end. CPU 100 % is one core.

Mode A, ``throughput``: every device at a tiny interval, so the pollers are
always busy. The bare loop (per connection ``read_holding_registers(0,
count=registers, device_id=u)`` round-robin over its units, nothing decoded)
and the gateway (ModbusDriver in a RuntimeContext with a Bus, every register
decoded into a Reading and consumed) use the same connections to the same
servers, one after the other. Printed: requests/s of each and the ratio
(target: gateway >= 80 % of the bare loop).

Mode B, ``period``: every device at ``--interval`` (1 s). Printed: requests/s
(should be devices / interval), freshness (age of each device's newest
reading, sampled for every device every 100 ms) p50/p99/max, gateway CPU %
and peak RSS (targets at 1000 devices x 20 registers: p99 < 1.2 s, CPU under
one core).

Run: ``.venv/bin/python bench/modbus_poll.py [--devices 1000] [--mode both]``
(about a minute with the defaults). ``--profile out.prof`` runs the
gateway of mode A under cProfile and prints its top functions (the profiled
run is slower; its figures are not the gateway's).
"""

from __future__ import annotations

import argparse
import json
import math
import pstats
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
MAX_UNITS = 255  # unit ids 1..255 per simulator (what SimulatedDevice and the config accept)


@dataclass
class Sim:
    index: int
    proc: subprocess.Popen[str]
    port: int
    units: list[int]


@dataclass
class Run:
    """One measured client process: its own report plus what psutil saw from here."""

    role: str
    report: dict[str, Any]
    cpu_pct: float
    peak_rss_mb: float
    sim_cpu_pct: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return float(self.report["requests"]) / float(self.report["wall_s"])


def start_sims(args: argparse.Namespace) -> list[Sim]:
    per = math.ceil(args.devices / args.sim_procs)
    if per > MAX_UNITS:
        raise SystemExit(
            f"{args.devices} devices over {args.sim_procs} simulators is {per} unit ids each; "
            f"at most {MAX_UNITS}: raise --sim-procs"
        )
    sims: list[Sim] = []
    left = args.devices
    for i in range(args.sim_procs):
        n = min(per, left)
        left -= n
        if n == 0:
            break
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "modbus_sim_proc.py"),
                "--units",
                f"1-{n}",
                "--registers",
                str(args.registers),
                "--layout",
                args.layout,
                "--server",
                args.server,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        sims.append(Sim(i, proc, 0, list(range(1, n + 1))))
    for sim in sims:
        assert sim.proc.stdout is not None
        line = sim.proc.stdout.readline()
        if not line.startswith("PORT "):
            stop_sims(sims)
            raise SystemExit(f"simulator {sim.index} did not start (said {line!r})")
        sim.port = int(line.split()[1])
    return sims


def stop_sims(sims: list[Sim]) -> None:
    for sim in sims:
        if sim.proc.poll() is None:
            sim.proc.send_signal(signal.SIGTERM)
    for sim in sims:
        try:
            sim.proc.wait(10)
        except subprocess.TimeoutExpired:
            sim.proc.kill()
            sim.proc.wait()


def connections(sims: list[Sim], count: int) -> list[dict[str, Any]]:
    """``count`` connections, round-robin over the simulators; each simulator's units
    split evenly over its connections."""
    if count < len(sims):
        raise SystemExit(f"--connections {count} < {len(sims)} simulators: each needs one")
    out: list[dict[str, Any]] = []
    for sim in sims:
        mine = len(range(sim.index, count, len(sims)))
        for k in range(mine):
            out.append({"sim": sim.index, "port": sim.port, "units": sim.units[k::mine]})
    return out


def measure(
    role: str,
    plan: dict[str, Any],
    sims: list[Sim],
    profile: str | None = None,
) -> Run:
    cmd = [
        sys.executable,
        str(HERE / "modbus_poll_proc.py"),
        "--plan",
        json.dumps({**plan, "role": role}),
    ]
    if profile:
        cmd += ["--profile", profile]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    ps = psutil.Process(proc.pid)
    sim_ps = [psutil.Process(s.proc.pid) for s in sims]
    try:
        _expect(proc, "START")
        c0, s0, t0 = _cpu(ps), [_cpu(p) for p in sim_ps], time.perf_counter()
        line = _expect(proc, "END ")
        c1, s1, t1 = _cpu(ps), [_cpu(p) for p in sim_ps], time.perf_counter()
        peak = _peak_rss_mb(ps)
    finally:
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    wall = t1 - t0
    return Run(
        role,
        json.loads(line[4:]),
        (c1 - c0) / wall * 100,
        peak,
        [(b - a) / wall * 100 for a, b in zip(s0, s1, strict=True)],
    )


def _expect(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(prefix):
        proc.wait(30)
        raise SystemExit(f"measured process stopped (exit {proc.returncode}); said {line!r}")
    return line.rstrip("\n")


def _cpu(ps: psutil.Process) -> float:
    t = ps.cpu_times()
    return float(t.user + t.system)


def _peak_rss_mb(ps: psutil.Process) -> float:
    for line in Path(f"/proc/{ps.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float(ps.memory_info().rss) / 2**20


def _sims(run: Run) -> str:
    return f"{sum(run.sim_cpu_pct):4.0f} ({', '.join(f'{c:.0f}' for c in run.sim_cpu_pct)})"


def _ms(seconds: float | None) -> str:
    return "    -" if seconds is None else f"{seconds * 1000:7.0f}"


def throughput(args: argparse.Namespace, sims: list[Sim], conns: list[dict[str, Any]]) -> None:
    plan = _plan(args, conns, args.fast_interval)
    print(
        f"\nMode A, throughput: {args.devices} devices, interval {args.fast_interval:g} s "
        f"(always due), {args.rounds} round(s) of {args.seconds:g} s "
        f"after {args.warmup:g} s warm-up"
    )
    print(
        f"  {'round':<5} {'client':<8} {'req/s':>8} {'readings/s':>10} {'errors':>6} "
        f"{'CPU %':>6} {'CPU us/req':>10} {'peak RSS MB':>11}  sims CPU % (each)"
    )
    ratios: list[float] = []
    rates: dict[str, list[float]] = {"bare": [], "gateway": []}
    for r in range(args.rounds):
        runs = {}
        for role in ("bare", "gateway"):
            run = measure(role, plan, sims)
            runs[role] = run
            rates[role].append(run.rate)
            rep = run.report
            readings = (
                f"{rep['readings'] / rep['wall_s']:10,.0f}" if "readings" in rep else " " * 10
            )
            errors = rep.get("errors", rep.get("failures", 0))
            print(
                f"  {r + 1:<5} {role:<8} {run.rate:8,.0f} {readings} {errors:6d} "
                f"{run.cpu_pct:6.0f} {run.cpu_pct * 1e4 / run.rate:10.0f} "
                f"{run.peak_rss_mb:11.0f}  {_sims(run)}",
                flush=True,
            )
        ratios.append(runs["gateway"].rate / runs["bare"].rate)
    print(
        f"  median req/s: bare {statistics.median(rates['bare']):,.0f}, "
        f"gateway {statistics.median(rates['gateway']):,.0f}; "
        f"gateway / bare = {statistics.median(ratios):.0%} (target >= 80 %)"
    )
    if args.profile:
        measure("gateway", plan, sims, profile=args.profile)
        print(f"\n  cProfile of the gateway process (mode A, slowed by profiling): {args.profile}")
        stats = pstats.Stats(args.profile)
        stats.sort_stats("tottime").print_stats(args.profile_top)


def period(args: argparse.Namespace, sims: list[Sim], conns: list[dict[str, Any]]) -> None:
    plan = _plan(args, conns, args.interval)
    print(
        f"\nMode B, period: {args.devices} devices at {args.interval:g} s, "
        f"{args.seconds:g} s after {args.warmup:g} s warm-up"
    )
    run = measure("gateway", plan, sims)
    rep = run.report
    wall = rep["wall_s"]
    print(
        f"  requests/s           {run.rate:10,.1f}  (expected {args.devices / args.interval:,.0f};"
        f" failures {rep['failures']}, missed ticks {rep['missed']})"
    )
    print(f"  readings/s           {rep['readings'] / wall:10,.0f}")
    print(
        f"  freshness ms         p50 {_ms(rep['fresh_p50'])}  p99 {_ms(rep['fresh_p99'])}  "
        f"max {_ms(rep['fresh_max'])}  ({rep['fresh_samples']:,} samples; target p99 < 1200)"
    )
    if rep["never_read_samples"]:
        print(f"  samples of devices never read yet: {rep['never_read_samples']}")
    print(f"  gateway CPU %        {run.cpu_pct:10.1f}  (100 = one core; target < 100)")
    print(f"  gateway peak RSS MB  {run.peak_rss_mb:10.0f}")
    print(f"  simulators CPU %     {_sims(run)}")
    print(f"  config validation    {rep['config_s']:10.1f} s (before the warm-up)")


def _plan(args: argparse.Namespace, conns: list[dict[str, Any]], interval: float) -> dict[str, Any]:
    return {
        "connections": conns,
        "registers": args.registers,
        "layout": args.layout,
        "interval_s": interval,
        "warmup_s": args.warmup,
        "seconds": args.seconds,
        "loop": args.loop,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--registers", type=int, default=20, help="holding registers per device")
    ap.add_argument(
        "--layout",
        choices=("uint16", "float32"),
        default="uint16",
        help="uint16: one point per register; float32: one per two registers",
    )
    ap.add_argument("--sim-procs", type=int, default=4)
    ap.add_argument(
        "--server",
        choices=("sim", "plain"),
        default="sim",
        help="sim: drivers.modbus.simulator; plain: pymodbus ModbusTcpServer",
    )
    ap.add_argument("--connections", type=int, default=8, help="TCP connections (both clients)")
    ap.add_argument("--seconds", type=float, default=20, help="measuring window of each run")
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--mode", choices=("throughput", "period", "both"), default="both")
    ap.add_argument("--rounds", type=int, default=1, help="mode A: bare/gateway pairs")
    ap.add_argument("--interval", type=float, default=1.0, help="mode B poll interval (s)")
    ap.add_argument("--fast-interval", type=float, default=0.001, help="mode A poll interval (s)")
    ap.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of both clients (the gateway runs on uvloop)",
    )
    ap.add_argument("--profile", help="mode A: also run the gateway under cProfile, to this file")
    ap.add_argument("--profile-top", type=int, default=30)
    args = ap.parse_args()
    sims = start_sims(args)
    try:
        conns = connections(sims, args.connections)
        print(
            f"{args.devices} devices x {args.registers} registers ({args.layout}), "
            f"{len(conns)} connections over {len(sims)} simulator processes ({args.server}); "
            f"clients on {args.loop}; {psutil.cpu_count()} CPUs"
        )
        if args.mode in ("throughput", "both"):
            throughput(args, sims, conns)
        if args.mode in ("period", "both"):
            period(args, sims, conns)
    finally:
        stop_sims(sims)


if __name__ == "__main__":
    main()
