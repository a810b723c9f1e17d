"""The measured side of bench/modbus_poll.py: a bare pymodbus loop or the gateway's driver.

Started by bench/modbus_poll.py as its own process, so that its CPU time and
RSS are its own. Reads a JSON plan (``--plan``) naming the role, the TCP
connections (port and unit ids of each), the register layout, the poll
interval, the warm-up and the measuring window. Speaks a line protocol on
stdout so that the parent can read this process' CPU time with psutil at the
exact edges of the window:

* ``START`` when the warm-up is over (the window opens);
* ``END <json>`` when the window closes: requests, readings, freshness, ...;
* then it waits for its stdin to close and exits.

Roles:

* ``bare``: per connection one ``AsyncModbusTcpClient`` in a loop of
  ``read_holding_registers(0, count=registers, device_id=u)``, round-robin
  over the connection's units; nothing is decoded or published.
* ``gateway``: :class:`~drivers.modbus.driver.ModbusDriver` with one
  connection per plan connection (the same sockets as ``bare``), each unit a
  device with one point per value of the layout, in a real
  :class:`~gateway.context.RuntimeContext` with a :class:`~gateway.bus.Bus`.
  A consumer subscribed to readings keeps the ts of the newest reading of
  each device; every 100 ms the age of that reading (now - ts) is sampled for
  every device, which gives the freshness percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from pymodbus.client import AsyncModbusTcpClient

from drivers.modbus.config import ModbusDriverConfig
from drivers.modbus.driver import ModbusDriver
from gateway.bus import Bus, Subscription
from gateway.clock import SystemClock
from gateway.context import RuntimeContext
from gateway.health import Health
from gateway.model import Reading

SAMPLE_S = 0.1  # freshness sampling period


def device_id(conn: dict[str, Any], unit: int) -> str:
    return f"s{conn['sim']}u{unit}"


def point_map(registers: int, layout: str) -> dict[str, dict[str, Any]]:
    """The driver's points of one device: the same registers the simulator holds."""
    if layout == "uint16":
        return {f"r{i}": {"address": i} for i in range(registers)}
    return {f"f{i}": {"address": 2 * i, "type": "float32"} for i in range(registers // 2)}


def driver_config(plan: dict[str, Any], base: Path) -> ModbusDriverConfig:
    points = point_map(plan["registers"], plan["layout"])
    block = {
        "type": "modbus",
        "id": "bench",
        "connections": [
            {
                "id": f"c{i}",
                "host": "127.0.0.1",
                "port": conn["port"],
                "timeout_s": 2.0,
                "devices": [
                    {
                        "device": device_id(conn, u),
                        "unit": u,
                        "interval_s": plan["interval_s"],
                        "points": points,
                    }
                    for u in conn["units"]
                ],
            }
            for i, conn in enumerate(plan["connections"])
        ],
    }
    return ModbusDriverConfig.model_validate(block, context={"base_dir": base})


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def wait_stdin_closed() -> None:
    """Block until the parent closes our stdin (it has read what it needs)."""
    await asyncio.to_thread(sys.stdin.read)


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


# --- bare pymodbus loop --------------------------------------------------------------


async def run_bare(plan: dict[str, Any]) -> dict[str, Any]:
    counts = [0] * len(plan["connections"])
    errors = [0] * len(plan["connections"])
    registers: int = plan["registers"]
    stop = False  # Python 3.11's wait_for (inside pymodbus) can swallow a cancel: ask first

    async def loop(i: int, port: int, units: list[int]) -> None:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, reconnect_delay=0)
        if not await client.connect():
            raise RuntimeError(f"bare loop: cannot connect to port {port}")
        try:
            while not stop:
                for u in units:
                    rr = await client.read_holding_registers(0, count=registers, device_id=u)
                    if rr.isError() or len(rr.registers) != registers:
                        errors[i] += 1
                    else:
                        counts[i] += 1
        finally:
            client.close()

    tasks = [
        asyncio.create_task(loop(i, c["port"], c["units"]))
        for i, c in enumerate(plan["connections"])
    ]
    await asyncio.sleep(plan["warmup_s"])
    _check(tasks)
    emit("START")
    c0, e0, t0 = sum(counts), sum(errors), time.perf_counter()
    await asyncio.sleep(plan["seconds"])
    c1, e1, t1 = sum(counts), sum(errors), time.perf_counter()
    _check(tasks)
    stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"requests": c1 - c0, "errors": e1 - e0, "wall_s": t1 - t0}


