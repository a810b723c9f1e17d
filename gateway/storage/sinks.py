"""Build the configured time-series sink.

Each sink module is imported only when its type is configured, so a site
without InfluxDB does not need ``influxdb-client`` (the ``influxdb`` extra);
a missing optional dependency is a clear :class:`SinkConfigError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.clock import Clock
from gateway.config.storage import (
    EmbeddedSinkConfig,
    InfluxDB1SinkConfig,
    InfluxDBSinkConfig,
    SinkConfig,
)
from gateway.storage.sink import SeriesCatalog, Sink, SinkError

__all__ = ["SinkConfigError", "build_sink"]


class SinkConfigError(SinkError):
    """The configured sink cannot be built (e.g. its optional dependency is missing)."""


def build_sink(
    config: SinkConfig,
    catalog: SeriesCatalog,
    resolve: Callable[[str], Path],
    clock: Clock,
) -> Sink:
    """The sink for ``config``; ``resolve`` turns a configured path into a real one."""
    if isinstance(config, EmbeddedSinkConfig):
        from gateway.storage.embedded import EmbeddedSink

        return EmbeddedSink(config, path=resolve(config.path), clock=clock)
    if isinstance(config, InfluxDB1SinkConfig):
        from gateway.storage.influxdb1 import InfluxDB1Sink

        return InfluxDB1Sink(config, catalog)
    if isinstance(config, InfluxDBSinkConfig):
        try:
            from gateway.storage.influxdb import InfluxDBSink
        except ImportError as e:
            raise SinkConfigError(
                f"the 'influxdb' sink needs influxdb-client ({e}); "
                "install it with: pip install 'estate-gateway[influxdb]'"
            ) from e
        return InfluxDBSink(config, catalog)
    raise SinkConfigError(f"unknown sink type {type(config).__name__}")
