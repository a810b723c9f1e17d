"""The gateway process: wires config, bus, storage, drivers and services.

Start order: event store (migrations) -> time-series outbox and sink ->
services (recorder, writer, metrics) -> drivers under the supervisor. Stop
order is the reverse, so nothing a driver emitted in its last moment is lost:
drivers stop, the bus is drained into the event store and the outbox, the
writer delivers what it can within the grace period and leaves the rest in
the durable outbox for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import psutil

from gateway.access.service import AccessService, AccessServiceError
from gateway.alerting import SELF_STORED_EVENTS, Alerting
from gateway.api.app import create_app
from gateway.api.audit import AuditLog
from gateway.api.auth import Authenticator, SessionStore, TokenStore, UserStore
from gateway.api.context import ApiContext
from gateway.api.live.hub import LiveHub
from gateway.api.server import ApiServer, ApiServerError
from gateway.bus import Bus
from gateway.clock import Clock, SystemClock
from gateway.config.loader import LoadedSite
from gateway.context import RuntimeContext
from gateway.health import DriverState, Health
from gateway.losswatch import LossCounter, LossWatch
from gateway.metrics import MetricsReporter
from gateway.model import Event, Reading
from gateway.recorder import EventRecorder
from gateway.registry import DriverRegistry
from gateway.storage.embedded import EmbeddedSink
from gateway.storage.eventstore import EventStore
from gateway.storage.outbox import Outbox
from gateway.storage.sink import SeriesCatalog
from gateway.storage.sinks import build_sink
from gateway.storage.writer import TimeseriesWriter
from gateway.supervisor import RestartPolicy, Supervisor

__all__ = ["Gateway", "GatewayError"]

log = logging.getLogger("gateway.runtime")


class GatewayError(Exception):
    """The gateway cannot start (a driver type missing, storage unusable)."""


class Gateway:
    def __init__(
        self,
        site: LoadedSite,
        registry: DriverRegistry,
        *,
        clock: Clock | None = None,
        policy: RestartPolicy | None = None,
        metrics_interval: float = 10.0,
        shutdown_grace: float = 5.0,
    ) -> None:
        self.site = site
        self.registry = registry
        self.clock = clock or SystemClock()
        self.bus = Bus()
        self.health = Health(self.clock, self.bus.publish)
        self.supervisor = Supervisor(
            self.clock, self.health, self.bus.publish, policy or RestartPolicy()
        )
        self._metrics_interval = metrics_interval
        self._grace = shutdown_grace
        self._services: dict[str, asyncio.Task[None]] = {}
        self._contexts: list[RuntimeContext] = []
        self.store: EventStore | None = None
        self.writer: TimeseriesWriter | None = None
        self.recorder: EventRecorder | None = None
        self.metrics: MetricsReporter | None = None
        self.losses: LossWatch | None = None
        self.alerting: Alerting | None = None
        self.access: AccessService | None = None
        self.api: ApiServer | None = None
        self.api_ctx: ApiContext | None = None
        self._started = False

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.site.config
        drivers = [d for d in cfg.drivers if d.enabled]
        missing = {d.type for d in drivers} - set(self.registry.drivers)
        if missing:
            why = "; ".join(
                f"{t}: {self.registry.unavailable.get(t, 'not installed')}" for t in missing
            )
            raise GatewayError(f"driver types not available: {why}")
        self.site.data_dir.mkdir(parents=True, exist_ok=True)
        await self._start_storage()
        await self._start_alerting()
        await self._start_access()
        self._start_services()
        await self._start_api()
        self._start_drivers()
        self._started = True
        await self.bus.publish(
            Event("gateway.started", "gateway", self.clock.time_ns(), {"drivers": len(drivers)})
        )
        log.info("gateway for site %s started with %d drivers", cfg.site.id, len(drivers))

    def _start_drivers(self) -> None:
        cfg = self.site.config
        kinds = self.site.device_kinds()
        for dcfg in cfg.drivers:
            if not dcfg.enabled:
                self.health.set_driver(dcfg.id, DriverState.DISABLED)
                continue
            cls = self.registry.drivers[dcfg.type]
            ctx = RuntimeContext(
                driver_id=dcfg.id,
                site=cfg.site.id,
                timezone=cfg.site.timezone,
                bus=self.bus,
                clock=self.clock,
                health=self.health,
                data_dir=self.site.data_dir,
                device_kinds=kinds,
                owned_devices=dcfg.devices(),
            )
            self._contexts.append(ctx)
            # A fresh driver object per (re)start: constructors do no I/O, and a
            # crashed instance's state is not trusted.
            self.supervisor.start(dcfg.id, _runner(cls, dcfg, ctx))

    async def _start_storage(self) -> None:
        """Event store (migrations applied) and the time-series writer with its outbox."""
        cfg = self.site.config
        self.store = EventStore(self.site.resolve_url(cfg.storage.event_store.url))
        await self.store.open()
        # Subscribe the consumers of record before anything can publish.
        # Alarm transitions and escalation steps are stored by their services, in
        # the transaction of the change; the recorder takes every other event.
        self.recorder = EventRecorder(
            self.bus.subscribe(
                "recorder",
                (Event,),
                maxsize=10_000,
                accept=lambda m: isinstance(m, Event) and not m.type.startswith(SELF_STORED_EVENTS),
            ),
            self.store,
        )
        ts = cfg.storage.timeseries
        catalog = SeriesCatalog(
            cfg.site.id, self.site.device_kinds(), {d.id: dict(d.tags) for d in cfg.devices}
        )
        sink = build_sink(ts.sink, catalog, self.site.resolve_path, self.clock)
        outbox = Outbox(
            self.site.resolve_path(ts.outbox_path),
            max_count=ts.outbox_max_points,
            clock=self.clock,
        )
        self.writer = TimeseriesWriter(
            self.bus.subscribe("timeseries", (Reading,), maxsize=max(50_000, 4 * ts.batch_size)),
            sink,
            outbox,
            ts,
            self.site.points,
            self.clock,
        )

    async def _start_alerting(self) -> None:
        """Rules, alarms, escalation and notifications, with their stored state."""
        assert self.store is not None
        self.alerting = Alerting(self.site, self.bus, self.store, self.clock)
        await self.alerting.open()

    async def _start_access(self) -> None:
        """Access control, when the site has doors: subscribed before any driver
        starts, credentials and presence loaded."""
        assert self.store is not None
        cfg = self.site.config.access
        if cfg.enabled and cfg.doors:
            self.access = AccessService(self.site, self.bus, self.store, self.clock)
            try:
                await self.access.open()
            except AccessServiceError as e:
                raise GatewayError(str(e)) from e

    async def _start_api(self) -> None:
        """The control-room API, its live stream and the page (and the ack links)."""
        api = self.site.config.api
        if not api.enabled or self.alerting is None or self.store is None:
            return
        self.api_ctx = self._api_context()
        self._spawn("live", self.api_ctx.hub.run)
        app = create_app(self.api_ctx, self.alerting.routers())
        self.api = ApiServer(app, api.host, api.port)
        try:
            await self.api.start()
        except ApiServerError as e:
            self.api = None
            raise GatewayError(f"{e}; set api.port to a free port, or api.enabled: false") from e

    def _api_context(self) -> ApiContext:
        assert self.store is not None and self.alerting is not None
        cfg = self.site.config
        store, clock = self.store, self.clock
        users = UserStore(store, clock)
        sink = self.writer.sink if self.writer is not None else None
        writer = self.writer
        return ApiContext(
            site=self.site,
            config=cfg.api,
            store=store,
            clock=clock,
            alerting=self.alerting,
            health=self.health,
            bus=self.bus,
            hub=LiveHub(
                self.bus,
                clock,
                buffer=cfg.api.live_buffer,
                reading_interval=cfg.api.live_reading_interval_ms / 1000,
            ),
            history=sink if isinstance(sink, EmbeddedSink) else None,
            writer_stats=lambda: writer.stats() if writer is not None else None,
            auth=Authenticator(
                users, TokenStore(store, clock), sessions=SessionStore(store, clock, users, cfg.api)
            ),
            audit=AuditLog(store, clock),
            started_ns=clock.time_ns(),
            access=self.access,
        )

    def _start_services(self) -> None:
        """Recorder, writer, metrics and the loss watch, as tasks whose death is fatal."""
        writer, recorder = self.writer, self.recorder
        assert writer is not None and recorder is not None
        self.metrics = MetricsReporter(
            self.bus,
            self.health,
            self.clock,
            self.site.data_dir / "status.json",
            self._figures,
            self._metrics_interval,
        )
        self.losses = LossWatch(
            "gateway",
            [
                LossCounter(
                    "timeseries points",
                    "outbox full: the oldest were dropped",
                    lambda: writer.stats().dropped,
                ),
                LossCounter(
                    "timeseries points",
                    "rejected by the sink as malformed (kept in the outbox's quarantine)",
                    lambda: writer.stats().quarantined,
                    quarantined=True,
                ),
                LossCounter("events", "refused by the event store", lambda: recorder.dropped),
            ],
            self.bus.publish,
            self.clock,
            interval=min(5.0, self._metrics_interval),
        )
        self._spawn("recorder", recorder.run)
        self._spawn("losses", self.losses.run)
        self._spawn("timeseries", writer.run)
        self._spawn("metrics", self.metrics.run)
        if self.alerting is not None:
            for name, fn in self.alerting.services().items():
                self._spawn(name, fn)
        if self.access is not None:
            for name, fn in self.access.services().items():
                self._spawn(name, fn)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.api_ctx is not None:
            await self.api_ctx.hub.close()  # live clients get 1001 (going away), not 1012
        if self.api is not None:
            await self.api.stop()
        await self.supervisor.stop()
        for ctx in self._contexts:
            await ctx.aclose()
        if self.access is not None:
            access_task = self._services.pop("access", None)
            await self.access.close(access_task)  # decides and stores what is queued
        if self.alerting is not None:
            await self.alerting.close()
        writer_task = self._services.pop("timeseries", None)
        recorder_task = self._services.pop("recorder", None)
        if self.recorder is not None and recorder_task is not None:
            await self.recorder.stop(recorder_task)  # never cancelled mid-batch
        for t in self._services.values():
            t.cancel()
        await asyncio.gather(*self._services.values(), return_exceptions=True)
        if self.metrics is not None:
            await self.metrics.report_once()  # final figures and driver states, still written
        if self.writer is not None and writer_task is not None:
            # Not cancelled: stop() lets the writer take what the bus still holds,
            # commit it to the outbox and deliver for up to the grace period.
            await self.writer.stop(self._grace)
            await asyncio.gather(writer_task, return_exceptions=True)
        if self.losses is not None:
            await self.losses.check()  # what the writer set aside while stopping
        await self.bus.publish(Event("gateway.stopped", "gateway", self.clock.time_ns()))
        if self.recorder is not None:
            await self.recorder.drain()
        if self.store is not None:
            await self.store.close()
        self.bus.close()
        log.info("gateway stopped")

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set. A core service dying (the writer, the
        recorder) is fatal: the gateway stops cleanly and raises, so the
        process supervisor (systemd, Kubernetes) restarts it from the outbox."""
        await self.start()
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait(
                [stopper, *self._services.values()], return_when=asyncio.FIRST_COMPLETED
            )
            failed = [t for t in done if t is not stopper]
        finally:
            stopper.cancel()
            await self.stop()
        if failed:
            err = failed[0].exception() if not failed[0].cancelled() else None
            raise GatewayError(f"{failed[0].get_name()} stopped: {err!r}")

    # -- internals ------------------------------------------------------------
    def _spawn(self, name: str, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._services[name] = asyncio.create_task(fn(), name=f"service:{name}")

    def _figures(self) -> dict[str, float | int | bool | str]:
        out: dict[str, float | int | bool | str] = {
            "rss_mb": round(psutil.Process(os.getpid()).memory_info().rss / 2**20, 1),
        }
        if self.writer is not None:
            st = self.writer.stats()
            out.update(
                ts_received=st.received,
                ts_written=st.written,
                ts_filtered=st.filtered_by_deadband,
                ts_pending=st.pending_points,
                ts_quarantined=st.quarantined,
                ts_retries=st.retries,
                ts_sink_up=st.sink_up,
            )
        if self.recorder is not None:
            out["events_recorded"] = self.recorder.recorded
            out["events_sanitized"] = self.recorder.sanitized
            out["events_dropped"] = self.recorder.dropped
        return out


def _runner(cls: type, cfg: object, ctx: RuntimeContext) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await cls(cfg).run(ctx)

    return run
