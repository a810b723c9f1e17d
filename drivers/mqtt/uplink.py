"""The MQTT uplink (``type: mqtt_uplink``): this site's events, alarms,
availability and (optionally) readings, published to a central broker.

Delivery:

* Events, alarms and availability changes are written to the durable
  outbox ``ctx.outbox("uplink")`` as soon as they come off the bus, then
  published in order, up to ``max_in_flight`` at a time, and deleted only
  after the broker's PUBACK. While the broker is away they wait on disk
  (across restarts, too) and go out in order when it returns: at least
  once, so a message whose PUBACK was lost with the connection is sent
  again.
* Readings are not stored: the latest per point waits in memory while the
  broker is away (or while ``readings_min_interval_s`` holds it back) and
  is published when it can be.
* ``<root>/v1/<site>/gateway/status`` is ``online`` (retained) after each
  connect, ``offline`` on a clean stop, and ``offline`` through the MQTT
  last will when the gateway dies without saying goodbye.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass

import aiomqtt

from drivers.mqtt import topics
from drivers.mqtt.alarm_commands import CommandPayloadError, parse_alarm_command
from drivers.mqtt.config import MqttUplinkConfig
from drivers.mqtt.connection import (
    Backoff,
    MqttDriverError,
    check_cancelled,
    connect_reason,
    make_client,
    tls_context,
    wait_disconnected,
)
from gateway.bus import Subscription
from gateway.driver import Driver, DriverContext
from gateway.model import Alarm, Event, Reading
from gateway.storage.outbox import Outbox, OutboxItem

__all__ = ["MqttUplinkDriver", "UplinkStats", "decode_record", "encode_record"]

_AVAILABILITY = {"device.online": topics.ONLINE, "device.offline": topics.OFFLINE}
_READINGS_CHUNK = 500
_BYE_TIMEOUT_S = 2.0


class RecordError(MqttDriverError):
    """An outbox record is not one this driver wrote."""


def encode_record(topic: str, payload: bytes, qos: int, retain: bool) -> bytes:
    """One outbox item: a flags byte (qos | retain << 2), the topic, NUL, the payload."""
    return bytes((qos | (4 if retain else 0),)) + topic.encode() + b"\x00" + payload


def decode_record(record: bytes) -> tuple[str, bytes, int, bool]:
    """(topic, payload, qos, retain) of an outbox item."""
    sep = record.find(b"\x00", 1)
    if not record or sep < 0 or record[0] & ~7 or record[0] & 3 == 3:
        raise RecordError(f"not an uplink record: {record[:40]!r}")
    try:
        topic = record[1:sep].decode()
    except UnicodeDecodeError:
        raise RecordError(f"record topic is not UTF-8: {record[:40]!r}") from None
    return topic, record[sep + 1 :], record[0] & 3, bool(record[0] & 4)


@dataclass(frozen=True, slots=True)
class UplinkStats:
    queued: int  # messages written to the outbox
    published: int  # outbox messages acknowledged by the broker
    outbox_pending: int
    readings_published: int
    readings_pending: int  # latest-per-point readings waiting
    readings_replaced: int  # readings overwritten by a newer one before they went out
    reconnects: int  # successful connections after the first
    connected: bool


class MqttUplinkDriver(Driver):
    config_model = MqttUplinkConfig

    def __init__(self, config: MqttUplinkConfig) -> None:
        super().__init__(config)
        self.config: MqttUplinkConfig = config
        self._readings: dict[str, Reading] = {}  # latest per point, not yet published
        self._last_sent: dict[str, float] = {}  # point -> monotonic time (rate limit)
        self._outbox: Outbox | None = None
        self._queued_ev: asyncio.Event | None = None
        self._readings_ev: asyncio.Event | None = None
        self._queued = 0
        self._published = 0
        self._readings_published = 0
        self._readings_replaced = 0
        self._connects = 0
        self._connected = False

    def stats(self) -> UplinkStats:
        return UplinkStats(
            queued=self._queued,
            published=self._published,
            outbox_pending=self._outbox.pending_items if self._outbox else 0,
            readings_published=self._readings_published,
            readings_pending=len(self._readings),
            readings_replaced=self._readings_replaced,
            reconnects=max(0, self._connects - 1),
            connected=self._connected,
        )

    async def run(self, ctx: DriverContext) -> None:
        cfg = self.config
        self._queued_ev, self._readings_ev = asyncio.Event(), asyncio.Event()
        outbox = self._outbox = ctx.outbox("uplink")
        await outbox.open()
        if outbox.pending_items:
            ctx.log.info("%d message(s) left in the outbox from before", outbox.pending_items)
            self._queued_ev.set()
        kinds: list[type] = [Event, Alarm] + ([Reading] if cfg.publish_readings else [])
        sub = ctx.subscribe("uplink", kinds, coalesce_readings=True)
        pump = asyncio.create_task(self._pump(ctx, sub, outbox), name=f"{cfg.id}-pump")
        link = asyncio.create_task(self._connections(ctx, outbox), name=f"{cfg.id}-link")
        try:
            done, _ = await asyncio.wait((pump, link), return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # both run forever: finishing means an error
        finally:
            for t in (pump, link):
                t.cancel()
            for t in (pump, link):
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            self._connected = False

    # -- bus -> outbox / pending readings -------------------------------------
    async def _pump(self, ctx: DriverContext, sub: Subscription, outbox: Outbox) -> None:
        cfg, root, site = self.config, self.config.topic_root, ctx.site
        assert self._queued_ev is not None and self._readings_ev is not None
        while True:
            batch = await sub.get_batch(500)
            records: list[tuple[bytes, int]] = []
            for m in batch:
                if isinstance(m, Reading):
                    if m.point in self._readings:
                        self._readings_replaced += 1
                    self._readings[m.point] = m
                elif isinstance(m, Event):
                    topic = topics.event_topic(root, site, m.type)
                    records.append(
                        (encode_record(topic, topics.event_payload(m), cfg.qos_events, False), 1)
                    )
                    state = _AVAILABILITY.get(m.type)
                    if state is not None:
                        topic = topics.availability_topic(root, site, m.source)
                        records.append(
                            (
                                encode_record(
                                    topic, state, cfg.qos_events, cfg.retain_availability
                                ),
                                1,
                            )
                        )
                elif isinstance(m, Alarm):
                    topic = topics.alarm_topic(root, site, m.id)
                    records.append(
                        (encode_record(topic, topics.alarm_payload(m), cfg.qos_events, False), 1)
                    )
            if records:
                # Shielded: once taken off the bus, a message reaches the disk
                # even if the driver is being stopped.
                await asyncio.shield(outbox.put_many(records))
                self._queued += len(records)
                self._queued_ev.set()
            if self._readings:
                self._readings_ev.set()

    # -- the broker connection --------------------------------------------------
    async def _connections(self, ctx: DriverContext, outbox: Outbox) -> None:
        cfg = self.config
        backoff = Backoff(cfg.broker.reconnect_min_s, cfg.broker.reconnect_max_s)
        while True:
            reason = "connection closed"
            try:
                await self._session(ctx, outbox, backoff)
            except (aiomqtt.MqttError, MqttDriverError) as e:
                reason = connect_reason(e)
            self._connected = False
            await ctx.health.device_offline(cfg.id, f"broker: {reason}", driver=cfg.id)
            await ctx.clock.sleep(backoff.next())

    async def _session(self, ctx: DriverContext, outbox: Outbox, backoff: Backoff) -> None:
        cfg = self.config
        status = topics.status_topic(cfg.topic_root, ctx.site)
        ssl_ctx = None
        if cfg.broker.tls is not None:
            ssl_ctx = await asyncio.to_thread(tls_context, cfg.broker.tls)
        client = make_client(
            cfg.broker,
            logger=ctx.log.getChild("mqtt"),
            ssl_context=ssl_ctx,
            will=aiomqtt.Will(status, topics.OFFLINE, qos=1, retain=True),
            max_inflight=cfg.max_in_flight,
        )
        async with client:
            check_cancelled()
            await client.publish(status, topics.ONLINE, qos=1, retain=True)
            check_cancelled()
            if cfg.alarm_commands is not None:
                await client.subscribe(topics.alarm_command_topic(cfg.topic_root, ctx.site), qos=1)
                check_cancelled()
            self._connects += 1
            self._connected = True
            backoff.reset()
            ctx.log.info("connected to %s:%s", cfg.broker.host, cfg.broker.effective_port)
            await ctx.health.device_online(cfg.id, driver=cfg.id)
            # The first task reads client.messages, which aiomqtt ends with an
            # MqttError when the connection drops: the alarm commands when taken,
            # else a reader that expects nothing.
            listen = (
                self._alarm_commands(ctx, client)
                if cfg.alarm_commands is not None
                else wait_disconnected(client)
            )
            tasks = [
                asyncio.create_task(listen),
                asyncio.create_task(self._drain(client, outbox)),
            ]
            if cfg.publish_readings:
                tasks.append(asyncio.create_task(self._send_readings(ctx, client)))
            stopping = True
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                stopping = False
                for t in done:
                    t.result()  # raises the MqttError that ended the session
            finally:
                still_connected = not tasks[0].done()
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                        await t
                if stopping and still_connected:  # a clean stop: say goodbye
                    with contextlib.suppress(aiomqtt.MqttError):
                        await client.publish(
                            status, topics.OFFLINE, qos=1, retain=True, timeout=_BYE_TIMEOUT_S
                        )

    async def _alarm_commands(self, ctx: DriverContext, client: aiomqtt.Client) -> None:
        """Alarm commands from the broker onto the bus; a bad one is an event."""
        cfg = self.config
        assert cfg.alarm_commands is not None
        origin = f"mqtt:{cfg.broker.host}:{cfg.broker.effective_port}"
        async for message in client.messages:  # ends with MqttError on a disconnect
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                cmd = parse_alarm_command(payload, cfg.alarm_commands.role, origin)
            except CommandPayloadError as e:
                ctx.log.warning("alarm command refused: %s", e)
                await ctx.emit(
                    Event(
                        "mqtt.command_rejected",
                        cfg.id,
                        ctx.clock.time_ns(),
                        {
                            "topic": str(message.topic),
                            "reason": str(e),
                            "payload": payload[:2000].decode("utf-8", "replace"),
                        },
                    )
                )
                continue
            await ctx.request(cmd)
        raise aiomqtt.MqttError("message iterator ended")

    async def _drain(self, client: aiomqtt.Client, outbox: Outbox) -> None:
        """Publish the outbox oldest first, a window at a time; delete on PUBACK."""
        queued = self._queued_ev
        assert queued is not None
        window = self.config.max_in_flight
        while True:
            queued.clear()  # before peeking, so a put during the peek is not missed
            items = await outbox.peek(window)
            if not items:
                await queued.wait()
                continue
            good = [i for i in items if await self._usable(outbox, i)]
            # Tasks start in order, so paho writes the PUBLISH packets in order.
            await _all(self._publish(client, i.payload) for i in good)
            await outbox.delete([i.id for i in good])
            self._published += len(good)

    async def _usable(self, outbox: Outbox, item: OutboxItem) -> bool:
        try:
            decode_record(item.payload)
        except RecordError as e:
            await outbox.quarantine(item.payload, str(e))
            await outbox.delete([item.id])
            return False
        return True

    @staticmethod
    async def _publish(client: aiomqtt.Client, record: bytes) -> None:
        topic, payload, qos, retain = decode_record(record)
        await client.publish(topic, payload, qos=qos, retain=retain)

    async def _send_readings(self, ctx: DriverContext, client: aiomqtt.Client) -> None:
        """Publish the latest reading per point, at most once per min interval."""
        cfg, ready = self.config, self._readings_ev
        assert ready is not None
        interval = cfg.readings_min_interval_s
        root, site = cfg.topic_root, ctx.site
        while True:
            ready.clear()
            if not self._readings:
                await ready.wait()
                continue
            now = ctx.clock.monotonic()
            due: list[Reading] = []
            wait_s: float | None = None
            for point, r in list(self._readings.items()):
                last = self._last_sent.get(point) if interval else None
                if last is not None and now - last < interval:
                    left = interval - (now - last)
                    wait_s = left if wait_s is None else min(wait_s, left)
                    continue
                due.append(r)
                del self._readings[point]
                if interval:
                    self._last_sent[point] = now
            for i in range(0, len(due), _READINGS_CHUNK):
                chunk = due[i : i + _READINGS_CHUNK]
                await _all(
                    client.publish(
                        topics.reading_topic(root, site, *_device_point(r.point)),
                        topics.reading_payload(r),
                        qos=cfg.qos_readings,
                    )
                    for r in chunk
                )
                self._readings_published += len(chunk)
            if wait_s is not None and not due:
                await ctx.clock.sleep(wait_s)


async def _all(calls: Iterable[Awaitable[None]]) -> None:
    """Run publishes side by side; when all are done, raise the first error."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r


def _device_point(point: str) -> tuple[str, str]:
    device, _, name = point.partition(".")
    return (device, name) if name else ("_", device)
