"""Benchmark of the time-series path into InfluxDB 1.x. Prints figures; asserts nothing.

Starts its own influxd (the test fixtures' Server helper) on a free port with a
temporary data directory, then measures:

a. the raw ceiling: a bare loop POSTing pre-formatted 5000-point bodies;
b. end to end: readings published on the bus -> TimeseriesWriter (deadband,
   batching, outbox, sender) -> InfluxDB1Sink, until the last one is written;
c. outbox replay: 500k points queued while the historian is unreachable,
   then a new writer drains them;
d. the process RSS after each phase, and its peak.

    .venv/bin/python bench/sinks.py [--points N] [--runs R]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fixtures.servers

from gateway.bus import Bus
from gateway.config.storage import InfluxDB1SinkConfig, TimeseriesConfig
from gateway.model import Reading
from gateway.storage.influxdb1 import InfluxDB1Sink
from gateway.storage.lineprotocol import LineFormatter
from gateway.storage.outbox import Outbox
from gateway.storage.sink import SeriesCatalog
from gateway.storage.writer import RetryPolicy, TimeseriesWriter
from tests.fixtures.servers import Server, free_port, influxd_server

POINTS = 200  # 20 devices x 10 points
BATCH = 5000
T0 = 1_767_225_600_000_000_000
SECOND = 1_000_000_000


def start_influxd(workdir: Path) -> Server:
    srv = influxd_server(workdir)
    srv.start()
    return srv


def catalog() -> SeriesCatalog:
    return SeriesCatalog("bench", {f"dev{d}": "meter" for d in range(POINTS // 10)})


def readings(n: int, t0: int) -> list[Reading]:
    names = [f"dev{p // 10}.point{p % 10}" for p in range(POINTS)]
    return [Reading(names[i % POINTS], 20.0 + i % 1000 / 10, t0 + i) for i in range(n)]


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


async def raw_ceiling(url: str, n: int) -> float:
    fmt = LineFormatter(catalog())
    rs = readings(n, T0)
    began = time.perf_counter()
    bodies = [fmt.format(rs[i : i + BATCH]).body for i in range(0, n, BATCH)]
    formatting = time.perf_counter() - began
    async with aiohttp.ClientSession() as http:
        await http.post(f"{url}/query", data={"q": 'CREATE DATABASE "raw"'})
        began = time.perf_counter()
        for body in bodies:
            async with http.post(
                f"{url}/write", params={"db": "raw", "precision": "ns"}, data=body
            ) as resp:
                if resp.status != 204:
                    raise RuntimeError(await resp.text())
        posting = time.perf_counter() - began
    print(f"  line protocol formatting: {n / formatting:,.0f} points/s")
    return n / posting


def make_writer(
    url: str, db: str, outbox: Outbox, bus: Bus, retry: RetryPolicy | None = None
) -> TimeseriesWriter:
    sink_cfg = InfluxDB1SinkConfig(type="influxdb1", url=url, database=db)
    cfg = TimeseriesConfig(
        sink=sink_cfg, batch_size=BATCH, flush_interval_s=0.2, default_heartbeat_s=None
    )
    sub = bus.subscribe("timeseries", (Reading,), maxsize=20_000)
    return TimeseriesWriter(sub, InfluxDB1Sink(sink_cfg, catalog()), outbox, cfg, retry=retry)


async def wait_for(check: Callable[[], bool]) -> None:
    while not check():  # noqa: ASYNC110 - polls writer stats, which have no event
        await asyncio.sleep(0.002)


async def end_to_end(url: str, workdir: Path, n: int, run: int) -> tuple[float, float]:
    bus = Bus()
    outbox = Outbox(workdir / f"e2e-{run}.db")
    writer = make_writer(url, f"e2e{run}", outbox, bus)
    task = asyncio.create_task(writer.run())
    rs = readings(n, T0 + run * 10 * n)
    began = time.perf_counter()
    for i in range(0, n, 1000):
        for r in rs[i : i + 1000]:
            await bus.publish(r)
        await asyncio.sleep(0)  # a driver yields between polls
    published = time.perf_counter() - began
    await wait_for(lambda: writer.stats().written >= n)
    total = time.perf_counter() - began
    await writer.stop()
    await task
    await outbox.close()
    return n / published, n / total


async def replay(url: str, workdir: Path, n: int) -> tuple[float, float]:
    path = workdir / "replay.db"
    bus = Bus()
    outbox = Outbox(path)
    dead = f"http://127.0.0.1:{free_port()}"
    slow_retry = RetryPolicy(initial_s=30, max_s=30)
    writer = make_writer(dead, "replay", outbox, bus, slow_retry)
    task = asyncio.create_task(writer.run())
    began = time.perf_counter()
    for start in range(0, n, 50_000):  # generated in chunks: the peak RSS is the writer's
        chunk = readings(50_000, T0 + 10**15 + start)
        await bus.publish_many(chunk)
    await wait_for(lambda: writer.stats().pending_points >= n)
    filling = time.perf_counter() - began
    await writer.stop(timeout=0)
    await task
    await outbox.close()

    outbox = Outbox(path)
    writer = make_writer(url, "replay", outbox, Bus())
    began = time.perf_counter()
    task = asyncio.create_task(writer.run())
    await wait_for(lambda: writer.stats().written >= n)
    draining = time.perf_counter() - began
    await writer.stop()
    await task
    await outbox.close()
    return n / filling, n / draining


async def main(points: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sinks-") as tmp:
        workdir = Path(tmp)
        (workdir / "influx").mkdir()
        srv = start_influxd(workdir / "influx")
        try:
            print(f"InfluxDB 1.x at {srv.url}; {points:,} points per run, batches of {BATCH}")
            print(f"RSS at start: {rss_mb():.0f} MB")
            print("a. raw ceiling (bare POST loop, 1 connection)")
            raw = [await raw_ceiling(srv.url, points) for _ in range(runs)]
            print(f"  POST: {', '.join(f'{x:,.0f}' for x in raw)} points/s")
            print(f"  RSS: {rss_mb():.0f} MB")
            print("b. bus -> writer -> InfluxDB 1.x, end to end")
            e2e = [await end_to_end(srv.url, workdir, points, run) for run in range(runs)]
            for pub, total in e2e:
                print(f"  published {pub:,.0f}/s; all written {total:,.0f} points/s")
            print(f"  median end to end: {statistics.median(t for _, t in e2e):,.0f} points/s")
            print(f"  RSS: {rss_mb():.0f} MB")
            print("c. outbox replay (500k points queued while the historian is down)")
            fill, drain = await replay(srv.url, workdir, 500_000)
            print(f"  filled at {fill:,.0f} points/s; drained at {drain:,.0f} points/s")
            print(f"  RSS: {rss_mb():.0f} MB")
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"d. peak RSS of this process: {peak:.0f} MB")
        finally:
            srv.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=300_000, help="points per run (a, b)")
    parser.add_argument("--runs", type=int, default=3, help="runs of a and b")
    args = parser.parse_args()
    asyncio.run(main(args.points, args.runs))
