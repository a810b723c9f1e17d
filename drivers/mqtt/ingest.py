"""The MQTT ingest driver (``type: mqtt``): broker messages -> readings and events.

Throughput. aiomqtt's ``async for message in client.messages`` costs a new
task and an ``asyncio.wait`` per message. Here aiomqtt is given our own
``queue_type`` whose ``put_nowait`` (called from its on_message callback)
appends to a plain deque and sets one event; a consumer task drains the
deque in batches, with one clock read per batch and the routes of each
topic cached by :class:`~drivers.mqtt.mapping.Router`. ``client.messages``
is still awaited once per connection: that is how aiomqtt reports a lost
connection.

Availability of the broker is device ``<driver id>`` in ``ctx.health``, so
a lost broker is a ``device.offline`` event and its return ``device.online``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt

from drivers.mqtt.config import MqttIngestConfig
from drivers.mqtt.connection import (
    Backoff,
    MqttDriverError,
    check_cancelled,
    connect_reason,
    make_client,
    tls_context,
    wait_disconnected,
)
from drivers.mqtt.decoder import Availability, Decoder, build_router, decode_message
from drivers.mqtt.inbox import Inbox
from drivers.mqtt.malformed import MalformedReporter
from gateway.driver import Driver, DriverContext
from gateway.losswatch import LossCounter, LossWatch
from gateway.model import Event, Reading

__all__ = ["IngestStats", "MqttIngestDriver"]

_BATCH = 1_000  # messages mapped between two looks at the inbox
SUMMARY_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class IngestStats:
    received: int  # messages taken from the broker
    readings: int  # readings emitted
    events: int  # events emitted (mapped ones and mqtt.malformed)
    malformed: int  # messages (per subscription) that could not be fully mapped
    reconnects: int  # successful connections after the first
    dropped: int  # messages dropped because the inbox was full
    connected: bool
    malformed_by_subscription: tuple[int, ...]  # in the order of `subscriptions:`


class MqttIngestDriver(Driver):
    config_model = MqttIngestConfig

    def __init__(self, config: MqttIngestConfig) -> None:
        super().__init__(config)
        self.config: MqttIngestConfig = config
        self._router = build_router(config.subscriptions)
        self._decoders = self._router.subjects
        qos: dict[str, int] = {}
        for s in config.subscriptions:
            qos[s.topic] = max(qos.get(s.topic, 0), s.qos)
        self._topics = list(qos.items())
        self._received = 0
        self._readings = 0
        self._events = 0
        self._connects = 0
        self._dropped_before = 0
        self._inbox: Inbox | None = None
        self._connected = False
        self._reporter: MalformedReporter | None = None

    # -- public --------------------------------------------------------------
    def stats(self) -> IngestStats:
        by_sub = tuple(d.malformed for d in self._decoders)
        dropped = self._dropped_before + (self._inbox.dropped if self._inbox else 0)
        return IngestStats(
            received=self._received,
            readings=self._readings,
            events=self._events,
            malformed=sum(by_sub),
            reconnects=max(0, self._connects - 1),
            dropped=dropped,
            connected=self._connected,
            malformed_by_subscription=by_sub,
        )

    async def run(self, ctx: DriverContext) -> None:
        cfg = self.config
        self._reporter = MalformedReporter(cfg.id, ctx.clock, ctx.log)
        losses = LossWatch(
            cfg.id,
            [LossCounter("mqtt messages", "inbox full: the bus was too slow", self._dropped)],
            ctx.emit,
            ctx.clock,
        )
        summaries = asyncio.create_task(self._summaries(ctx, self._reporter, losses))
        backoff = Backoff(cfg.broker.reconnect_min_s, cfg.broker.reconnect_max_s)
        try:
            while True:
                reason = "connection closed"
                try:
                    await self._session(ctx, backoff)
                except (aiomqtt.MqttError, MqttDriverError) as e:
                    reason = connect_reason(e)
                self._connected = False
                await ctx.health.device_offline(cfg.id, f"broker: {reason}", driver=cfg.id)
                await ctx.clock.sleep(backoff.next())
        finally:
            self._connected = False
            summaries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await summaries

    # -- one connection ----------------------------------------------------------
    async def _session(self, ctx: DriverContext, backoff: Backoff) -> None:
        cfg = self.config
        log = ctx.log.getChild("mqtt")
        ssl_ctx = None
        if cfg.broker.tls is not None:
            ssl_ctx = await asyncio.to_thread(tls_context, cfg.broker.tls)
        if self._inbox is not None:
            self._dropped_before += self._inbox.dropped
        inbox = self._inbox = Inbox(cfg.max_queued_messages, ctx.log)
        client = make_client(
            cfg.broker, logger=log, ssl_context=ssl_ctx, queue_type=inbox.queue_type()
        )
        async with client:
            check_cancelled()
            # Consume from the start: a persistent session's backlog arrives
            # before the SUBACK.
            consumer = asyncio.create_task(self._consume(ctx, inbox))
            watcher = asyncio.create_task(wait_disconnected(client))
            try:
                # No timeout: a persistent session's backlog arrives before the SUBACK
                # and may take longer than timeout_s to drain; every packet received
                # meanwhile proves the link alive (paho's keepalive covers a dead one).
                codes = await client.subscribe(self._topics, timeout=math.inf)
                check_cancelled()
                for (topic, _), code in zip(self._topics, codes, strict=False):
                    if getattr(code, "is_failure", code == 0x80):
                        ctx.log.error("broker refused the subscription to %r (%s)", topic, code)
                self._connects += 1
                self._connected = True
                backoff.reset()
                ctx.log.info("connected to %s:%s", cfg.broker.host, cfg.broker.effective_port)
                await ctx.health.device_online(cfg.id, driver=cfg.id)
                done, _ = await asyncio.wait(
                    (consumer, watcher), return_when=asyncio.FIRST_COMPLETED
                )
                if consumer in done:
                    consumer.result()  # a bug: let it out
                inbox.close()  # the broker is gone: map what already arrived, then stop
                await consumer
                watcher.result()  # raises the MqttError
            finally:
                for t in (consumer, watcher):
                    t.cancel()
                for t in (consumer, watcher):
                    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                        await t

    async def _consume(self, ctx: DriverContext, inbox: Inbox) -> None:
        items = inbox.items
        routes_of = self._router.routes
        clock, emit = ctx.clock, ctx.emit
        readings: list[Reading] = []
        other: list[Event | Availability] = []  # rare: kept in order with the readings
        problems: list[tuple[Decoder, str]] = []
        while True:
            await inbox.wait()
            if not items:
                return  # closing
            now_ns = clock.time_ns()
            n = min(len(items), _BATCH)
            self._received += n
            popleft = items.popleft
            for _ in range(n):
                msg = popleft()
                topic = msg.topic.value
                routes, unnamed = routes_of(topic)
                decode_message(routes, msg.payload, now_ns, readings, other, problems)
                if other:
                    await self._emit_readings(readings, emit)
                    await self._emit_other(ctx, other)
                if problems or unnamed:
                    await self._malformed(ctx, topic, msg.payload, problems, unnamed)
            await self._emit_readings(readings, emit)

    async def _emit_readings(
        self, readings: list[Reading], emit: Callable[[Reading], Awaitable[None]]
    ) -> None:
        self._readings += len(readings)
        for r in readings:
            await emit(r)
        readings.clear()

    async def _emit_other(self, ctx: DriverContext, other: list[Event | Availability]) -> None:
        cfg = self.config
        for m in other:
            if isinstance(m, Event):
                self._events += 1
                await ctx.emit(m)
            elif m.online:
                await ctx.health.device_online(m.device, driver=cfg.id)
            else:
                await ctx.health.device_offline(m.device, "tasmota LWT: Offline", cfg.id)
        other.clear()

    async def _malformed(
        self,
        ctx: DriverContext,
        topic: str,
        payload: bytes,
        problems: list[tuple[Decoder, str]],
        unnamed: tuple[tuple[Decoder, str], ...],
    ) -> None:
        reporter = self._reporter
        assert reporter is not None
        for dec, reason in (*problems, *unnamed):
            dec.malformed += 1
            event = reporter.note(topic, dec.topic, reason, payload)
            if event is not None:
                self._events += 1
                await ctx.emit(event)
        problems.clear()

    def _dropped(self) -> int:
        return self.stats().dropped

    async def _summaries(
        self, ctx: DriverContext, reporter: MalformedReporter, losses: LossWatch
    ) -> None:
        while True:
            await ctx.clock.sleep(SUMMARY_INTERVAL_S)
            reporter.summary()
            await losses.check()  # a data.lost event when the inbox overflowed
