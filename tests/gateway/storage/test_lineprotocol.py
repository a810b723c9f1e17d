"""Line protocol: exact escaping, value typing, rejects, and round trips on real servers."""

from __future__ import annotations

import math

import pytest

from gateway.config.storage import InfluxDB1SinkConfig, InfluxDBSinkConfig
from gateway.model import Reading
from gateway.storage.influxdb import InfluxDBSink
from gateway.storage.influxdb1 import InfluxDB1Sink
from gateway.storage.lineprotocol import LineFormatter, LineProtocolError, format_value
from gateway.storage.sink import SeriesCatalog
from tests.fixtures.servers import Server
from tests.gateway.storage.tsutil import influxql, unique, vm_export

TS = 1_767_225_600_123_456_789


def fmt(catalog: SeriesCatalog, *readings: Reading) -> list[str]:
    enc = LineFormatter(catalog).format(readings)
    assert not enc.rejects, enc.rejects
    return enc.lines


def test_a_line_has_kind_sorted_tags_point_field_and_ns_time() -> None:
    cat = SeriesCatalog("north", {"tx1": "transformer"}, {"tx1": {"floor": "B1", "zone": ""}})
    (line,) = fmt(cat, Reading("tx1.winding_temp_a", 65.25, TS))
    # "zone" is empty: left out (InfluxDB refuses empty tag values).
    assert (
        line
        == f"transformer,device=tx1,floor=B1,kind=transformer,site=north winding_temp_a=65.25 {TS}"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1.0"),  # ints are floats: 1 then 1.5 never conflict
        (1.5, "1.5"),
        (-0.0, "-0.0"),
        (10**20, "1e+20"),
        (1e-7, "1e-07"),
        (True, "true"),
        (False, "false"),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("C:\\temp\\", '"C:\\\\temp\\\\"'),
        ("a,b=c d", '"a,b=c d"'),
        ("故障 温度高", '"故障 温度高"'),
        ("two\nlines\r", '"two\\nlines\\r"'),
    ],
)
def test_values(value: object, text: str) -> None:
    assert format_value(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, None, b"x", [1]])
def test_unwritable_values_raise(value: object) -> None:
    with pytest.raises(LineProtocolError):
        format_value(value)


def test_names_are_escaped_per_spec() -> None:
    cat = SeriesCatalog(
        "my site",
        {"pump 1": "water, pump"},
        {"pump 1": {"lo=cation": "roof, east=1", "区域": "一号 楼"}},
    )
    (line,) = fmt(cat, Reading("pump 1.flow rate,m3=h", 2.0, 1))
    assert line == (
        "water\\,\\ pump,device=pump\\ 1,kind=water\\,\\ pump,lo\\=cation=roof\\,\\ east\\=1,"
        "site=my\\ site,区域=一号\\ 楼 flow\\ rate\\,m3\\=h=2.0 1"
    )


@pytest.mark.parametrize(
    ("point", "kinds", "tags", "why"),
    [
        ("d.nl\nname", {}, {}, "newline"),
        ("d.trailing\\", {}, {}, "backslash"),
        ("d.a\\,b", {}, {}, "backslash"),
        ("d.a\\\\b", {}, {}, "backslash"),
        ("d.time", {}, {}, "reserved"),
        ("d.v", {"d": "#comment"}, {}, "comment"),
        ("d.v", {"d": ""}, {}, "empty measurement"),
        ("d.", {}, {}, "empty field"),
        ("d.v", {}, {"d": {"time": "x"}}, "reserved"),
        ("d.v", {}, {"d": {"t": "x\\"}}, "backslash"),
    ],
)
def test_unwritable_names_are_rejected_with_the_reason(
    point: str, kinds: dict[str, str], tags: dict[str, dict[str, str]], why: str
) -> None:
    cat = SeriesCatalog("s", kinds or {"d": "k"}, tags)
    enc = LineFormatter(cat).format([Reading(point, 1.0, 1)])
    assert enc.lines == [] and enc.index == []
    assert [r.index for r in enc.rejects] == [0]
    assert why in enc.rejects[0].reason


def test_a_bad_name_does_not_spoil_the_rest_of_the_batch() -> None:
    cat = SeriesCatalog("s", {"d": "k"})
    f = LineFormatter(cat)
    enc = f.format([Reading("d.ok", 1.0, 1), Reading("d.time", 1.0, 2), Reading("d.ok", 2.0, 3)])
    assert enc.lines == ["k,device=d,kind=k,site=s ok=1.0 1", "k,device=d,kind=k,site=s ok=2.0 3"]
    assert enc.index == [0, 2]
    assert [r.index for r in enc.rejects] == [1]
    # The verdict on a name is cached like a good prefix.
    assert f.format([Reading("d.time", 5.0, 9)]).rejects[0].reason == enc.rejects[0].reason


def test_a_backslash_before_an_ordinary_character_is_written_as_is() -> None:
    cat = SeriesCatalog("s", {"d": "k"}, {"d": {"path": "C:\\data"}})
    (line,) = fmt(cat, Reading("d.a\\b", 1.0, 1))
    assert line == "k,device=d,kind=k,path=C:\\data,site=s a\\b=1.0 1"


