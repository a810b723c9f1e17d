"""The InfluxDB 1.x sink against a real influxd (and a scripted server for 401/429)."""

from __future__ import annotations

import base64
import math

import aiohttp
import pytest

from gateway.config.storage import InfluxDB1SinkConfig
from gateway.model import Reading
from gateway.storage.influxdb1 import InfluxDB1Sink, InfluxQueryError
from gateway.storage.influxerrors import bad_indexes
from gateway.storage.sink import BatchTooLarge, PointsRejected, SeriesCatalog, SinkUnavailable
from tests.fixtures.servers import Server, free_port
from tests.gateway.storage.tsutil import scripted_server, unique

TS = 1_767_225_600_000_000_000


def make_sink(url: str, db: str, kind: str, **kw: object) -> InfluxDB1Sink:
    cfg = InfluxDB1SinkConfig(type="influxdb1", url=url, database=db, **kw)  # type: ignore[arg-type]
    return InfluxDB1Sink(cfg, SeriesCatalog("estate", {"d": kind, "e": kind}))


async def test_start_creates_the_database_and_writes_are_read_back(influxdb1: Server) -> None:
    db, kind = unique("db"), unique("k")
    sink = make_sink(influxdb1.url, db, kind)
    await sink.start()
    try:
        await sink.start()  # idempotent
        await sink.write([Reading("d.v", 1.5, TS), Reading("d.v", 2, TS + 1)])
        answer = await sink.query(f'SELECT v FROM "{kind}"')
    finally:
        await sink.close()
    assert answer["results"][0]["series"][0]["values"] == [[TS, 1.5], [TS + 1, 2.0]]


async def test_a_missing_database_is_unavailable_when_not_allowed_to_create(
    influxdb1: Server,
) -> None:
    sink = make_sink(influxdb1.url, unique("absent"), "k", create_database=False)
    await sink.start()
    try:
        with pytest.raises(SinkUnavailable, match="database not found"):
            await sink.write([Reading("d.v", 1.0, TS)])
    finally:
        await sink.close()


async def test_field_type_conflict_names_exactly_the_conflicting_points(influxdb1: Server) -> None:
    db, kind = unique("db"), unique("k")
    sink = make_sink(influxdb1.url, db, kind)
    await sink.start()
    try:
        await sink.write([Reading("d.v", 1.0, TS)])
        batch = [
            Reading("d.v", 2.0, TS + 1),
            Reading("d.v", "text", TS + 2),  # v is a float field already
            Reading("e.v", "text", TS + 3),  # same measurement and field: also a conflict
            Reading("d.w", "text", TS + 4),  # another field: fine
        ]
        with pytest.raises(PointsRejected, match="field type conflict") as info:
            await sink.write(batch)
        assert info.value.bad == (1, 2)
    finally:
        await sink.close()


async def test_nan_and_infinity_are_refused_before_sending(influxdb1: Server) -> None:
    db, kind = unique("db"), unique("k")
    sink = make_sink(influxdb1.url, db, kind)
    await sink.start()
    try:
        with pytest.raises(PointsRejected) as info:
            await sink.write([Reading("d.v", 1.0, TS), Reading("d.v", math.nan, TS + 1)])
        assert info.value.bad == (1,)
        answer = await sink.query(f'SELECT * FROM "{kind}"')
    finally:
        await sink.close()
    assert "series" not in answer["results"][0]  # nothing was sent


async def test_a_body_over_the_server_limit_is_batch_too_large(influxdb1: Server) -> None:
    db, kind = unique("db"), unique("k")
    sink = make_sink(influxdb1.url, db, kind)
    batch = [Reading("d.a_long_point_name_for_bulk", float(i), TS + i) for i in range(60_000)]
    await sink.start()
    try:
        with pytest.raises(BatchTooLarge):
            await sink.write(batch)
        await sink.write(batch[:30_000])  # half fits
    finally:
        await sink.close()


async def test_nobody_listening_is_unavailable() -> None:
    sink = make_sink(f"http://127.0.0.1:{free_port()}", "db", "k")
    with pytest.raises(SinkUnavailable, match="unreachable"):
        await sink.start()
    with pytest.raises(SinkUnavailable, match="unreachable"):
        await sink.write([Reading("d.v", 1.0, TS)])
    await sink.close()
    await sink.close()  # idempotent


async def test_unparseable_lines_in_a_real_error_message_are_found(influxdb1: Server) -> None:
    db = unique("db")
    lines = ["m,t=a v=1 1", "m,t=b v=x 2", "m,t=c s=\"it's: 'odd'\" 3", "m,t=d v=1 4 5"]
    async with aiohttp.ClientSession() as http:
        await http.post(f"{influxdb1.url}/query", data={"q": f'CREATE DATABASE "{db}"'})
        async with http.post(
            f"{influxdb1.url}/write", params={"db": db}, data="\n".join(lines)
        ) as resp:
            assert resp.status == 400
            message = (await resp.json())["error"]
    readings = [Reading(f"x.{i}", 1.0, i) for i in range(4)]
    assert bad_indexes(message, lines, readings, SeriesCatalog("s", {})) == [1, 3]


async def test_query_errors_are_typed(influxdb1: Server) -> None:
    sink = make_sink(influxdb1.url, unique("db"), "k")
    await sink.start()
    try:
        with pytest.raises(InfluxQueryError):
            await sink.query("SELECT FROM nowhere WHERE")
    finally:
        await sink.close()


async def test_statuses_the_real_server_cannot_be_made_to_give() -> None:
    async with scripted_server() as srv:
        sink = make_sink(
            srv.url, "db", "k", username="gw", password="s3cret", create_database=False
        )
        one = [Reading("d.v", 1.0, TS)]
        try:
            srv.answer(401, '{"error":"authorization failed"}')
            with pytest.raises(SinkUnavailable, match="check the user name and password"):
                await sink.write(one)
            srv.answer(429, '{"error":"slow down"}', {"Retry-After": "7"})
            with pytest.raises(SinkUnavailable) as info:
                await sink.write(one)
            assert info.value.retry_after == 7.0
            srv.answer(503, "")
            with pytest.raises(SinkUnavailable, match="503"):
                await sink.write(one)
            srv.answer(400, '{"error":"missing required parameter \\"db\\""}')
            with pytest.raises(SinkUnavailable, match="missing required parameter"):
                await sink.write(one)  # a request problem, not a point problem
            srv.answer(413, '{"error":"Request Entity Too Large"}')
            with pytest.raises(BatchTooLarge):
                await sink.write(one)
            await sink.write(one)  # 204
        finally:
            await sink.close()
    method, path, body, auth = srv.requests[-1]
    assert method == "POST" and path.startswith("/write?") and "precision=ns" in path
    assert auth == "Basic " + base64.b64encode(b"gw:s3cret").decode()
    assert body == f"k,device=d,kind=k,site=estate v=1.0 {TS}".encode()


async def test_a_refused_create_database_is_logged_and_writing_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with scripted_server() as srv:
        sink = make_sink(srv.url, "db", "k", username="gw")
        srv.answer(
            200,
            '{"results":[{"statement_id":0,"error":"error authorizing query: gw not '
            "authorized to execute statement 'CREATE DATABASE', requires admin privilege\"}]}",
        )
        try:
            await sink.start()
            await sink.write([Reading("d.v", 1.0, TS)])
        finally:
            await sink.close()
    assert "cannot create database 'db'" in caplog.text
    assert [r[1].split("?")[0] for r in srv.requests] == ["/query", "/write"]
