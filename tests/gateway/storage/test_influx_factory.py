"""build_sink picks the sink class from the config's type."""

from __future__ import annotations

from pathlib import Path

from pydantic import TypeAdapter

from gateway.clock import ManualClock
from gateway.config.storage import SinkConfig
from gateway.storage.influxdb import InfluxDBSink
from gateway.storage.influxdb1 import InfluxDB1Sink
from gateway.storage.sink import SeriesCatalog
from gateway.storage.sinks import build_sink

CATALOG = SeriesCatalog("estate", {})


def build(raw: dict[str, object]) -> object:
    config = TypeAdapter(SinkConfig).validate_python(raw)
    return build_sink(config, CATALOG, lambda p: Path(p), ManualClock())


def test_influxdb1() -> None:
    sink = build({"type": "influxdb1", "url": "http://db:8086", "database": "site"})
    assert isinstance(sink, InfluxDB1Sink) and sink.name == "influxdb1"
    assert sink.catalog is CATALOG


def test_influxdb_v2() -> None:
    sink = build({"type": "influxdb", "url": "http://db:8086", "bucket": "b", "token": "t"})
    assert isinstance(sink, InfluxDBSink) and sink.name == "influxdb"


def test_building_does_no_io() -> None:
    # Nothing listens on this address; constructing must not try to reach it.
    sink = build({"type": "influxdb1", "url": "http://192.0.2.1:9", "database": "x"})
    assert isinstance(sink, InfluxDB1Sink)
