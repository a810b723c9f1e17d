"""The push mapping without a transport: conversions, camera payloads, bad
messages, and what a bad ``events:`` block says when the file is loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from drivers.cards.push_config import EventEntry
from drivers.cards.push_http import HttpControllerConfig
from drivers.cards.push_map import EventMap
from drivers.cards.push_mqtt import MqttControllerConfig
from gateway.config.loader import load_site
from gateway.model import Event

NOW = 1_795_226_400_000_000_000
SAMPLE = Path(__file__).resolve().parents[3] / "drivers" / "cards" / "sample_push.yaml"

VZENITH: dict[str, Any] = {
    "AlarmInfoPlate": {
        "channel": 0,
        "deviceName": "IVS",
        "ipaddr": "192.168.50.63",
        "serialno": "e2d3a9c1-6b7f0a21",
        "result": {
            "PlateResult": {
                "bright": 0,
                "carColor": 0,
                "colorType": 1,
                "confidence": 93,
                "direction": 4,
                "license": "沪A 12345",
                "location": {"RECT": {"bottom": 480, "left": 300, "right": 460, "top": 440}},
                "timeStamp": {"Timeval": {"sec": 1795226401, "usec": 512000}},
                "triggerType": 8,
                "type": 1,
            }
        },
    }
}
HIKVISION: dict[str, Any] = {
    "ipAddress": "192.168.50.64",
    "portNo": 80,
    "protocol": "HTTP",
    "channelID": 1,
    "dateTime": "2026-11-21T18:00:00+08:00",
    "activePostCount": 1,
    "eventType": "ANPR",
    "eventState": "active",
    "eventDescription": "ANPR",
    "ANPR": {
        "country": "CHN",
        "plateNumber": "京B·6F789",
        "direction": "reverse",
        "confidenceLevel": 98,
        "plateType": "92TypeCivil",
        "plateColor": "blue",
        "vehicleType": "vehicle",
    },
}


def sample_blocks() -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = yaml.safe_load(SAMPLE.read_text())["drivers"]
    return blocks


def mqtt_map() -> EventMap:
    cfg = MqttControllerConfig.model_validate(sample_blocks()[0])
    return EventMap(cfg.events, cfg.device_table, "mqtt")


def http_map() -> EventMap:
    cfg = HttpControllerConfig.model_validate(sample_blocks()[1])
    return EventMap(cfg.events, cfg.device_table, "http")


def one(m: EventMap, key: str, doc: Any) -> Event:
    result = m.map(key, json.dumps(doc).encode(), NOW)
    assert not result.problems, result.problems
    assert len(result.events) == 1, result.events
    return result.events[0]


def problem(m: EventMap, key: str, payload: bytes) -> str:
    result = m.map(key, payload, NOW)
    assert not result.events
    assert len(result.problems) == 1
    return result.problems[0][1]


def test_swipe_with_a_decimal_uid_and_the_devices_table() -> None:
    e = one(
        mqtt_map(),
        "ctrl/c1/event",
        {"type": "swipe", "reader": "R1", "card": {"no": "12345678"}, "time": 1795226400},
    )
    assert e == Event(
        "card.presented",
        "gate_n1_in",
        1795226400 * 10**9,
        {"uid": "BC614E", "format": "controller"},
    )


def test_controller_decision_in_monitor_mode() -> None:
    e = one(
        mqtt_map(),
        "ctrl/c1/event",
        {"type": "access", "reader": "R2", "card": {"no": 12345678}, "result": 0, "why": "EXPIRED"},
    )
    assert e.type == "card.decision" and e.source == "gate_n1_out" and e.ts == NOW
    assert e.data == {
        "uid": "BC614E",
        "granted": False,
        "reason": "EXPIRED",
        "format": "controller",
    }


def test_door_contact_enum_topic_level_and_gate_count() -> None:
    m = mqtt_map()
    assert one(m, "ctrl/c1/door/D1", {"state": "OPEN"}).data == {"open": True}
    assert one(m, "ctrl/c1/door/D1", {"state": "CLOSE"}) == Event(
        "door.contact", "gate_n1", NOW, {"open": False}
    )
    assert one(m, "ctrl/c1/passage", {"n": 2, "dir": 1}).data == {"count": 2, "direction": "out"}


def test_when_picks_the_entry_and_other_messages_are_ignored() -> None:
    m = mqtt_map()
    assert (
        one(m, "ctrl/c1/event", {"type": "tamper", "reader": "R1", "on": True}).type
        == "reader.tamper"
    )
    assert (
        one(m, "ctrl/c1/event", {"type": "tamper", "reader": "R1", "on": False}).type
        == "reader.tamper_cleared"
    )
    heartbeat = m.map("ctrl/c1/event", b'{"type": "heartbeat"}', NOW)
    assert heartbeat.ignored
    assert m.map("other/topic", b"{}", NOW).ignored


def test_vzenith_plate_with_scaled_confidence_and_its_own_time() -> None:
    e = one(http_map(), "/anpr/vzenith", VZENITH)
    assert e == Event(
        "plate.read", "cam_east_in", 1795226401 * 10**9, {"plate": "沪A12345", "confidence": 0.93}
    )


def test_vzenith_no_plate_marker_is_skipped() -> None:
    doc = json.loads(json.dumps(VZENITH))
    doc["AlarmInfoPlate"]["result"]["PlateResult"]["license"] = "_无_"
    assert http_map().map("/anpr/vzenith", json.dumps(doc).encode(), NOW).ignored


def test_hikvision_plate_with_direction_enum_and_iso_time() -> None:
    e = one(http_map(), "/anpr/hikvision", HIKVISION)
    assert e.source == "cam_east_out"
    assert e.data == {"plate": "京B6F789", "confidence": 0.98, "direction": "out"}
    assert e.ts == 1795255200 * 10**9  # 18:00 +08:00 is 10:00 UTC
    doc = {**HIKVISION, "ANPR": {k: v for k, v in HIKVISION["ANPR"].items() if k != "direction"}}
    assert one(http_map(), "/anpr/hikvision", doc).data["direction"] == "in"  # the default


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "bad JSON"),
        (b'{"type": "swipe", "reader": "R1", "time": 1}', "uid: no 'card.no' in the message"),
        (b'{"type": "swipe", "reader": "R1", "card": {"no": true}, "time": 1}', "uid: wrong type"),
        (
            b'{"type": "swipe", "reader": "R1", "card": {"no": "12AB"}, "time": 1}',
            "not a decimal card number",
        ),
        (
            b'{"type": "swipe", "reader": "R9", "card": {"no": "1"}, "time": 1}',
            "unknown device 'R9'",
        ),
        (b'{"type": "swipe", "reader": "R1", "card": {"no": "1"}, "time": "x"}', "ts: timestamp"),
        (
            b'{"type": "access", "reader": "R1", "card": {"no": "1"}, "result": 7, "why": ""}',
            "granted: 7 is not in its map",
        ),
    ],
)
def test_bad_controller_messages_say_why(payload: bytes, reason: str) -> None:
    assert reason in problem(mqtt_map(), "ctrl/c1/event", payload)


def test_bad_camera_values_say_why() -> None:
    m = http_map()
    doc = json.loads(json.dumps(VZENITH))
    doc["AlarmInfoPlate"]["result"]["PlateResult"]["confidence"] = "high"
    assert "confidence: not a number" in problem(m, "/anpr/vzenith", json.dumps(doc).encode())
    doc["AlarmInfoPlate"]["result"]["PlateResult"]["confidence"] = 930
    assert "outside 0-1" in problem(m, "/anpr/vzenith", json.dumps(doc).encode())
    doc = {
        **HIKVISION,
        "ANPR": {"plateNumber": 12345, "direction": "forward", "confidenceLevel": 90},
    }
    assert "plate: wrong type" in problem(m, "/anpr/hikvision", json.dumps(doc).encode())
    doc = {
        **HIKVISION,
        "ANPR": {"plateNumber": "京B1", "direction": "sideways", "confidenceLevel": 90},
    }
    assert "'sideways' is not in its map" in problem(m, "/anpr/hikvision", json.dumps(doc).encode())


def test_one_bad_entry_does_not_cost_the_others() -> None:
    entries = [
        EventEntry.model_validate(
            {"match": "a/+", "emit": "door.contact", "source": "d1", "fields": {"open": "o"}}
        ),
        EventEntry.model_validate(
            {"match": "a/#", "emit": "door.exit_request", "source": "d1_{topic.1}"}
        ),
    ]
    result = EventMap(entries, {}, "mqtt").map("a/x", b'{"o": "maybe"}', NOW)
    assert [e.source for e in result.events] == ["d1_x"]
    assert "open: not a boolean" in result.problems[0][1]


def mqtt_block(**entry: Any) -> dict[str, Any]:
    base = {"match": "c/+/e", "emit": "card.presented", "source": "r1", "fields": {"uid": "u"}}
    return {"type": "card_mqtt", "id": "m", "broker": {"host": "h"}, "events": [{**base, **entry}]}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"emit": "door.contact"}, "needs fields open"),
        ({"emit": "plate.read"}, "needs fields plate"),
        ({"fields": {"value": "v"}}, "uid or format+value"),
        ({"emit": "card.decision"}, "granted+uid"),
        ({"emit": "bogus.event"}, "Input should be"),
        ({"source": "{topic.2}"}, "level 2 is not a '+' or '#' level"),
        ({"source": "{topic.x}"}, "needs a level number"),
        ({"source": "r{json.a..b}"}, "JSON path 'a..b'"),
        ({"source": "bad id"}, "letters, digits"),
        ({"match": "c/#/e"}, "'#' must be the last level"),
        ({"fields": {"uid": {"path": "u", "scale": 2}}}, "scale applies to numbers only"),
        ({"fields": {"uid": "u", "open": {"path": "o", "uid_format": "decimal"}}}, "uid only"),
        ({"fields": {"uid": {"path": "u", "const": "AB"}}}, "either 'path' or 'const'"),
        ({"fields": {"uid": "u", "direction": {"path": "d", "map": {"1": "up"}}}}, "map['1']"),
        ({"fields": {"uid": "u", "direction": {"const": "sideways"}}}, "fields.direction.const"),
        ({"ts": {"path": "t", "format": "epoch_us"}}, "epoch_s"),
        ({"when": {"a": {"b": 1}}}, "compare with text"),
    ],
)
def test_bad_entries_fail_at_load(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=None) as err:
        MqttControllerConfig.model_validate(mqtt_block(**entry))
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            {
                "events": [
                    {"match": "anpr", "emit": "plate.read", "source": "c", "fields": {"plate": "p"}}
                ]
            },
            "a URL path",
        ),
        (
            {"events": [{"match": "/a", "emit": "door.exit_request", "source": "{topic.1}"}]},
            "no topic levels",
        ),
        ({"token_env": "1BAD"}, "String should match pattern"),
        ({"devices": {"R1": "not ok"}}, "letters, digits"),
        ({"max_body": 10}, "greater than or equal to 256"),
    ],
)
def test_bad_http_blocks_fail_at_load(block: dict[str, Any], message: str) -> None:
    base = {
        "type": "card_http",
        "id": "h",
        "port": 8080,
        "events": [{"match": "/a", "emit": "door.exit_request", "source": "d"}],
    }
    with pytest.raises(ValidationError) as err:
        HttpControllerConfig.model_validate({**base, **block})
    assert message in str(err.value)


def test_bad_command_templates_fail_at_load() -> None:
    block = mqtt_block()
    for commands, message in (
        ({"topic": "c/{door}/cmd"}, "unknown placeholder {door}"),
        ({"topic": "c/+/cmd"}, "without '+'"),
        (
            {"topic": "c/{name}", "payloads": {"pulse": {"x": "{when}"}}},
            "unknown placeholder {when}",
        ),
        ({"topic": "c/{name}", "payloads": {"reboot": {}}}, "only feedback and pulse"),
    ):
        with pytest.raises(ValidationError) as err:
            MqttControllerConfig.model_validate({**block, "commands": commands})
        assert message in str(err.value)


def test_the_sample_loads_in_a_site(tmp_path: Path) -> None:
    kinds = {
        "gate_n1": "gate",
        "gate_n1_in": "card_reader",
        "gate_n1_out": "card_reader",
        "cam_east_in": "camera",
        "cam_east_out": "camera",
    }
    devices = "".join(f"  - {{id: {d}, kind: {k}}}\n" for d, k in kinds.items())
    site_file = tmp_path / "site.yaml"
    site_file.write_text(f"version: 1\nsite: {{id: s}}\ninclude: [{SAMPLE}]\ndevices:\n{devices}")
    loaded = load_site(site_file)
    drivers = {d.id: d for d in loaded.config.drivers}
    assert set(drivers["gate_ctrl"].devices()) == {"gate_n1", "gate_n1_in", "gate_n1_out"}
    assert set(drivers["anpr_east"].devices()) == {"cam_east_in", "cam_east_out"}
