"""Config validation: what each bad block says, and what a good one declares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.mqtt.config import MqttIngestConfig, MqttUplinkConfig
from gateway.config.loader import load_site
from gateway.driver import PointSpec

SAMPLE = Path(__file__).resolve().parents[3] / "drivers" / "mqtt" / "sample.yaml"


def ingest(subs: list[dict[str, Any]], **broker: Any) -> MqttIngestConfig:
    return MqttIngestConfig.model_validate(
        {"type": "mqtt", "id": "m", "broker": {"host": "h", **broker}, "subscriptions": subs}
    )


def sub(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "topic": "a/+/b",
        "device": "{1}",
        "values": [{"point": "v", "path": "v"}],
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (sub(device="{2}"), "level 2, which is not a '+' level"),
        (sub(device="{0}"), "usable here: {1}"),
        (sub(topic="a/#/b"), "'#' must be the last level"),
        (sub(topic="a/b+"), "must fill a whole level"),
        (sub(values=[{"point": "v", "path": "a..b"}]), "JSON path 'a..b'"),
        (sub(values=[{"point": "v", "path": "a[x]"}]), "JSON path 'a[x]'"),
        (sub(values=[{"point": "v"}]), "needs a 'path'"),
        (sub(format="number", values=[{"point": "v", "path": "v"}]), "takes no 'path'"),
        (sub(format="number", values=[{"point": "a"}, {"point": "b"}]), "one value per message"),
        (sub(format="number", values=[{"point": "a", "type": "bool"}]), "type number"),
        (
            sub(
                format="text", values=[{"point": "a"}], timestamp={"path": "t", "format": "epoch_s"}
            ),
            "no field to read a timestamp",
        ),
        (
            sub(format="text", values=[], event={"type": "x.y", "data": {"a": "a"}}),
            "event.data needs json",
        ),
        (sub(values=[{"point": "v", "path": "v"}, {"point": "v", "path": "w"}]), "mapped twice"),
        (sub(values=[]), "maps nothing"),
        (sub(values=[{"point": "a.b", "path": "v"}]), "letters, digits"),
        (sub(values=[{"point": "x{1", "path": "v"}]), "braces"),
        (
            sub(timestamp={"path": "t", "format": "iso8601", "timezone": "Mars/Base"}),
            "unknown time zone",
        ),
        (sub(timestamp={"path": "t", "format": "epoch_us"}), "epoch_s"),
        (sub(event={"type": "NoDots"}), "pattern"),
        (sub(event={"type": "a.b", "source": "{3}"}), "event.source"),
        (sub(qos=3), "qos"),
        (sub(extra=1), "Extra inputs are not permitted"),
    ],
)
def test_bad_subscriptions_are_explained(block: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as e:
        ingest([block])
    assert message in str(e.value), str(e.value)


@pytest.mark.parametrize(
    ("broker", "message"),
    [
        ({"clean_session": False}, "needs a fixed broker.client_id"),
        ({"password": "x"}, "username is not"),
        ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "must not exceed"),
        ({"tls": {"key_file": "k.pem"}}, "tls.key_file is set"),
        ({"port": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_broker_blocks_are_explained(broker: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as e:
        ingest([sub()], **broker)
    assert message in str(e.value), str(e.value)


def test_uplink_topic_root_must_be_a_plain_topic() -> None:
    for root in ("a/#", "a/+/b", "/a", "a//b", ""):
        with pytest.raises(ValidationError, match="topic_root"):
            MqttUplinkConfig.model_validate(
                {"type": "mqtt_uplink", "id": "u", "broker": {"host": "h"}, "topic_root": root}
            )


def test_devices_points_and_defaults() -> None:
    cfg = ingest(
        [
            sub(
                device="tx1",
                topic="a/b",
                values=[
                    {"point": "temp", "path": "t", "unit": "°C", "deadband": 0.5, "heartbeat_s": 60}
                ],
            ),
            sub(),
            sub(topic="x/+/y/+", device="m{1}", values=[{"point": "{3}", "path": "v"}]),
            {"topic": "tele/+/LWT", "format": "tasmota", "device": "{1}"},
        ]
    )
    assert list(cfg.devices()) == ["tx1"]
    assert list(cfg.points()) == [
        PointSpec("tx1", "temp", unit="°C", deadband=0.5, heartbeat=60),
        PointSpec("*", "v"),
        PointSpec("*", "*"),
    ]
    assert cfg.broker.effective_port == 1883
    assert ingest([sub()], tls={}).broker.effective_port == 8883
    assert cfg.broker.password is None


def test_password_is_secret() -> None:
    cfg = ingest([sub()], username="u", password="hunter2")
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.model_dump())


def test_sample_loads_as_part_of_a_site(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        f"version: 1\nsite: {{id: demo-estate}}\ninclude: [{SAMPLE}]\n"
        "devices:\n  - {id: tx1, kind: transformer}\n  - {id: pump1, kind: pump}\n"
        "  - {id: tank1, kind: tank}\n"
    )
    loaded = load_site(site, env={"UPLINK_MQTT_PASSWORD": "x"})
    types = [d.type for d in loaded.config.drivers]
    assert types == ["mqtt", "mqtt_uplink"]
    field = loaded.config.drivers[0]
    assert isinstance(field, MqttIngestConfig)
    assert "pump1.pressure" in {p.point for p in field.points()}
