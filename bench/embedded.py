"""Benchmark of the embedded time-series sink.

Two ingest shapes, each 200k readings into a fresh file:

  realistic  100 points, receive-time timestamps 1 ms apart per point, so the
             whole run falls into one or two minutes and every batch adds to
             the rollups of minutes that already hold thousands of samples
             (the shape of bench/ingest.py: MQTT -> bus -> writer -> sink);
             in batches of 5000, then of 500 (a writer flushing on its timer)
  spread     200 points x 1000 timestamps 1 s apart, batches of 5000

then a day of one point at 1 Hz, and prints points/s, the process RSS and the
time of history() over that day.

    .venv/bin/python bench/embedded.py [--dir DIR] [--only realistic]
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
REALISTIC_POINTS = 100
REALISTIC_TOTAL = 200_000
MS = 1_000_000
SECOND = 1_000_000_000
DAY = 86_400 * SECOND


def _readings(t0: int) -> list[Reading]:
    names = [f"dev{p // 10}.point{p % 10}" for p in range(POINTS)]
    return [
        Reading(name, 20.0 + (p * 7 + t) % 100 / 10, t0 + t * SECOND)
        for t in range(TIMESTAMPS)
        for p, name in enumerate(names)
    ]


def _realistic(t0: int) -> list[Reading]:
    """100 points, each with a sample every 1 ms (receive time), interleaved."""
    names = [f"mqtt{p // 2}.{'th'[p % 2]}" for p in range(REALISTIC_POINTS)]
    return [
        Reading(name, round(20.0 + (p * 7 + t) % 1000 / 100, 2), t0 + t * MS + p)
        for t in range(REALISTIC_TOTAL // REALISTIC_POINTS)
        for p, name in enumerate(names)
    ]


async def _bench_realistic(directory: Path, batch: int) -> None:
    sink = EmbeddedSink(EmbeddedSinkConfig(), directory / f"realistic{batch}.db")
    await sink.start()
    try:
        readings = _realistic(time.time_ns())
        elapsed = await _write_all(sink, readings, batch)
        print(
            f"write realistic: {len(readings):,} readings ({REALISTIC_POINTS} points, 1 ms "
            f"apart, batches of {batch}) in {elapsed:.2f} s = "
            f"{len(readings) / elapsed:,.0f} points/s"
        )
        replay = await _write_all(sink, readings[-batch:], batch)
        print(f"  replay of the last batch: {replay * 1000:.1f} ms")
    finally:
        await sink.close()


def _files_size(directory: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in directory.glob(pattern))


async def _write_all(sink: EmbeddedSink, readings: list[Reading], batch: int = BATCH) -> float:
    began = time.perf_counter()
    for i in range(0, len(readings), batch):
        await sink.write(readings[i : i + batch])
    return time.perf_counter() - began


async def main(directory: Path, only: str | None) -> None:
    if only in (None, "realistic"):
        await _bench_realistic(directory, BATCH)
        await _bench_realistic(directory, BATCH // 10)
    if only == "realistic":
        return
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
        size = _files_size(directory, "timeseries.db*")
        print(f"files: {size / 2**20:.1f} MiB")
    finally:
        await sink.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, help="where to put the database (default: a temp dir)")
    parser.add_argument("--only", choices=("realistic",), help="run only this shape")
    args = parser.parse_args()
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(main(args.dir, args.only))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(main(Path(tmp), args.only))
