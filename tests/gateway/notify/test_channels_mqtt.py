"""The MQTT channel against the session's real Mosquitto: topic template,
a recipient's own topic, QoS 1, the JSON document, reconnecting, no broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from pydantic import ValidationError

from gateway.model import Priority
from gateway.notify.channels.base import Channel, ChannelError, build_channel
from gateway.notify.channels.mqtt import topic_level
from gateway.notify.config import MqttChannelConfig
from gateway.notify.message import Notification, Recipient, new_id
from gateway.notify.templates import render
from tests.fixtures.servers import Server, _need, free_port, mosquitto_server
from tests.gateway.notify.test_templates import VIEW

log = logging.getLogger("tests.notify.mqtt")


def alarm(recipient: Recipient, site: str = "") -> Notification:
    return Notification(
        new_id(),
        "alarm",
        recipient,
        VIEW,
        ack_url="http://gw/ack/t1",
        priority=Priority.CRITICAL,
        site=site,
    )


def channel(port: int, **over: Any) -> Channel:
    cfg = {"type": "mqtt", "host": "127.0.0.1", "port": port, "timeout_s": 3, **over}
    return build_channel("mq", MqttChannelConfig.model_validate(cfg))


@contextlib.asynccontextmanager
async def subscribed(port: int, topic: str) -> AsyncIterator[asyncio.Queue[aiomqtt.Message]]:
    got: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
    async with aiomqtt.Client("127.0.0.1", port, logger=log) as client:
        await client.subscribe(topic, qos=1)

        async def pump() -> None:
            async for m in client.messages:
                await got.put(m)

        task = asyncio.create_task(pump())
        try:
            yield got
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_publish_to_the_topic_template(mosquitto: Server) -> None:
    site = f"t{uuid.uuid4().hex[:8]}"
    ch = channel(mosquitto.port)
    person = Recipient("zhang/wei", "张伟")  # a '/' in an id must not add a topic level
    async with subscribed(mosquitto.port, f"estate/{site}/notify/#") as got:
        try:
            n = alarm(person, site)
            await ch.send(n, render(n))
            await ch.send(n, render(n))  # the connection is kept
            first = await asyncio.wait_for(got.get(), 5)
            await asyncio.wait_for(got.get(), 5)
        finally:
            await ch.close()
    assert first.topic.value == f"estate/{site}/notify/zhang_wei"
    assert first.qos == 1
    assert isinstance(first.payload, bytes)
    doc = json.loads(first.payload)
    assert doc["id"] == n.id and doc["site"] == site and doc["priority"] == "critical"
    assert doc["alarm"]["description"] == "1号变压器绕组温度过高"


async def test_recipient_topic_and_configured_site(mosquitto: Server) -> None:
    own = f"t{uuid.uuid4().hex[:8]}/pager/zhang"
    ch = channel(mosquitto.port, topic="x/{site}/{priority}/{person}", site="estate-b")
    async with subscribed(mosquitto.port, own) as got:
        try:
            n = alarm(Recipient("zhang", "张伟", addresses={"mqtt_topic": own}))
            await ch.send(n, render(n))
            msg = await asyncio.wait_for(got.get(), 5)
        finally:
            await ch.close()
    assert msg.topic.value == own
    n = alarm(Recipient("li", "李娜"))
    assert ch.topic(n) == "x/estate-b/critical/li"  # type: ignore[attr-defined]


async def test_template_without_a_site_is_an_error(mosquitto: Server) -> None:
    ch = channel(mosquitto.port)
    n = alarm(Recipient("li", "李娜"))
    with pytest.raises(ChannelError) as info:
        await ch.send(n, render(n))
    assert not info.value.retryable and "{site}" in info.value.reason


async def test_no_broker_is_retryable() -> None:
    ch = channel(free_port(), password="mq-pass-123456", username="gw")
    n = alarm(Recipient("li", "李娜"), "s")
    with pytest.raises(ChannelError) as info:
        await ch.send(n, render(n))
    assert info.value.retryable and "cannot connect" in info.value.reason
    assert "mq-pass-123456" not in str(info.value)
    await ch.close()


async def test_reconnects_after_a_broker_restart(tmp_path: Path) -> None:
    _need("mosquitto")
    broker = mosquitto_server(tmp_path)
    broker.start()
    ch = channel(broker.port, site="s")
    n = alarm(Recipient("li", "李娜"))
    try:
        await ch.send(n, render(n))
        await asyncio.to_thread(broker.stop)
        with pytest.raises(ChannelError) as info:
            await ch.send(n, render(n))
        assert info.value.retryable
        await asyncio.to_thread(broker.start)
        async with subscribed(broker.port, "estate/s/notify/li") as got:
            await ch.send(n, render(n))  # a new connection
            assert json.loads((await asyncio.wait_for(got.get(), 5)).payload)["id"] == n.id
    finally:
        await ch.close()
        broker.stop()


def test_topic_level() -> None:
    assert topic_level("a/b+c#d") == "a_b_c_d"
    assert topic_level("") == "_"


@pytest.mark.parametrize(
    ("topic", "message"),
    [("estate/{nope}/x", "unknown field"), ("estate/+/x", "wildcards"), ("a/{site", "template")],
)
def test_topic_template_is_checked(topic: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MqttChannelConfig.model_validate({"type": "mqtt", "host": "h", "topic": topic})
