"""The writer end to end through the v2 sink (influxdb-client) into VictoriaMetrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.bus import Bus
from gateway.config.storage import InfluxDBSinkConfig, TimeseriesConfig
from gateway.model import Reading
from gateway.storage.influxdb import InfluxDBSink
from gateway.storage.outbox import Outbox
from gateway.storage.sink import SeriesCatalog
from gateway.storage.writer import RetryPolicy, TimeseriesWriter
from tests.fixtures.servers import Server
from tests.gateway.storage.tsutil import RecordingSink, eventually, unique, vm_export

MS = 1_000_000
T0 = 1_767_225_600_000 * MS  # VictoriaMetrics keeps ms: whole-ms timestamps compare exactly


async def test_ten_thousand_readings_arrive_exactly(
    victoriametrics: Server, tmp_path: Path
) -> None:
    kind = unique("k")
    readings = [
        Reading(f"d{i % 10}.p{i % 3}", (i * 1.25 + 0.1) if i % 4 else i, T0 + i * MS)
        for i in range(10_000)
    ]
    cfg = TimeseriesConfig(
        sink=InfluxDBSinkConfig(type="influxdb", url=victoriametrics.url, bucket="gw"),
        batch_size=1000,
        flush_interval_s=0.02,
        default_heartbeat_s=None,
    )
    assert isinstance(cfg.sink, InfluxDBSinkConfig)
    bus = Bus()
    sub = bus.subscribe("timeseries", (Reading,), maxsize=100_000)
    catalog = SeriesCatalog("estate", {f"d{i}": kind for i in range(10)})
    sink = RecordingSink(InfluxDBSink(cfg.sink, catalog))
    outbox = Outbox(tmp_path / "o.db")
    writer = TimeseriesWriter(sub, sink, outbox, cfg, retry=RetryPolicy(0.02, 0.2))
    task = asyncio.create_task(writer.run())
    try:
        await bus.publish_many(readings)
        await eventually(lambda: writer.stats().written == 10_000, what="10k written")
    finally:
        await writer.stop(timeout=30)
        await task
        await outbox.close()
    assert sink.accepted == readings

    want: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for r in readings:
        device, point = r.point.split(".")
        want.setdefault((f"{kind}_{point}", device), []).append((r.ts // MS, float(r.value)))
    got = {
        (s["metric"]["__name__"], s["metric"]["device"]): sorted(
            zip(s["timestamps"], map(float, s["values"]), strict=True)
        )
        for s in await vm_export(victoriametrics.url, f'{{kind="{kind}"}}')
    }
    assert got == {k: sorted(v) for k, v in want.items()}
