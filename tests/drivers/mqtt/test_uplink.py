"""The uplink against a real Mosquitto: topic tree, outbox across outages and
process deaths, retained availability, the last will."""

from __future__ import annotations

import asyncio
import json
import sys
from asyncio.subprocess import Process
from pathlib import Path
from typing import Any

from drivers.mqtt.config import MqttUplinkConfig
from drivers.mqtt.uplink import MqttUplinkDriver, decode_record, encode_record
from gateway.model import Alarm, AlarmState, Command, Event, Priority, Reading
from tests.drivers.mqtt.conftest import Watcher, unique_prefix
from tests.fixtures.driver_harness import Harness, running
from tests.fixtures.servers import Server, free_port

ROOT_DIR = Path(__file__).resolve().parents[3]


def make_uplink(port: int, **extra: Any) -> MqttUplinkDriver:
    broker = {
        "host": "127.0.0.1",
        "port": port,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.3,
        **extra.pop("broker", {}),
    }
    cfg = MqttUplinkConfig.model_validate(
        {"type": "mqtt_uplink", "id": "up", "broker": broker, **extra}
    )
    return MqttUplinkDriver(cfg)


async def subscribed(h: Harness) -> None:
    await h.until(
        lambda: any(s.name == "up.uplink" for s in h.bus.stats()), what="the uplink to subscribe"
    )


async def ticks(h: Harness, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await h.bus.publish(Event("test.tick", "tester", 1_000 + i, {"n": i}))


def tick_numbers(w: Watcher) -> list[int]:
    return [json.loads(p)["data"]["n"] for p in w.payloads("/events/test/tick")]


def test_outbox_records_round_trip() -> None:
    rec = encode_record("a/b", b"\x00payload", 1, True)
    assert decode_record(rec) == ("a/b", b"\x00payload", 1, True)
    assert decode_record(encode_record("t", b"", 0, False)) == ("t", b"", 0, False)


async def test_topic_tree_payloads_and_clean_stop(mosquitto: Server, tmp_path: Path) -> None:
    site = unique_prefix()
    base = f"estate/v1/{site}"
    drv = make_uplink(mosquitto.port, publish_readings=True)
    async with Watcher(mosquitto.port, f"{base}/#") as w:
        async with running(drv, tmp_path, site=site) as h:
            await subscribed(h)
            await w.until(lambda: b"online" in w.payloads("/gateway/status"), what="online")
            await h.bus.publish(Event("door.forced", "door1", 123, {"by": "x", "n": 2}))
            await h.bus.publish(
                Alarm(
                    "limit-tx1",
                    "limit",
                    "tx1.temp",
                    AlarmState.UNACKNOWLEDGED,
                    Priority.HIGH,
                    456,
                    "too hot",
                    {"value": 131.5},
                )
            )
            await h.bus.publish(Reading("tx1.temp", 21.5, 789))
            await h.ctx.health.device_offline("pm1", "timeout", driver="modbus")
            await w.until(lambda: len(w.payloads("/availability/pm1")) == 1, what="availability")
            await w.until(lambda: w.payloads("/readings/tx1/temp"), what="the reading")
            await w.until(lambda: w.payloads("/alarms/limit-tx1"), what="the alarm")
        await w.until(lambda: w.payloads("/gateway/status")[-1:] == [b"offline"], what="goodbye")
    got = {r.topic: r.payload for r in w.got}
    assert json.loads(got[f"{base}/events/door/forced"]) == {
        "type": "door.forced",
        "source": "door1",
        "ts": 123,
        "data": {"by": "x", "n": 2},
    }
    assert json.loads(got[f"{base}/alarms/limit-tx1"]) == {
        "id": "limit-tx1",
        "rule": "limit",
        "source": "tx1.temp",
        "state": "unacknowledged",
        "priority": "high",
        "ts": 456,
        "message": "too hot",
        "transition": "",
        "category": "",
        "route": "",
        "device": "",
        "user": "",
        "note": "",
        "data": {"value": 131.5},
    }
    assert json.loads(got[f"{base}/readings/tx1/temp"]) == {"v": 21.5, "ts": 789, "q": "good"}
    offline = json.loads(got[f"{base}/events/device/offline"])
    assert (offline["source"], offline["data"]["reason"]) == ("pm1", "timeout")
    assert got[f"{base}/availability/pm1"] == b"offline"
    # A newcomer gets the retained state: the device's availability and the
    # gateway's goodbye.
    async with Watcher(mosquitto.port, f"{base}/+/#") as late:
        await late.until(lambda: len(late.got) >= 2, what="retained messages")
    retained = {r.topic: r.payload for r in late.got if r.retain}
    assert retained[f"{base}/availability/pm1"] == b"offline"
    assert retained[f"{base}/gateway/status"] == b"offline"
    assert f"{base}/events/door/forced" not in retained


async def test_outage_events_wait_and_arrive_once_in_order(
    own_mosquitto: Server, tmp_path: Path
) -> None:
    site = unique_prefix()
    drv = make_uplink(own_mosquitto.port, publish_readings=True, qos_readings=1)
    async with (
        Watcher(
            own_mosquitto.port, f"estate/v1/{site}/#", identifier=f"w-{site}", clean_session=False
        ) as w,
        running(drv, tmp_path, site=site) as h,
    ):
        await subscribed(h)
        await w.until(lambda: b"online" in w.payloads("/gateway/status"), what="online")
        await ticks(h, 5)
        await w.until(lambda: len(tick_numbers(w)) == 5, what="5 ticks before the outage")
        # Everything acknowledged both ways before the broker goes, so that what
        # follows is about the outage (a message in flight at that moment may,
        # by MQTT's at-least-once rule, come twice).
        await h.until(lambda: drv.stats().outbox_pending == 0, what="the acks")
        await asyncio.sleep(0.2)
        await asyncio.to_thread(own_mosquitto.stop)
        await h.until(
            lambda: [e for e in h.events("device.offline") if e.source == "up"],
            what="the uplink to notice",
        )
        await ticks(h, 30, start=5)
        for v in range(4):
            await h.bus.publish(Reading("tx1.temp", float(v), 2_000 + v))
        await h.until(lambda: drv.stats().outbox_pending >= 30, what="30 events on disk")
        assert drv.stats().readings_pending == 1  # latest per point only
        await asyncio.to_thread(own_mosquitto.start)
        await w.until(lambda: len(tick_numbers(w)) >= 35, what="the outbox after the outage")
        await w.until(lambda: w.payloads("/readings/tx1/temp"), what="the held reading")
        await h.until(lambda: drv.stats().outbox_pending == 0, what="an empty outbox")
        await asyncio.sleep(0.3)  # room for a duplicate to show up
    assert tick_numbers(w) == list(range(35))
    assert [json.loads(p)["v"] for p in w.payloads("/readings/tx1/temp")] == [3.0]
    assert drv.stats().reconnects == 1


async def spawn_child(port: int, data_dir: Path, site: str, events: int) -> Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.drivers.mqtt.uplink_child",
        str(port),
        str(data_dir),
        site,
        str(events),
        cwd=ROOT_DIR,
        stdout=asyncio.subprocess.PIPE,
    )


