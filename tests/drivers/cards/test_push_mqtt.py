"""``card_mqtt`` against a real Mosquitto: controller events in, commands out,
bad messages counted, and the broker's loss and return."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drivers.cards.push_mqtt import MqttControllerConfig, MqttControllerDriver
from gateway.model import Command, Event
from tests.drivers.mqtt.conftest import Watcher, publisher, unique_prefix
from tests.fixtures.driver_harness import Harness, running
from tests.fixtures.servers import Server, _need, mosquitto_server

DRIVER_ID = "ctrl"


def make_driver(port: int, p: str, **extra: Any) -> MqttControllerDriver:
    cfg = MqttControllerConfig.model_validate(
        {
            "type": "card_mqtt",
            "id": DRIVER_ID,
            "broker": {
                "host": "127.0.0.1",
                "port": port,
                "reconnect_min_s": 0.05,
                "reconnect_max_s": 0.5,
            },
            "devices": {"R1": "gate_n1_in", "R2": "gate_n1_out", "D1": "gate_n1"},
            "events": [
                {
                    "match": f"{p}/+/event",
                    "when": {"type": "swipe"},
                    "emit": "card.presented",
                    "source": "{json.reader}",
                    "fields": {"uid": {"path": "card.no", "uid_format": "decimal"}},
                },
                {
                    "match": f"{p}/+/event",
                    "when": {"type": "access"},
                    "emit": "card.decision",
                    "source": "{json.reader}",
                    "fields": {
                        "uid": {"path": "card.no", "uid_format": "decimal"},
                        "granted": {"path": "result", "map": {"1": True, "0": False}},
                        "reason": "why",
                    },
                },
                {
                    "match": f"{p}/+/door/+",
                    "emit": "door.contact",
                    "source": "{topic.3}",
                    "fields": {"open": {"path": "state", "map": {"OPEN": True, "CLOSE": False}}},
                },
                {
                    "match": f"{p}/+/passage",
                    "emit": "gate.passage",
                    "source": "gate_n1",
                    "fields": {"count": "n", "direction": {"path": "dir", "map": {"0": "in"}}},
                },
            ],
            **extra,
        }
    )
    return MqttControllerDriver(cfg)


def mapped(h: Harness) -> list[Event]:
    skip = ("device.online", "device.offline", "mqtt.malformed", "command.result")
    return [e for e in h.events() if e.type not in skip]


async def connected(h: Harness, n: int = 1) -> None:
    await h.until(
        lambda: len([e for e in h.events("device.online") if e.source == DRIVER_ID]) >= n,
        what="the driver to connect and subscribe",
    )


async def test_controller_events_are_mapped(mosquitto: Server, tmp_path: Path) -> None:
    p = unique_prefix()
    drv = make_driver(mosquitto.port, p)
    async with running(drv, tmp_path) as h, publisher(mosquitto.port) as pub:
        await connected(h)
        swipe = {"type": "swipe", "reader": "R1", "card": {"no": "12345678"}}
        await pub.publish(f"{p}/c1/event", json.dumps(swipe), qos=1)
        decision = {"type": "access", "reader": "R2", "card": {"no": 255}, "result": 1, "why": "OK"}
        await pub.publish(f"{p}/c1/event", json.dumps(decision), qos=1)
        await pub.publish(f"{p}/c1/door/D1", b'{"state": "OPEN"}', qos=1)
        await pub.publish(f"{p}/c1/passage", b'{"n": 3, "dir": 0}', qos=1)
        await pub.publish(f"{p}/c1/event", b'{"type": "heartbeat"}', qos=1)
        await h.until(lambda: len(mapped(h)) >= 4, what="four mapped events")
        got = [(e.type, e.source, dict(e.data)) for e in mapped(h)]
        assert got == [
            ("card.presented", "gate_n1_in", {"uid": "BC614E", "format": "controller"}),
            (
                "card.decision",
                "gate_n1_out",
                {"uid": "FF", "granted": True, "reason": "OK", "format": "controller"},
            ),
            ("door.contact", "gate_n1", {"open": True}),
            ("gate.passage", "gate_n1", {"count": 3, "direction": "in"}),
        ]
        await h.until(lambda: drv.stats().ignored == 1, what="the heartbeat to be ignored")
        assert drv.stats().received == 5 and drv.stats().events == 4


async def test_bad_messages_are_counted_and_the_next_one_is_mapped(
    mosquitto: Server, tmp_path: Path
) -> None:
    p = unique_prefix()
    drv = make_driver(mosquitto.port, p)
    async with running(drv, tmp_path) as h, publisher(mosquitto.port) as pub:
        await connected(h)
        topic = f"{p}/c1/event"
        await pub.publish(topic, b"{not json", qos=1)
        await pub.publish(topic, b'{"type": "swipe", "reader": "R1"}', qos=1)  # no card.no
        await pub.publish(topic, b'{"type": "swipe", "reader": "R1", "card": {"no": [1]}}', qos=1)
        await pub.publish(f"{p}/c1/door/D9", b'{"state": "OPEN"}', qos=1)  # not in the table
        await pub.publish(topic, b'{"type": "swipe", "reader": "R1", "card": {"no": "1"}}', qos=1)
        await h.until(lambda: mapped(h), what="the good message after the bad ones")
        assert [e.data["uid"] for e in mapped(h)] == ["01"]
        stats = drv.stats()
        assert stats.malformed == 4 and stats.received == 5
        notes = h.events("mqtt.malformed")
        # one event per topic per minute: the first bad message of each topic
        assert [(e.source, e.data["topic"]) for e in notes] == [
            (DRIVER_ID, topic),
            (DRIVER_ID, f"{p}/c1/door/D9"),
        ]
        assert "bad JSON" in notes[0].data["reason"]
        assert "unknown device 'D9'" in notes[1].data["reason"]
        assert notes[0].data["subscription"] == f"{p}/+/event"


async def test_commands_are_published_on_the_command_topic(
    mosquitto: Server, tmp_path: Path
) -> None:
    p = unique_prefix()
    commands = {
        "topic": f"{p}/{{name}}/cmd",
        "payloads": {
            "pulse": {"cmd": "open", "door": "{name}", "relay": "{output}", "time": "{seconds}"},
            "feedback": {"cmd": "led", "to": "{device}", "text": "result={result}", "seq": "{id}"},
        },
    }
    drv = make_driver(mosquitto.port, p, commands=commands)
    async with (
        running(drv, tmp_path) as h,
        Watcher(mosquitto.port, f"{p}/+/cmd") as watcher,
    ):
        await connected(h)
        await h.bus.publish(
            Command("gate_n1", "pulse", {"output": 1, "seconds": 3}, id="c-1", origin="access")
        )
        await h.bus.publish(Command("gate_n1_in", "feedback", {"result": "grant"}, id="c-2"))
        await h.bus.publish(Command("gate_n1_in", "feedback", {"result": "maybe"}, id="c-3"))
        await h.bus.publish(Command("gate_n1", "pulse", {"output": 0}, id="c-4"))
        await h.bus.publish(Command("gate_n1", "snapshot", {}, id="c-5"))
        await h.until(lambda: len(h.events("command.result")) >= 5, what="five command results")
        await watcher.until(lambda: len(watcher.got) >= 2, what="two published commands")
        assert [(r.topic, json.loads(r.payload)) for r in watcher.got] == [
            (f"{p}/D1/cmd", {"cmd": "open", "door": "D1", "relay": 1, "time": 3.0}),
            (
                f"{p}/R1/cmd",
                {"cmd": "led", "to": "gate_n1_in", "text": "result=grant", "seq": "c-2"},
            ),
        ]
        results = {e.data["id"]: e for e in h.events("command.result")}
        assert results["c-1"] == Event(
            "command.result",
            "gate_n1",
            results["c-1"].ts,
            {"id": "c-1", "target": "gate_n1", "action": "pulse", "result": "done", "reason": ""},
        )
        assert results["c-2"].data["result"] == "done"
        assert results["c-3"].data["result"] == "refused"
        assert "'grant' or 'deny'" in results["c-3"].data["reason"]
        assert "'seconds' is required" in results["c-4"].data["reason"]
        assert results["c-5"].data["result"] == "refused"
        assert drv.stats().commands_done == 2 and drv.stats().commands_refused == 3


async def test_broker_loss_is_reported_and_commands_fail_fast(tmp_path: Path) -> None:
    _need("mosquitto")
    (tmp_path / "broker").mkdir()
    broker = mosquitto_server(tmp_path / "broker")
    broker.start()
    try:
        p = unique_prefix()
        drv = make_driver(broker.port, p, commands={"topic": f"{p}/{{name}}/cmd"})
        async with running(drv, tmp_path) as h:
            await connected(h)
            broker.stop()
            await h.until(
                lambda: [e for e in h.events("device.offline") if e.source == DRIVER_ID],
                what="device.offline for the broker",
            )
            assert not drv.stats().connected
            await h.bus.publish(Command("gate_n1", "pulse", {"seconds": 2}, id="late"))
            failed = await h.until(lambda: h.events("command.result"), what="a command result")
            assert failed[0].data["result"] == "failed"
            assert failed[0].data["reason"] == "broker not connected"
            broker.start()
            await connected(h, 2)
            async with publisher(broker.port) as pub:
                await pub.publish(f"{p}/c1/door/D1", b'{"state": "CLOSE"}', qos=1)
                await h.until(lambda: mapped(h), what="a message after the reconnect")
            assert mapped(h)[0].data == {"open": False}
            assert drv.stats().reconnects == 1
    finally:
        broker.stop()
