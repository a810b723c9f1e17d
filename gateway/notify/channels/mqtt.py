"""MQTT: publish the notification's JSON document
(:func:`gateway.notify.message.document`) to a topic made from a template
(``estate/{site}/notify/{person}``) or the recipient's ``mqtt_topic`` address.

One connection, opened on the first message and kept; a failed publish drops
it (the next attempt reconnects). QoS 1 waits for the broker's PUBACK, so a
sent message is on the broker. aiomqtt gets this module's logger (it would
otherwise reset its own to WARNING and warn about pending publishes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

import aiomqtt

from gateway.notify.channels.base import Channel, ChannelError, ChannelPolicy
from gateway.notify.config import MqttChannelConfig
from gateway.notify.message import Notification, Rendered, document, dumps

__all__ = ["MqttChannel", "topic_level"]

log = logging.getLogger(__name__)


def topic_level(value: object) -> str:
    """``value`` made safe as one topic level (no '/', '+', '#', NUL)."""
    text = str(value)
    for ch in "/+#\x00":
        text = text.replace(ch, "_")
    return text or "_"


class MqttChannel(Channel):
    kind = "mqtt"
    address_kind = None  # the topic template names the person; mqtt_topic overrides it

    def __init__(self, name: str, config: MqttChannelConfig) -> None:
        super().__init__(name, ChannelPolicy.of(config))
        self.config = config
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()

    def secrets(self) -> list[str]:
        return [self.config.password.get_secret_value()] if self.config.password else []

    def topic(self, n: Notification) -> str:
        own = n.recipient.address("mqtt_topic")
        if own is not None:
            return own
        site = n.site or self.config.site
        if not site and "{site}" in self.config.topic:
            raise ChannelError(
                f"topic template {self.config.topic!r} needs {{site}}: set the channel's "
                "'site' or the notification's site",
                retryable=False,
            )
        fields = {
            "site": site,
            "person": n.recipient.id,
            "kind": n.kind,
            "priority": n.priority.value,
            "category": n.alarm.get("category") or "none",
            "alarm": n.alarm_id or "none",
        }
        return self.config.topic.format(**{k: topic_level(v) for k, v in fields.items()})

    async def _tls(self) -> ssl.SSLContext:
        ca = self.config.ca_file
        try:
            return await asyncio.to_thread(
                ssl.create_default_context, cafile=str(ca) if ca is not None else None
            )
        except OSError as exc:  # ssl.SSLError included
            raise ChannelError(f"ca_file {ca}: {exc}", retryable=False) from None

    async def _connected(self) -> aiomqtt.Client:
        async with self._lock:
            if self._client is not None:
                return self._client
            cfg = self.config
            client = aiomqtt.Client(
                cfg.host,
                cfg.effective_port,
                username=cfg.username,
                password=cfg.password.get_secret_value() if cfg.password else None,
                identifier=cfg.client_id,
                logger=log.getChild(self.name),
                timeout=cfg.timeout_s,
                tls_context=await self._tls() if cfg.tls else None,
            )
            try:
                await client.__aenter__()
            except aiomqtt.MqttError as exc:
                raise ChannelError(
                    self.redact(
                        f"cannot connect to the broker {cfg.host}:{cfg.effective_port}: {exc}"
                    ),
                    retryable=True,
                ) from None
            self._client = client
            return client

    async def send(self, n: Notification, rendered: Rendered) -> None:
        topic = self.topic(n)
        payload = dumps(document(n, rendered))
        client = await self._connected()
        try:
            await client.publish(
                topic,
                payload,
                qos=self.config.qos,
                retain=self.config.retain,
                timeout=self.config.timeout_s,
            )
        except aiomqtt.MqttError as exc:
            await self._drop(client)
            raise ChannelError(self.redact(f"publish failed: {exc}"), retryable=True) from None

    async def _drop(self, client: aiomqtt.Client) -> None:
        async with self._lock:
            if self._client is client:
                self._client = None
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)

    async def close(self) -> None:
        client = self._client
        if client is not None:
            await self._drop(client)
