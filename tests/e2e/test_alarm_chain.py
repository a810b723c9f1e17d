"""The whole alarm chain in a running gateway, from real sources to real peers:

the simulated estate (Modbus) and a Mosquitto sensor -> rules -> alarms ->
escalation -> a signed webhook (level 1) and e-mail through aiosmtpd (level 2)
-> one tap on the signed link in the message -> acknowledged, escalation
stopped; an acknowledgement over MQTT; and the state surviving a restart.

Real time here (the drivers poll for real); the escalation policy is short
(level 2 after 3 s). The timing rules themselves are tested on the manual
clock in tests/gateway/{rules,alarms,notify}.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
import yaml

from drivers.modbus.estate import Estate
from gateway.config.loader import load_site
from gateway.model import AlarmState
from gateway.registry import load_registry
from gateway.runtime import Gateway
from tests.fixtures.receivers import Receiver, SmtpServer
from tests.fixtures.servers import Server, free_port

pytestmark = pytest.mark.slow

WINDING = "tx1-winding_alarm@tx1.winding_temp_max"
ROOM = "room1-hot@room1.temp"


def site_file(tmp: Path, estate: Estate, mqtt_port: int, rx: Receiver, smtp_port: int) -> Path:
    site_id = f"chain-{uuid.uuid4().hex[:8]}"
    api_port = free_port()
    doc: dict[str, Any] = {
        "version": 1,
        "site": {"id": site_id, "timezone": "Asia/Shanghai", "locale": "zh-CN"},
        "data_dir": str(tmp / "var"),
        "api": {"port": api_port},
        **yaml.safe_load(estate.site_fragment()),
    }
    doc["devices"].append({"id": "room1", "kind": "sensor", "name": "配电房温度"})
    doc["drivers"] += [
        {
            "type": "mqtt",
            "id": "sensors",
            "broker": {"host": "127.0.0.1", "port": mqtt_port},
            "subscriptions": [
                {
                    "topic": f"{site_id}/room1",
                    "device": "room1",
                    "values": [{"point": "temp", "path": "t"}],
                }
            ],
        },
        {
            "type": "mqtt_uplink",
            "id": "uplink",
            "broker": {"host": "127.0.0.1", "port": mqtt_port},
            "alarm_commands": {"role": "guard"},
        },
    ]
    doc["rules"] = [
        {"id": "room1-hot", "point": "room1.temp", "h": 35, "priority": "high"},
    ]
    doc["oncall"] = {
        "public_url": f"http://127.0.0.1:{api_port}",
        "people": {
            "zhang": {
                "name": "张工",
                "email": "zhang@example.cn",
                "mobile": "+8613800000001",
                "certifications": ["hv_electrician"],
            },
            "li": {"name": "李工", "email": "li@example.cn", "locale": "en"},
        },
        "teams": {
            "electrical": {"members": ["zhang", "li"]},
            "security": {"members": ["li"]},
        },
        "routes": {"electrical": "electrical", "hvac": "electrical", "it": "security"},
        "policies": {
            "default": {
                "levels": [
                    {"after_min": 0, "notify": "on_duty", "channels": ["hook"]},
                    {"after_min": 0.05, "notify": "team", "channels": ["mail"]},
                ],
            }
        },
    }
    doc["notify"] = {
        "channels": {
            "hook": {"type": "webhook", "url": rx.webhook_url, "secret": rx.webhook_secret},
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "none",
                "from_address": "gw@example.cn",
            },
        }
    }
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


async def until(check: Callable[[], Any], within: float = 30.0, what: str = "") -> Any:
    end = time.monotonic() + within
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def hooks_for(rx: Receiver, alarm_id: str) -> list[dict[str, Any]]:
    docs = [r.json for r in rx.requests_to("/webhook") if r.verified]
    return [d for d in docs if d.get("alarm", {}).get("id") == alarm_id]


async def test_source_to_phone_and_back(mosquitto: Server, tmp_path: Path) -> None:
    async with Estate(now=datetime(2026, 7, 1, 6, tzinfo=UTC)) as estate, Receiver() as rx:
        with SmtpServer() as smtp:
            path = site_file(tmp_path, estate, mosquitto.port, rx, smtp.port)
            site = load_site(path)
            gw = Gateway(site, load_registry(), metrics_interval=3600)
            stop = asyncio.Event()
            runner = asyncio.create_task(gw.run(stop))
            try:
                await until(lambda: gw.alerting is not None and gw.api is not None, what="start")
                assert gw.alerting is not None
                manager = gw.alerting.manager

                # 1. A transformer overheats in the simulator: level 1 reaches the
                # certified electrician on duty through the signed webhook.
                estate.overheat("tx1", 140.0)
                (first,) = await until(lambda: hooks_for(rx, WINDING), what="level 1 webhook")
                assert first["recipient"]["id"] == "zhang"  # li holds no HV certificate
                assert first["kind"] == "alarm" and first["level"] == 1
                assert "tx1" in first["text"] or "变压器" in first["text"]
                # 2. Nobody acknowledges: level 2 mails the whole team after 3 s.
                await until(lambda: len(smtp.messages) >= 2, what="level 2 e-mail")
                rcpts = sorted(str(m["To"]) for m in smtp.messages)
                assert any("zhang@example.cn" in r for r in rcpts)
                assert any("li@example.cn" in r for r in rcpts)

                # 3. One tap on the link of the first message: GET shows the page
                # (and acknowledges nothing), the button POSTs.
                link = first["ack_url"]
                async with httpx.AsyncClient() as client:
                    page = await client.get(link)
                    assert page.status_code == 200
                    record = manager.get(WINDING)
                    assert record is not None and not record.acked
                    done = await client.post(link, data={"note": "到场处理"})
                    assert done.status_code == 200
                    again = await client.post(link, data={"note": "x"})
                    assert again.status_code == 409  # a link works once
                record = manager.get(WINDING)
                assert record is not None and record.acked and record.acked_by == "张工"
                assert record.state is AlarmState.ACKNOWLEDGED
                # The escalation stopped: nothing more is sent for this alarm.
                sent = len(hooks_for(rx, WINDING)) + len(smtp.messages)
                await asyncio.sleep(4)
                assert len(hooks_for(rx, WINDING)) + len(smtp.messages) == sent

                # 4. An MQTT sensor crosses its limit; a guard acknowledges over MQTT.
                topic = f"{site.config.site.id}/room1"
                async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
                    await c.publish(topic, json.dumps({"t": 41.5}).encode(), qos=1)
                    # hvac needs no certificate: both electricians on duty are called
                    hot = (await until(lambda: hooks_for(rx, ROOM), what="room alarm"))[0]
                    assert hot["alarm"]["value"] == 41.5 and hot["alarm"]["limit"] == 35
                    command = {"action": "acknowledge", "alarm": ROOM, "user": "王保安"}
                    await c.publish(
                        f"estate/v1/{site.config.site.id}/alarms/command",
                        json.dumps(command, ensure_ascii=False).encode(),
                        qos=1,
                    )
                    await until(
                        lambda: (r := manager.get(ROOM)) is not None and r.acked,
                        what="the MQTT acknowledgement",
                    )
                    rec = manager.get(ROOM)
                    assert rec is not None and rec.acked_by == "王保安"
            finally:
                stop.set()
                await runner

            # Every transition is in the event store, with who and the note.
            assert gw.store is not None
            # 5. A restart restores the active, acknowledged alarms.
            gw2 = Gateway(load_site(path), load_registry(), metrics_interval=3600)
            stop2 = asyncio.Event()
            runner2 = asyncio.create_task(gw2.run(stop2))
            try:
                await until(lambda: gw2.alerting is not None and gw2.api is not None)
                assert gw2.alerting is not None
                restored = gw2.alerting.manager.get(WINDING)
                assert restored is not None and restored.acked and restored.active
                assert gw2.store is not None
                acks = await gw2.store.query(types=["alarm.acknowledged"])
                by_id = {e.event.data["id"]: e.event for e in acks}
                assert by_id[WINDING].data["user"] == "张工"
                assert by_id[WINDING].data["note"] == "到场处理"
                assert by_id[ROOM].data["origin"].startswith("mqtt:")
                escalated = await gw2.store.query(types=["notify.escalated"])
                levels = sorted(
                    e.event.data["level"] for e in escalated if e.event.source == WINDING
                )
                assert levels == [1, 2]
            finally:
                stop2.set()
                await runner2
