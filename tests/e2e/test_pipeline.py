"""10,000 points through MQTT -> bus -> each sink, read back and compared exactly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.config.loader import load_site
from gateway.registry import load_registry
from gateway.runtime import Gateway
from tests.e2e import harness
from tests.fixtures.servers import Server

N_MSGS = 2000  # x 5 values = 10,000 points

pytestmark = pytest.mark.slow


async def _eventually(fetch: Callable[[], list[Any]], want: int, within: float = 60) -> list[Any]:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while True:
        got = await asyncio.to_thread(fetch)
        if len(got) >= want or loop.time() > end:
            return got
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("sink_type", ["embedded", "influxdb1", "influxdb"])
async def test_ten_thousand_points_arrive_exactly(
    sink_type: str,
    tmp_path: Path,
    mosquitto: Server,
    influxdb1: Server,
    victoriametrics: Server,
) -> None:
    site_id = f"e2e-{uuid.uuid4().hex[:8]}"
    prefix = f"t/{site_id}"
    db = f"db_{site_id.replace('-', '_')}"
    sinks: dict[str, dict[str, Any]] = {
        "embedded": {"type": "embedded"},
        "influxdb1": {"type": "influxdb1", "url": influxdb1.url, "database": db},
        "influxdb": {"type": "influxdb", "url": victoriametrics.url, "bucket": db},
    }
    fetchers: dict[str, Callable[[], list[tuple[str, int, float]]]] = {
        "embedded": lambda: harness.embedded_points(tmp_path / "var" / "timeseries.db"),
        "influxdb1": lambda: harness.influx1_points(influxdb1.url, db, site_id),
        "influxdb": lambda: harness.vm_points(victoriametrics.url, site_id),
    }
    path = harness.write_site(tmp_path, site_id, mosquitto.port, sinks[sink_type], prefix)
    gw = Gateway(load_site(path), load_registry(), metrics_interval=3600)
    stop = asyncio.Event()
    runner = asyncio.create_task(gw.run(stop))
    try:
        await _eventually(lambda: [1] if gw.health.devices.get("ingest") else [], 1, 20)
        await harness.publish(mosquitto.port, prefix, N_MSGS)
        got = await _eventually(fetchers[sink_type], 10_000)
    finally:
        stop.set()
        await runner
    expected = harness.expected_points(N_MSGS)
    assert len(got) == len(expected)  # nothing lost, nothing duplicated
    assert {(p, ts): v for p, ts, v in got} == expected
    assert gw.writer is not None and gw.writer.stats().quarantined == 0
