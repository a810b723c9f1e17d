"""The ingest driver against a real Mosquitto: mapping, bad input, broker loss."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from drivers.mqtt.config import MqttIngestConfig
from drivers.mqtt.ingest import MqttIngestDriver
from drivers.mqtt.payload import JSON_LIBRARY
from gateway.model import Reading
from tests.drivers.mqtt.conftest import publisher, unique_prefix
from tests.fixtures.driver_harness import Harness, running
from tests.fixtures.servers import Server, free_port, mosquitto_server

DRIVER_ID = "mq"


def make_driver(port: int, subscriptions: list[dict[str, Any]], **extra: Any) -> MqttIngestDriver:
    cfg = MqttIngestConfig.model_validate(
        {
            "type": "mqtt",
            "id": DRIVER_ID,
            "broker": {
                "host": "127.0.0.1",
                "port": port,
                "reconnect_min_s": 0.05,
                "reconnect_max_s": 0.5,
            },
            "subscriptions": subscriptions,
            **extra,
        }
    )
    return MqttIngestDriver(cfg)


async def connected(h: Harness) -> None:
    await h.until(
        lambda: any(e.source == DRIVER_ID for e in h.events("device.online")),
        what="the ingest to connect and subscribe",
    )


def values(h: Harness) -> dict[str, Any]:
    return {r.point: r.value for r in h.readings()}


async def test_json_number_text_tasmota_mapping(mosquitto: Server, tmp_path: Path) -> None:
    p = unique_prefix()
    drv = make_driver(
        mosquitto.port,
        [
            {
                "topic": f"{p}/tx1/temperature",
                "device": "tx1",
                "values": [
                    {"point": "winding_a", "path": "a", "unit": "°C"},
                    {"point": "winding_b", "path": "$.data.b"},
                    {"point": "first", "path": "items[0].v"},
                    {"point": "fan", "path": "fan", "type": "bool"},
                    {"point": "mode", "path": "mode", "type": "text"},
                ],
            },
            {
                "topic": f"{p}/pump1/pressure",
                "format": "number",
                "device": "pump1",
                "values": [{"point": "pressure"}],
            },
            {
                "topic": f"{p}/pump1/status",
                "format": "text",
                "device": "pump1",
                "values": [{"point": "status", "type": "text"}],
            },
            {
                "topic": f"{p}/tele/+/SENSOR",
                "format": "tasmota",
                "device": "{2}",
                "values": [
                    {"point": "power", "path": "ENERGY.Power"},
                    {"point": "temp", "path": "AM2301.Temperature"},
                    {"point": "relay", "path": "POWER", "type": "bool"},
                ],
            },
        ],
    )
    async with running(drv, tmp_path) as h, publisher(mosquitto.port) as pub:
        await connected(h)
        doc = {"a": 71, "data": {"b": 70.5}, "items": [{"v": "3.25"}], "fan": True, "mode": "auto"}
        await pub.publish(f"{p}/tx1/temperature", json.dumps(doc))
        await pub.publish(f"{p}/pump1/pressure", b" 0.42\n")
        await pub.publish(f"{p}/pump1/status", "running")
        await pub.publish(
            f"{p}/tele/pm1/SENSOR",
            json.dumps(
                {
                    "Time": "2026-11-21T10:00:00",
                    "ENERGY": {"Power": 12, "Total": 3.5},
                    "AM2301": {"Temperature": 22.1},
                }
            ),
        )
        await pub.publish(f"{p}/tele/pm2/SENSOR", json.dumps({"POWER": "ON"}))
        got = await h.until(lambda: len(values(h)) >= 10 and values(h), what="10 points")
    assert got == {
        "tx1.winding_a": 71.0,
        "tx1.winding_b": 70.5,
        "tx1.first": 3.25,
        "tx1.fan": True,
        "tx1.mode": "auto",
        "pump1.pressure": 0.42,
        "pump1.status": "running",
        "pm1.power": 12.0,
        "pm1.temp": 22.1,
        "pm2.relay": True,
    }
    assert all(type(r.value) is float for r in h.readings() if r.point.endswith(("a", "power")))
    assert h.events("mqtt.malformed") == []  # tasmota skips absent paths
    st = drv.stats()
    assert (st.received, st.readings, st.malformed) == (5, 10, 0)


async def test_templates_timestamps_and_events(mosquitto: Server, tmp_path: Path) -> None:
    p = unique_prefix()
    drv = make_driver(
        mosquitto.port,
        [
            {
                "topic": f"{p}/+/env/+",
                "device": "{1}",
                "values": [{"point": "{3}_temp", "path": "t"}],
                "timestamp": {"path": "ts", "format": "epoch_ms"},
            },
            {
                "topic": f"{p}/iso/+",
                "device": "clock1",
                "values": [{"point": "v", "path": "v"}],
                "timestamp": {"path": "Time", "format": "iso8601", "timezone": "Asia/Shanghai"},
            },
            {
                "topic": f"{p}/door/+",
                "device": "doors",
                "event": {"type": "door.state", "source": "{2}", "data": {"state": "state"}},
            },
            {
                "topic": f"{p}/swipe/+",
                "format": "text",
                "device": "{2}",
                "event": {"type": "access.swipe"},
            },
        ],
    )
    async with running(drv, tmp_path) as h, publisher(mosquitto.port) as pub:
        await connected(h)
        await pub.publish(
            f"{p}/b1/env/power_room", json.dumps({"t": 24.5, "ts": 1_790_000_000_123})
        )
        await pub.publish(f"{p}/iso/x", json.dumps({"v": 1, "Time": "2026-11-21T10:00:00"}))
        await pub.publish(f"{p}/door/gate-3", json.dumps({"state": "open", "other": 1}))
        await pub.publish(f"{p}/swipe/reader7", "CARD 0042")
        await h.until(lambda: len(h.readings()) >= 2 and len(h.events()) >= 3, what="output")
    by_point = {r.point: r for r in h.readings()}
    assert by_point["b1.power_room_temp"] == Reading(
        "b1.power_room_temp", 24.5, 1_790_000_000_123_000_000
    )
    # 10:00 in Shanghai (UTC+8) is 02:00 UTC
    assert by_point["clock1.v"].ts == 1_795_226_400 * 10**9
    door = h.events("door.state")[0]
    assert (door.source, dict(door.data)) == ("gate-3", {"state": "open"})
    swipe = h.events("access.swipe")[0]
    assert (swipe.source, dict(swipe.data)) == ("reader7", {"value": "CARD 0042"})


async def test_malformed_messages_are_counted_reported_and_skipped(
    mosquitto: Server, tmp_path: Path
) -> None:
    p = unique_prefix()
    drv = make_driver(
        mosquitto.port,
        [
            {"topic": f"{p}/json/+", "device": "s{2}", "values": [{"point": "t", "path": "t"}]},
            {"topic": f"{p}/num", "format": "number", "device": "n1", "values": [{"point": "v"}]},
            {"topic": f"{p}/lwt/+/LWT", "format": "tasmota", "device": "{2}"},
        ],
    )
    bad = [
        (f"{p}/json/1", b"{not json", "bad JSON"),
        (f"{p}/json/2", b'{"t": "warm"}', "not a number"),
        (f"{p}/json/3", b'{"x": 1}', "no 't'"),
        (f"{p}/json/4", b'{"t": [1]}', "wrong type"),
        # stdlib json parses 1e999 as inf, which our check refuses; orjson refuses it itself
        (f"{p}/json/5", b'{"t": 1e999}', "finite" if JSON_LIBRARY == "json" else "infinity"),
        (f"{p}/json/bad.id", b'{"t": 1}', "not a valid name"),
        (f"{p}/num", b"\xff\xfe", "not a number"),
        (f"{p}/lwt/plug1/LWT", b"Maybe", "neither"),
    ]
    async with running(drv, tmp_path) as h, publisher(mosquitto.port) as pub:
        await connected(h)
        for topic, payload, _ in bad:
            await pub.publish(topic, payload)
            await pub.publish(f"{p}/json/ok", b'{"t": 20.5}')
        await pub.publish(f"{p}/json/1", b"again not json")  # same topic: no second event
        await pub.publish(f"{p}/lwt/plug1/LWT", b"Offline")
        await pub.publish(f"{p}/num", b"7")
        await h.until(lambda: drv.stats().received == 2 * len(bad) + 3, what="every message")
        await h.until(lambda: h.events("device.offline"), what="the LWT")
    events = h.events("mqtt.malformed")
    assert [e.data["topic"] for e in events] == [t for t, _, _ in bad]
    for e, (topic, _, why) in zip(events, bad, strict=True):
        assert e.source == DRIVER_ID
        assert why in e.data["reason"], (topic, e.data["reason"])
    assert events[0].data["payload"] == "{not json"
    st = drv.stats()
    assert st.malformed == len(bad) + 1
    assert st.malformed_by_subscription == (7, 1, 1)
    ok = [r for r in h.readings() if r.point == "sok.t"]
    assert len(ok) == len(bad) and {r.value for r in ok} == {20.5}
    assert [r.value for r in h.readings() if r.point == "n1.v"] == [7.0]
    assert [e.source for e in h.events("device.offline")] == ["plug1"]


async def test_partial_message_keeps_good_values(mosquitto: Server, tmp_path: Path) -> None:
    p = unique_prefix()
    drv = make_driver(
        mosquitto.port,
        [
            {
                "topic": f"{p}/m",
                "device": "m1",
                "values": [{"point": "a", "path": "a"}, {"point": "b", "path": "b"}],
            }
        ],
    )
    async with running(drv, tmp_path) as h, publisher(mosquitto.port) as pub:
        await connected(h)
        await pub.publish(f"{p}/m", b'{"a": 1, "b": "x"}')
        await h.until(lambda: h.events("mqtt.malformed"), what="the malformed event")
    assert [(r.point, r.value) for r in h.readings()] == [("m1.a", 1.0)]
    assert "m1.b" in h.events("mqtt.malformed")[0].data["reason"]


async def test_broker_restart_resubscribes(own_mosquitto: Server, tmp_path: Path) -> None:
    p = unique_prefix()
    drv = make_driver(
        own_mosquitto.port,
        [{"topic": f"{p}/+", "format": "number", "device": "{1}", "values": [{"point": "v"}]}],
    )
    async with running(drv, tmp_path) as h:
        await connected(h)
        async with publisher(own_mosquitto.port) as pub:
            await pub.publish(f"{p}/before", "1")
        await h.until(lambda: values(h).get("before.v") == 1.0, what="first reading")
        await asyncio.to_thread(own_mosquitto.restart)
        await h.until(
            lambda: [e for e in h.events("device.offline") if e.source == DRIVER_ID],
            what="device.offline for the broker",
        )
        await h.until(
            lambda: len([e for e in h.events("device.online") if e.source == DRIVER_ID]) == 2,
            what="device.online again",
        )
        async with publisher(own_mosquitto.port) as pub:
            await pub.publish(f"{p}/after", "2")
        await h.until(lambda: values(h).get("after.v") == 2.0, what="reading after restart")
        assert drv.stats().reconnects == 1
        assert drv.stats().connected


async def test_unreachable_broker_is_reported_not_fatal(tmp_path: Path) -> None:
    drv = make_driver(
        free_port(), [{"topic": "x", "format": "number", "device": "d", "values": [{"point": "v"}]}]
    )
    async with running(drv, tmp_path) as h:
        events = await h.until(
            lambda: [e for e in h.events("device.offline") if e.source == DRIVER_ID],
            what="device.offline for the broker",
        )
        await asyncio.sleep(0.3)  # it keeps retrying, quietly
    assert "refused" in events[0].data["reason"].lower()
    assert len(h.events("device.offline")) == 1
    assert not drv.stats().connected


async def test_backlog_of_a_persistent_session_does_not_time_out_the_subscribe(
    tmp_path: Path,
) -> None:
    """A broker that queues QoS 0 messages for an offline persistent session sends
    the whole backlog before the SUBACK; draining it may take longer than
    timeout_s, which must not count as a failed subscribe (that dropped the
    connection mid-backlog and lost the QoS 0 messages in flight)."""
    broker = mosquitto_server(tmp_path, "queue_qos0_messages true\n")
    broker.start()
    try:
        p = unique_prefix()
        n = 20_000
        sub = [{"topic": f"{p}/+", "format": "number", "device": "{1}", "values": [{"point": "v"}]}]

        def driver(timeout_s: float) -> MqttIngestDriver:
            drv = make_driver(broker.port, sub)
            session = {"client_id": f"persist-{p}", "clean_session": False, "timeout_s": timeout_s}
            cfg = drv.config.model_copy(
                update={"broker": drv.config.broker.model_copy(update=session)}
            )
            return MqttIngestDriver(cfg)

        async with running(driver(10), tmp_path / "a") as h:  # creates the session, goes away
            await connected(h)
        async with publisher(broker.port) as pub:
            for i in range(n):
                await pub.publish(f"{p}/d{i % 7}", str(i))
        drv = driver(0.05)  # far shorter than draining 20,000 queued messages takes
        async with running(drv, tmp_path / "b") as h:
            await h.until(lambda: drv.stats().received >= n, timeout=60, what="the backlog")
            await connected(h)
            assert not [e for e in h.events("device.offline") if e.source == DRIVER_ID]
            assert drv.stats().reconnects == 0
            assert sorted(int(r.value) for r in h.readings()) == list(range(n))
    finally:
        broker.stop()
