"""The v2-API sink (influxdb-client) on VictoriaMetrics, InfluxDB 1.6.7 and a scripted server."""

from __future__ import annotations

import math

import pytest

from gateway.config.storage import InfluxDBSinkConfig
from gateway.model import Reading
from gateway.storage.influxdb import InfluxDBSink
from gateway.storage.sink import BatchTooLarge, PointsRejected, SeriesCatalog, SinkUnavailable
from tests.fixtures.servers import Server, free_port
from tests.gateway.storage.tsutil import scripted_server, unique, vm_export

TS = 1_767_225_600_000_000_000


def make_sink(url: str, kind: str, **kw: object) -> InfluxDBSink:
    cfg = InfluxDBSinkConfig(type="influxdb", url=url, bucket="gw", org="estate", **kw)  # type: ignore[arg-type]
    return InfluxDBSink(cfg, SeriesCatalog("estate", {"d": kind}))


async def test_writes_reach_victoriametrics(victoriametrics: Server) -> None:
    kind = unique("k")
    sink = make_sink(victoriametrics.url, kind)
    await sink.start()
    try:
        await sink.write([Reading("d.v", 1.5, TS), Reading("d.v", 2, TS + 1_000_000)])
    finally:
        await sink.close()
    (series,) = await vm_export(victoriametrics.url, f"{kind}_v")
    assert series["values"] == [1.5, 2]
    assert series["timestamps"] == [TS // 1_000_000, TS // 1_000_000 + 1]
    assert series["metric"] == {
        "__name__": f"{kind}_v",
        "device": "d",
        "kind": kind,
        "site": "estate",
    }


async def test_gzip_bodies_are_accepted(victoriametrics: Server) -> None:
    kind = unique("k")
    sink = make_sink(victoriametrics.url, kind, gzip=True)
    try:
        await sink.write([Reading("d.v", 3.0, TS)])  # start() is implicit
    finally:
        await sink.close()
    (series,) = await vm_export(victoriametrics.url, f"{kind}_v")
    assert series["values"] == [3]


async def test_influxdb_1_6_has_no_v2_api_and_the_error_says_what_to_use(influxdb1: Server) -> None:
    sink = make_sink(influxdb1.url, "k")
    await sink.start()
    try:
        with pytest.raises(SinkUnavailable, match=r"no /api/v2/write.*'influxdb1'"):
            await sink.write([Reading("d.v", 1.0, TS)])
    finally:
        await sink.close()


async def test_nobody_listening_is_unavailable() -> None:
    sink = make_sink(f"http://127.0.0.1:{free_port()}", "k")
    try:
        with pytest.raises(SinkUnavailable, match="unreachable"):
            await sink.write([Reading("d.v", 1.0, TS)])
    finally:
        await sink.close()


async def test_nan_is_refused_before_sending(victoriametrics: Server) -> None:
    sink = make_sink(victoriametrics.url, "k")
    try:
        with pytest.raises(PointsRejected) as info:
            await sink.write([Reading("d.v", -math.inf, TS), Reading("d.v", 1.0, TS)])
        assert info.value.bad == (0,)
    finally:
        await sink.close()


async def test_statuses_of_an_influxdb_2_server() -> None:
    one = [Reading("d.v", 1.0, TS), Reading("d.w", "x", TS)]
    async with scripted_server() as srv:
        sink = make_sink(srv.url, "k", token="t0ken")
        try:
            srv.answer(
                422,
                '{"code":"unprocessable entity","message":"failure writing points to database: '
                'partial write: field type conflict: input field \\"w\\" on measurement '
                '\\"k\\" is type string, already exists as type float dropped=1"}',
            )
            with pytest.raises(PointsRejected) as rejected:
                await sink.write(one)
            assert rejected.value.bad == (1,)
            srv.answer(
                400,
                '{"code":"invalid","message":"unable to parse \'k,device=d,kind=k,site=estate '
                f"v=1.0 {TS}': bad\"}}",
            )
            with pytest.raises(PointsRejected) as parse:
                await sink.write(one)
            assert parse.value.bad == (0,)
            srv.answer(413, '{"code":"request too large","message":"too large"}')
            with pytest.raises(BatchTooLarge):
                await sink.write(one)
            srv.answer(429, '{"code":"too many requests","message":"slow"}', {"Retry-After": "3"})
            with pytest.raises(SinkUnavailable) as throttled:
                await sink.write(one)
            assert throttled.value.retry_after == 3.0
            srv.answer(401, '{"code":"unauthorized","message":"unauthorized access"}')
            with pytest.raises(SinkUnavailable, match="check the user name and password / token"):
                await sink.write(one)
            srv.answer(404, '{"code":"not found","message":"bucket \\"gw\\" not found"}')
            with pytest.raises(SinkUnavailable, match='bucket "gw" not found'):
                await sink.write(one)
            srv.answer(503, "")
            with pytest.raises(SinkUnavailable, match="503"):
                await sink.write(one)
            await sink.write(one)
        finally:
            await sink.close()
    method, path, body, auth = srv.requests[-1]
    assert (method, auth) == ("POST", "Token t0ken")
    assert path.startswith("/api/v2/write?") and "bucket=gw" in path and "precision=ns" in path
    assert body.decode() == (
        f'k,device=d,kind=k,site=estate v=1.0 {TS}\nk,device=d,kind=k,site=estate w="x" {TS}'
    )
