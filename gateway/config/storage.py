"""Config models for the event store and the time-series path."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr

from gateway.driver import StrictModel

__all__ = [
    "EmbeddedSinkConfig",
    "EventStoreConfig",
    "InfluxDB1SinkConfig",
    "InfluxDBSinkConfig",
    "SinkConfig",
    "StorageConfig",
    "TimeseriesConfig",
]


class EventStoreConfig(StrictModel):
    url: str = Field(
        "sqlite+aiosqlite:///{data_dir}/gateway.db",
        description=(
            "SQLAlchemy async URL of the event store. SQLite (WAL) by default; "
            "PostgreSQL as 'postgresql+asyncpg://user@host/db'. '{data_dir}' is replaced "
            "by the site's data directory. Put a password in an environment variable: "
            "'postgresql+asyncpg://gw:${PGPASSWORD}@db/gw'."
        ),
    )


class EmbeddedSinkConfig(StrictModel):
    type: Literal["embedded"] = Field("embedded", description="Recent history in SQLite.")
    path: str = Field(
        "{data_dir}/timeseries.db", description="SQLite file; '{data_dir}' is the data directory."
    )
    raw_retention_days: float = Field(7, gt=0, description="Keep raw samples this many days.")
    rollup_retention_days: float = Field(
        400, gt=0, description="Keep 1-minute rollups (min/max/mean/last) this many days."
    )


class InfluxDBSinkConfig(StrictModel):
    type: Literal["influxdb"] = Field(
        description="InfluxDB 2.x / 3.x / Cloud, or anything that takes /api/v2/write."
    )
    url: str = Field(description="Base URL, e.g. 'http://127.0.0.1:8086'.")
    org: str = Field("", description="Organisation (InfluxDB 2.x / Cloud).")
    bucket: str = Field(description="Bucket (or 'db/rp' for 1.8+ compatibility endpoints).")
    token: SecretStr | None = Field(
        None, description="API token; write it as '${INFLUX_TOKEN}', never in the file."
    )
    timeout_s: float = Field(10, gt=0, description="HTTP timeout of one write.")
    gzip: bool = Field(False, description="Compress request bodies.")


class InfluxDB1SinkConfig(StrictModel):
    type: Literal["influxdb1"] = Field(description="InfluxDB 1.x / Enterprise (v1 HTTP /write).")
    url: str = Field(description="Base URL, e.g. 'http://127.0.0.1:8086'.")
    database: str = Field(description="Database to write to (created if missing when allowed).")
    retention_policy: str = Field("", description="Retention policy; empty for the default.")
    username: str = Field("", description="User name, if authentication is on.")
    password: SecretStr | None = Field(
        None, description="Password; write it as '${INFLUX_PASSWORD}', never in the file."
    )
    create_database: bool = Field(
        True, description="Send CREATE DATABASE at start (needs admin rights)."
    )
    timeout_s: float = Field(10, gt=0, description="HTTP timeout of one write.")


SinkConfig = Annotated[
    EmbeddedSinkConfig | InfluxDBSinkConfig | InfluxDB1SinkConfig,
    Field(discriminator="type"),
]


class TimeseriesConfig(StrictModel):
    sink: SinkConfig = Field(
        default_factory=EmbeddedSinkConfig, description="Where time series go."
    )
    batch_size: int = Field(5000, ge=1, le=100_000, description="Points per write request.")
    flush_interval_s: float = Field(
        1.0, gt=0, description="Send a partial batch after this many seconds."
    )
    outbox_path: str = Field(
        "{data_dir}/outbox.db",
        description="Durable store-and-forward queue; points wait here while the sink is down.",
    )
    outbox_max_points: int = Field(
        50_000_000,
        ge=1000,
        description="Outbox ceiling; past it the oldest points are dropped, counted and alarmed.",
    )
    default_deadband: float = Field(
        0.0, ge=0, description="Ignore changes smaller than this unless the point sets its own."
    )
    default_heartbeat_s: float | None = Field(
        300,
        gt=0,
        description="Write an unchanged point at least this often (null: only on change).",
    )


class StorageConfig(StrictModel):
    event_store: EventStoreConfig = Field(
        default_factory=EventStoreConfig, description="Events, alarms, work orders."
    )
    timeseries: TimeseriesConfig = Field(
        default_factory=TimeseriesConfig, description="Readings history."
    )