def _check(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        if task.done():
            task.result()  # raises what killed it


# --- the gateway's driver ------------------------------------------------------------


class Freshness:
    """Newest reading per device (fed by the consumer) and the sampled ages."""

    def __init__(self, cfg: ModbusDriverConfig) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []
        for dev in cfg.resolved:
            for point in dev.output_names():
                self.index[f"{dev.device}.{point}"] = len(self.names)
            self.names.append(dev.device)
        self.newest = [0] * len(self.names)
        self.readings = 0
        self.ages: list[float] = []
        self.never = 0  # samples of devices without any reading yet

    async def consume(self, sub: Subscription) -> None:
        index, newest = self.index, self.newest
        while True:
            batch = await sub.get_batch(10_000)
            for msg in batch:
                if type(msg) is Reading:
                    i = index[msg.point]
                    if msg.ts > newest[i]:
                        newest[i] = msg.ts
            self.readings += len(batch)

    async def sample(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            now = time.time_ns()
            for ts in self.newest:
                if ts:
                    self.ages.append((now - ts) / 1e9)
                else:
                    self.never += 1


async def run_gateway(plan: dict[str, Any]) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        t_cfg = time.perf_counter()
        cfg = driver_config(plan, base)
        config_s = time.perf_counter() - t_cfg
        bus = Bus()
        clock = SystemClock()
        fresh = Freshness(cfg)
        sub = bus.subscribe("bench", (Reading,), maxsize=50_000)
        ctx = RuntimeContext(
            driver_id=cfg.id,
            site="bench",
            bus=bus,
            clock=clock,
            health=Health(clock, bus.publish),
            data_dir=base,
            device_kinds={},
            owned_devices=cfg.devices(),
        )
        driver = ModbusDriver(cfg)
        tasks = [
            asyncio.create_task(driver.run(ctx), name="driver"),
            asyncio.create_task(fresh.consume(sub), name="consumer"),
        ]
        try:
            await asyncio.sleep(plan["warmup_s"])
            _check(tasks)
            sampler = asyncio.create_task(fresh.sample(), name="sampler")
            tasks.append(sampler)
            emit("START")
            r0, n0, t0 = _requests(driver), fresh.readings, time.perf_counter()
            p0 = _poll_stats(driver)
            await asyncio.sleep(plan["seconds"])
            r1, n1, t1 = _requests(driver), fresh.readings, time.perf_counter()
            p1 = _poll_stats(driver)
            _check(tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ctx.aclose()
            bus.close()
    ages = sorted(fresh.ages)
    st = sub.stats()
    return {
        "requests": r1 - r0,
        "readings": n1 - n0,
        "wall_s": t1 - t0,
        "config_s": config_s,
        "devices": len(fresh.names),
        "reads": p1["reads"] - p0["reads"],
        "failures": p1["failures"] - p0["failures"],
        "missed": p1["missed"] - p0["missed"],
        "fresh_p50": percentile(ages, 50),
        "fresh_p99": percentile(ages, 99),
        "fresh_max": ages[-1] if ages else None,
        "fresh_samples": len(ages),
        "never_read_samples": fresh.never,
        "bus_high_water": st.high_water,
        "bus_blocked": st.blocked_publishes,
    }


def _requests(driver: ModbusDriver) -> int:
    return sum(link.requests for link in driver.links.values())


def _poll_stats(driver: ModbusDriver) -> dict[str, int]:
    out = {"reads": 0, "failures": 0, "missed": 0}
    for poller in driver.pollers.values():
        out["reads"] += poller.stats.reads
        out["failures"] += poller.stats.failures
        out["missed"] += poller.stats.missed
    return out


# --- entry ---------------------------------------------------------------------------


async def main_async(plan: dict[str, Any]) -> None:
    if plan["role"] == "bare":
        result = await run_bare(plan)
    else:
        result = await run_gateway(plan)
    emit("END " + json.dumps(result))
    await wait_stdin_closed()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", required=True, help="JSON plan (see bench/modbus_poll.py)")
    ap.add_argument("--profile", help="write a cProfile of the whole run to this file")
    args = ap.parse_args()
    plan = json.loads(args.plan)
    if plan["loop"] == "uvloop":
        import uvloop

        runner: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run
    else:
        runner = asyncio.run
    if not args.profile:
        runner(main_async(plan))
        return
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    try:
        runner(main_async(plan))
    finally:
        prof.disable()
        prof.dump_stats(args.profile)


if __name__ == "__main__":
    main()