async def first_line(child: Process) -> str:
    assert child.stdout is not None
    return (await asyncio.wait_for(child.stdout.readline(), 30)).decode().strip()


async def kill(child: Process) -> None:
    """SIGKILL: no DISCONNECT packet, no cleanup; the kernel closes the socket."""
    if child.returncode is None:
        child.kill()
    await child.wait()


async def test_outbox_survives_kill_and_next_instance_delivers(
    mosquitto: Server, tmp_path: Path
) -> None:
    site = unique_prefix()
    dead_port = free_port()  # nothing listens: the broker is unreachable
    child = await spawn_child(dead_port, tmp_path, site, 12)
    try:
        assert await first_line(child) == "queued"
    finally:
        await kill(child)
    drv = make_uplink(mosquitto.port)
    async with (
        Watcher(mosquitto.port, f"estate/v1/{site}/events/test/#") as w,
        running(drv, tmp_path, site=site),
    ):
        await w.until(lambda: len(tick_numbers(w)) >= 12, what="the dead instance's events")
        await asyncio.sleep(0.2)
    assert tick_numbers(w) == list(range(12))


async def test_last_will_when_the_gateway_dies(mosquitto: Server, tmp_path: Path) -> None:
    site = unique_prefix()
    status = f"estate/v1/{site}/gateway/status"
    async with Watcher(mosquitto.port, status) as w:
        child = await spawn_child(mosquitto.port, tmp_path, site, 0)
        try:
            assert await first_line(child) == "connected"
            await w.until(lambda: w.payloads() == [b"online"], what="online")
        finally:
            await kill(child)  # the broker sees the socket close and sends the will
        await w.until(lambda: w.payloads() == [b"online", b"offline"], what="the last will")
    async with Watcher(mosquitto.port, status) as late:
        await late.until(lambda: late.got, what="the retained status")
    assert [(r.payload, r.retain) for r in late.got] == [(b"offline", True)]


async def test_alarm_commands_from_the_broker_reach_the_bus(
    mosquitto: Server, tmp_path: Path
) -> None:
    import aiomqtt

    site = unique_prefix()
    topic = f"estate/v1/{site}/alarms/command"
    drv = make_uplink(mosquitto.port, alarm_commands={"role": "guard"})
    async with running(drv, tmp_path, site=site) as h:
        await subscribed(h)
        await h.until(lambda: drv.stats().connected, what="the uplink to connect")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
            ack = {"action": "acknowledge", "alarm": "r1@tx1.t", "user": "张工", "note": "去现场"}
            await c.publish(topic, json.dumps(ack).encode(), qos=1)
            await c.publish(topic, b"{not json", qos=1)
            await c.publish(topic, json.dumps({"action": "delete", "user": "x"}).encode(), qos=1)

        def commands() -> list[Command]:
            return [m for m in h.seen if isinstance(m, Command)]

        await h.until(lambda: len(h.events("mqtt.command_rejected")) == 2, what="rejections")
        await h.until(commands, what="the command")
    (cmd,) = commands()
    assert (cmd.target, cmd.action, cmd.user, cmd.role) == (
        "alarms",
        "acknowledge",
        "张工",
        "guard",
    )
    assert cmd.args == {"id": "r1@tx1.t", "note": "去现场"}
    assert cmd.origin == f"mqtt:127.0.0.1:{mosquitto.port}"
    reasons = [e.data["reason"] for e in h.events("mqtt.command_rejected")]
    assert reasons[0].startswith("not JSON")
    assert "'action' must be one of" in reasons[1]
