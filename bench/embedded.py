"""Benchmark of the embedded time-series sink.

Writes 200 points x 1000 timestamps (200k readings) in batches of 5000 into a
fresh SQLite file, then a day of one point at 1 Hz, and prints points/s, the
process RSS and the time of history() over that day.

    .venv/bin/python bench/embedded.py [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import psutil

from gateway.config.storage import EmbeddedSinkConfig
from gateway.model import Reading
from gateway.storage.embedded import EmbeddedSink

POINTS = 200
TIMESTAMPS = 1000
BATCH = 5000
SECOND = 1_000_000_000
DAY = 86_400 * SECOND


def _readings(t0: int) -> list[Reading]:
    names = [f"dev{p // 10}.point{p % 10}" for p in range(POINTS)]
    return [
        Reading(name, 20.0 + (p * 7 + t) % 100 / 10, t0 + t * SECOND)
        for t in range(TIMESTAMPS)
        for p, name in enumerate(names)
    ]


def _files_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


async def _write_all(sink: EmbeddedSink, readings: list[Reading]) -> float:
    began = time.perf_counter()
    for i in range(0, len(readings), BATCH):
        await sink.write(readings[i : i + BATCH])
    return time.perf_counter() - began


async def main(directory: Path) -> None:
    sink = EmbeddedSink(EmbeddedSinkConfig(), directory / "timeseries.db")
    await sink.start()
    try:
        now = time.time_ns() // SECOND * SECOND
        readings = _readings(now - 2 * TIMESTAMPS * SECOND)
        elapsed = await _write_all(sink, readings)
        print(
            f"write: {len(readings):,} readings ({POINTS} points x {TIMESTAMPS} timestamps, "
            f"batches of {BATCH}) in {elapsed:.2f} s = {len(readings) / elapsed:,.0f} points/s"
        )
        replay = await _write_all(sink, readings[:BATCH])
        print(f"replay of one batch: {replay * 1000:.1f} ms (idempotent upsert + rollups)")

        day_start = now - DAY
        day = [Reading("meter1.kw", float(i % 500), day_start + i * SECOND) for i in range(86_400)]
        elapsed = await _write_all(sink, day)
        print(f"write: one point, a day at 1 Hz (86,400) in {elapsed:.2f} s")

        for label, start, end, max_points in (
            ("a day, max 1000 rows (rollups)", day_start, now, 1000),
            ("an hour, max 5000 rows (raw)", now - 3600 * SECOND, now, 5000),
        ):
            began = time.perf_counter()
            rows = await sink.history("meter1.kw", start, end, max_points)
            took = time.perf_counter() - began
            print(f"history {label}: {len(rows)} rows in {took * 1000:.1f} ms")

        began = time.perf_counter()
        latest = await sink.latest([f"dev{p // 10}.point{p % 10}" for p in range(POINTS)])
        took = time.perf_counter() - began
        print(f"latest of {len(latest)} points: {took * 1000:.1f} ms")
        rss = psutil.Process().memory_info().rss
        print(f"RSS: {rss / 2**20:.0f} MiB")
        size = _files_size(directory)
        print(f"files: {size / 2**20:.1f} MiB")
    finally:
        await sink.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, help="where to put the database (default: a temp dir)")
    args = parser.parse_args()
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(main(args.dir))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(main(Path(tmp)))
