"""Devices and points over HTTP against a real gateway: latest values with
quality and age (live and after a cold start), online state, maintenance,
history raw and in buckets, and what each bad request gets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from gateway.model import Quality, Reading, from_datetime, to_datetime
from gateway.storage.embedded import EmbeddedSink
from tests.fixtures.api import ApiHarness, api_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

S = 1_000_000_000


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with api_gateway(tmp_path_factory.mktemp("devices")) as h:
        yield h


def iso(ns: int) -> str:
    return to_datetime(ns).isoformat().replace("+00:00", "Z")


def parse(ts: str) -> int:
    return from_datetime(datetime.fromisoformat(ts))


async def wait_written(api: ApiHarness, at_least: int) -> None:
    def done() -> bool:
        stats = api.ctx.writer_stats()
        return stats is not None and stats.written >= at_least

    await api.wait_for(done, what=f"{at_least} points written")


async def test_viewer_sees_every_device_with_its_points(api: ApiHarness) -> None:
    c = await api.client("viewer")
    r = await c.get("/api/v1/devices")
    assert r.status_code == 200
    devices = {d["id"]: d for d in r.json()}
    assert list(devices) == ["tx1", "pump1", "fire1"]
    tx1 = devices["tx1"]
    assert tx1["name"] == "1# 变压器"
    assert tx1["kind"] == "transformer"
    assert tx1["location"] == "B1 配电房"
    assert tx1["maintenance"] is False
    # No driver has reported it: its state is unknown, not online.
    assert tx1["online"] is None and tx1["since"] is None
    units = {p["point"]: p["unit"] for p in tx1["points"]}
    assert units == {"tx1.winding_temp_a": "°C", "tx1.load_pct": "%"}
    assert {p["point"] for p in devices["pump1"]["points"]} == {"pump1.pressure", "pump1.running"}


async def test_latest_value_with_quality_and_age(api: ApiHarness) -> None:
    ts = api.now() - 5 * S
    await api.publish(Reading("tx1.winding_temp_a", 71.5, ts, Quality.UNCERTAIN))
    await api.wait_for(
        lambda: (r := api.ctx.hub.latest.get("tx1.winding_temp_a")) is not None and r.ts == ts
    )
    c = await api.client("viewer")
    r = await c.get("/api/v1/points", params={"device": "tx1"})
    assert r.status_code == 200
    points = {p["point"]: p for p in r.json()}
    temp = points["tx1.winding_temp_a"]
    assert temp["value"] == 71.5 and temp["quality"] == "uncertain"
    assert temp["device"] == "tx1" and temp["name"] == "winding_temp_a"
    assert parse(temp["ts"]) // 1000 == ts // 1000  # microseconds in ISO 8601
    assert temp["age_s"] >= 5
    r = await c.get("/api/v1/devices/tx1")
    assert r.status_code == 200
    by_point = {p["point"]: p for p in r.json()["points"]}
    assert by_point["tx1.winding_temp_a"]["value"] == 71.5


async def test_points_filter_by_glob_and_device(api: ApiHarness) -> None:
    c = await api.client("viewer")
    r = await c.get("/api/v1/points", params={"match": "*.pressure"})
    assert [p["point"] for p in r.json()] == ["pump1.pressure"]
    r = await c.get("/api/v1/points", params={"match": "tx1.*", "device": "pump1"})
    assert r.json() == []
    r = await c.get("/api/v1/points", params={"device": "nosuch"})
    assert r.status_code == 200 and r.json() == []
    never = (await c.get("/api/v1/points", params={"match": "fire1.alarm"})).json()
    assert never == [
        {
            "point": "fire1.alarm",
            "device": "fire1",
            "name": "alarm",
            "unit": "",
            "description": "",
            "value": None,
            "quality": None,
            "ts": None,
            "age_s": None,
        }
    ]


async def test_cold_start_value_comes_from_the_store(api: ApiHarness) -> None:
    """Before a point's first live reading (after a restart), the store's newest
    sample is served."""
    sink = api.ctx.history
    assert isinstance(sink, EmbeddedSink)
    ts = api.now() - 60 * S
    await sink.write([Reading("pump1.running", True, ts)])
    assert "pump1.running" not in api.ctx.hub.latest
    c = await api.client("viewer")
    (p,) = (await c.get("/api/v1/points", params={"match": "pump1.running"})).json()
    assert p["value"] is True and p["quality"] == "good"
    assert p["age_s"] >= 60


async def test_online_state_and_maintenance(api: ApiHarness) -> None:
    await api.gw.health.device_offline("pump1", "no answer from 10.0.0.7:502", driver="modbus1")
    await api.gw.health.device_online("tx1", driver="modbus1")
    c = await api.client("viewer")
    pump = (await c.get("/api/v1/devices/pump1")).json()
    assert pump["online"] is False
    assert pump["offline_reason"] == "no answer from 10.0.0.7:502"
    assert pump["since"] is not None
    tx1 = (await c.get("/api/v1/devices/tx1")).json()
    assert tx1["online"] is True and tx1["offline_reason"] == ""

    await api.ctx.alerting.manager.set_maintenance("fire1", True, user="eng", reason="test")
    assert (await c.get("/api/v1/devices/fire1")).json()["maintenance"] is True
    await api.ctx.alerting.manager.set_maintenance("fire1", False, user="eng", reason="done")
    assert (await c.get("/api/v1/devices/fire1")).json()["maintenance"] is False


async def test_raw_history_of_the_last_hour(api: ApiHarness) -> None:
    stats = api.ctx.writer_stats()
    assert stats is not None
    now = api.now()
    stamps = [now - (30 - i) * 60 * S for i in range(10)]
    await api.publish(*(Reading("tx1.load_pct", 10.0 + i, ts) for i, ts in enumerate(stamps)))
    await wait_written(api, stats.written + 10)

    c = await api.client("viewer")
    r = await c.get("/api/v1/points/tx1.load_pct/history")  # default: the last hour
    assert r.status_code == 200
    body = r.json()
    assert body["point"] == "tx1.load_pct" and body["unit"] == "%"
    assert body["resolution_s"] == 0
    assert [parse(row["ts"]) // 1000 for row in body["rows"]] == [ts // 1000 for ts in stamps]
    assert [row["value"] for row in body["rows"]] == [10.0 + i for i in range(10)]
    assert all(row["min"] == row["max"] == row["value"] for row in body["rows"])
    assert parse(body["until"]) - parse(body["since"]) == 3600 * S


async def test_bucketed_history_over_hours(api: ApiHarness) -> None:
    sink = api.ctx.history
    assert isinstance(sink, EmbeddedSink)
    minute = 60 * S
    end = api.now() // minute * minute
    start = end - 6 * 60 * minute
    readings = [Reading("pump1.pressure", float(i % 60), start + i * minute) for i in range(360)]
    await sink.write(readings)

    c = await api.client("viewer")
    r = await c.get(
        "/api/v1/points/pump1.pressure/history",
        params={"since": iso(start), "until": iso(end), "max_points": 50},
    )
    assert r.status_code == 200
    body = r.json()
    rows = body["rows"]
    assert body["resolution_s"] > 0 and body["resolution_s"] % 60 == 0
    assert 0 < len(rows) <= 50
    assert min(row["min"] for row in rows) == 0.0
    assert max(row["max"] for row in rows) == 59.0
    assert all(row["min"] <= row["value"] <= row["max"] for row in rows)
    width = body["resolution_s"] * S
    assert all(parse(row["ts"]) % width == 0 for row in rows)  # aligned buckets

    # The same range with room for every sample comes back raw.
    r = await c.get(
        "/api/v1/points/pump1.pressure/history",
        params={"since": iso(start), "until": iso(end), "max_points": 1000},
    )
    assert r.json()["resolution_s"] == 0 and len(r.json()["rows"]) == 360


async def test_bad_history_requests_get_clear_errors(api: ApiHarness) -> None:
    c = await api.client("viewer")
    now = api.now()
    # Unknown point: 404 naming it.
    r = await c.get("/api/v1/points/tx9.nothing/history")
    assert r.status_code == 404 and "tx9.nothing" in r.json()["detail"]
    # until not after since: 422 in FastAPI's shape, naming the field.
    r = await c.get(
        "/api/v1/points/tx1.load_pct/history", params={"since": iso(now), "until": iso(now)}
    )
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["query", "until"] and "after since" in err["msg"]
    # A range longer than the store keeps (400 days of rollups by default): 422.
    r = await c.get(
        "/api/v1/points/tx1.load_pct/history",
        params={"since": iso(now - 500 * 86_400 * S), "until": iso(now)},
    )
    assert r.status_code == 422 and "keeps" in r.json()["detail"][0]["msg"]
    # A time without a time zone is ambiguous: 422.
    r = await c.get("/api/v1/points/tx1.load_pct/history", params={"since": "2026-01-01T00:00:00"})
    assert r.status_code == 422 and "time zone" in r.json()["detail"][0]["msg"]
    # Beyond what a 64-bit ns timestamp holds: 422, not a crash.
    far = datetime(9999, 1, 1, tzinfo=UTC)
    r = await c.get(
        "/api/v1/points/tx1.load_pct/history",
        params={"since": far.isoformat(), "until": (far + timedelta(days=1)).isoformat()},
    )
    assert r.status_code == 422
    for bad in (0, -1, 10_001, "many"):
        r = await c.get("/api/v1/points/tx1.load_pct/history", params={"max_points": bad})
        assert r.status_code == 422, bad
    # Unknown device: 404.
    r = await c.get("/api/v1/devices/nosuch")
    assert r.status_code == 404 and "nosuch" in r.json()["detail"]


async def test_anonymous_caller_gets_401(api: ApiHarness) -> None:
    c = await api.client(None)
    for path in (
        "/api/v1/devices",
        "/api/v1/devices/tx1",
        "/api/v1/points",
        "/api/v1/points/tx1.load_pct/history",
    ):
        r = await c.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == "Bearer"


async def test_history_without_the_embedded_store_is_409(tmp_path: Path) -> None:
    """With an InfluxDB sink the gateway cannot read history back: a clear 409,
    while the latest values still work."""
    storage = {
        "timeseries": {
            "flush_interval_s": 0.1,
            "sink": {"type": "influxdb", "url": "http://127.0.0.1:9", "bucket": "b"},
        }
    }
    async with api_gateway(tmp_path, storage=storage) as other:
        assert other.ctx.history is None
        c = await other.client("viewer")
        r = await c.get("/api/v1/points/tx1.load_pct/history")
        assert r.status_code == 409
        assert "influxdb" in r.json()["detail"]
        assert (await c.get("/api/v1/points/tx9.nothing/history")).status_code == 404
        r = await c.get("/api/v1/points", params={"device": "tx1"})
        assert r.status_code == 200 and len(r.json()) == 2