def test_bad_values_and_timestamps_come_back_as_rejects_and_the_rest_is_kept() -> None:
    cat = SeriesCatalog("s", {"d": "k"})
    readings = [
        Reading("d.v", 1.0, 1),
        Reading("d.v", math.nan, 2),
        Reading("d.v", math.inf, 3),
        Reading("d.v", 10**400, 4),
        Reading("d.v", 2.0, 2**63),  # past InfluxDB's last ns
        Reading("d.v", 3.0, 5),
    ]
    enc = LineFormatter(cat).format(readings)
    assert [r.index for r in enc.rejects] == [1, 2, 3, 4]
    assert "nan" in enc.rejects[0].reason
    assert "too large" in enc.rejects[2].reason
    assert "range" in enc.rejects[3].reason
    assert enc.lines == ["k,device=d,kind=k,site=s v=1.0 1", "k,device=d,kind=k,site=s v=3.0 5"]
    assert enc.index == [0, 5]
    assert enc.body == b"k,device=d,kind=k,site=s v=1.0 1\nk,device=d,kind=k,site=s v=3.0 5"


NASTY_STRINGS = [
    'quote " inside',
    "back\\slash",
    "ends with backslash\\",
    '\\"',
    "comma, equals= space",
    "中文故障：温度高",
    "line\nbreak",
]


def nasty_catalog(kind: str) -> SeriesCatalog:
    return SeriesCatalog(
        "estate one",
        {"tx 1": kind, "泵1": kind},
        {"tx 1": {"room": "B1, east=2"}, "泵1": {"楼栋": "三号 楼"}},
    )


async def test_round_trip_through_influxdb1(influxdb1: Server) -> None:
    db = unique("lp")
    kind = unique("kind")
    cat = nasty_catalog(kind)
    sink = InfluxDB1Sink(InfluxDB1SinkConfig(type="influxdb1", url=influxdb1.url, database=db), cat)
    readings = [Reading("tx 1.temp, top=1", 65.5, TS), Reading("泵1.流量", 12, TS + 1)]
    readings += [Reading("tx 1.status", s, TS + 10 + i) for i, s in enumerate(NASTY_STRINGS)]
    readings.append(Reading("泵1.running", True, TS + 100))
    await sink.start()
    try:
        await sink.write(readings)
    finally:
        await sink.close()
    series = await influxql(influxdb1.url, db, f'SELECT * FROM "{kind}" GROUP BY *')
    got = {}
    for s in series:
        cols = s["columns"]
        for row in s["values"]:
            for col, v in zip(cols[1:], row[1:], strict=True):
                if v is not None:
                    tags = {k: t for k, t in s["tags"].items() if t}  # GROUP BY * lists all keys
                    got[(tags["device"], col, row[0])] = (v, tags)
    assert got[("tx 1", "temp, top=1", TS)][0] == 65.5
    assert got[("泵1", "流量", TS + 1)][0] == 12.0
    assert got[("泵1", "running", TS + 100)][0] is True
    # Newlines are stored as the two characters backslash-n (documented).
    expected = [s.replace("\n", "\\n") for s in NASTY_STRINGS]
    assert [got[("tx 1", "status", TS + 10 + i)][0] for i in range(len(expected))] == expected
    tags = got[("tx 1", "temp, top=1", TS)][1]
    assert tags == {"device": "tx 1", "kind": kind, "room": "B1, east=2", "site": "estate one"}
    assert got[("泵1", "流量", TS + 1)][1]["楼栋"] == "三号 楼"


async def test_round_trip_through_victoriametrics(victoriametrics: Server) -> None:
    kind = unique("kind")
    cat = nasty_catalog(kind)
    sink = InfluxDBSink(
        InfluxDBSinkConfig(type="influxdb", url=victoriametrics.url, bucket="b"), cat
    )
    ts = TS - TS % 1_000_000  # VictoriaMetrics keeps ms
    readings = [
        Reading("tx 1.temp, top=1", 65.5, ts),
        Reading("泵1.流量", 12, ts + 1_000_000),
        Reading("泵1.running", True, ts + 2_000_000),
    ]
    await sink.start()
    try:
        await sink.write(readings)
    finally:
        await sink.close()
    lines = await vm_export(victoriametrics.url, f'{{kind="{kind}"}}')
    got = {(x["metric"]["__name__"], x["metric"]["device"]): x for x in lines}
    temp = got[(f"{kind}_temp, top=1", "tx 1")]
    assert temp["values"] == [65.5] and temp["timestamps"] == [ts // 1_000_000]
    assert temp["metric"]["room"] == "B1, east=2"
    assert temp["metric"]["site"] == "estate one"
    flow = got[(f"{kind}_流量", "泵1")]
    assert flow["values"] == [12] and flow["metric"]["楼栋"] == "三号 楼"
    assert got[(f"{kind}_running", "泵1")]["values"] == [1]
