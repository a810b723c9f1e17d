"""The Modbus driver (``type: modbus``): polls devices, publishes readings, executes writes.

One :class:`~drivers.modbus.link.ModbusLink` per connection (one request at
a time on it, with its pause, timeout and retries), one
:class:`~drivers.modbus.poller.DevicePoller` per device with its own
:class:`~drivers.modbus.breaker.CircuitBreaker`, so a dead or slow device
costs the others at most one timeout per probe. Each device's answers are
decoded by :class:`~drivers.modbus.device_values.DeviceValues` into
readings; derived points (run-hours, daily energy, ...) keep their state in
``<data_dir>/modbus-<id>-derived.json``, saved every ``state_flush_s`` and on
stop. Write commands go through :mod:`drivers.modbus.writes` (role check,
read-back, audit event).

Report by exception and heartbeats are the core's (the time-series writer
applies each point's deadband and heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
from zoneinfo import ZoneInfo

from pymodbus.framer import FramerType

from drivers.modbus.breaker import CircuitBreaker
from drivers.modbus.config import ModbusConnectionConfig, ModbusDriverConfig, ResolvedDevice
from drivers.modbus.derived import DerivedPoints
from drivers.modbus.derived_state import DerivedState, DerivedStateStore
from drivers.modbus.device_values import DeviceValues
from drivers.modbus.link import ClientFactory, ModbusLink, serial_client_factory, tcp_client_factory
from drivers.modbus.planner import Request
from drivers.modbus.poller import DevicePoller
from drivers.modbus.writes import DeviceWriter
from gateway.driver import Driver, DriverContext
from gateway.model import Event

__all__ = ["ModbusDriver", "client_factory"]


def client_factory(conn: ModbusConnectionConfig) -> ClientFactory:
    """The pymodbus client of a connection, by transport."""
    if conn.transport == "rtu":
        assert conn.serial_port is not None
        return serial_client_factory(
            conn.serial_port,
            baudrate=conn.baudrate,
            parity=conn.parity,
            stopbits=conn.stopbits,
            bytesize=conn.bytesize,
            timeout_s=conn.timeout_s,
        )
    assert conn.host is not None
    framer = FramerType.RTU if conn.transport == "rtu_over_tcp" else FramerType.SOCKET
    return tcp_client_factory(conn.host, conn.effective_port, framer=framer)


class ModbusDriver(Driver):
    config_model = ModbusDriverConfig
    config: ModbusDriverConfig

    def __init__(self, config: ModbusDriverConfig) -> None:
        super().__init__(config)
        self.pollers: dict[str, DevicePoller] = {}  # by device id, for health and tests
        self.links: dict[str, ModbusLink] = {}  # by connection name
        self.writers: dict[str, DeviceWriter] = {}

    async def run(self, ctx: DriverContext) -> None:
        cfg = self.config
        store = DerivedStateStore(ctx.data_dir / f"modbus-{cfg.id}-derived.json")
        state = await asyncio.to_thread(store.load)
        if store.lost:
            await ctx.emit(
                Event(
                    "data.lost",
                    cfg.id,
                    ctx.clock.time_ns(),
                    {"what": "derived state", "why": store.lost},
                )
            )
        tz = ZoneInfo(ctx.timezone)
        resolved = {d.device: d for d in cfg.resolved}
        tasks: list[asyncio.Task[None]] = []
        try:
            for conn in cfg.connections:
                link = ModbusLink(
                    conn.name,
                    client_factory(conn),
                    timeout_s=conn.timeout_s,
                    retries=conn.retries,
                    pause_s=conn.effective_pause_s,
                    pause_after_connect_s=conn.workarounds.pause_after_connect_s,
                    close_after_cycle=conn.workarounds.close_after_cycle,
                    close_after_timeouts=conn.workarounds.close_after_timeouts,
                    clock=ctx.clock,
                )
                self.links[conn.name] = link
                for dev in conn.devices:
                    poller = self._poller(ctx, resolved[dev.device], link, state, tz)
                    self.pollers[dev.device] = poller
                    tasks.append(asyncio.create_task(poller.run(), name=f"{cfg.id}:{dev.device}"))
            tasks.append(
                asyncio.create_task(self._flush(ctx, store, state), name=f"{cfg.id}:state")
            )
            tasks.append(asyncio.create_task(self._commands(ctx), name=f"{cfg.id}:commands"))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a crashed poller crashes the driver: the supervisor restarts it
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await _save(store, state, ctx)
            for link in self.links.values():
                await link.close()

    def _poller(
        self,
        ctx: DriverContext,
        device: ResolvedDevice,
        link: ModbusLink,
        state: DerivedState,
        tz: ZoneInfo,
    ) -> DevicePoller:
        cfg = self.config
        derived = (
            DerivedPoints(device.device, device.derived, params=device.params, state=state, tz=tz)
            if device.derived
            else None
        )
        values = DeviceValues(device, derived)
        self.writers[device.device] = DeviceWriter(device, link, values, ctx, driver=cfg.id)

        async def publish(request: Request, raw: list[int] | list[bool], ts: int) -> None:
            for msg in values.messages(request, raw, ts):
                await ctx.emit(msg)

        return DevicePoller(
            device.device,
            device.unit,
            device.plan,
            link,
            CircuitBreaker(
                min_delay_s=cfg.offline_min_s, max_delay_s=cfg.offline_max_s, clock=ctx.clock
            ),
            ctx.health,
            publish,
            driver=cfg.id,
            clock=ctx.clock,
        )

    async def _flush(
        self, ctx: DriverContext, store: DerivedStateStore, state: DerivedState
    ) -> None:
        while True:
            await ctx.clock.sleep(self.config.state_flush_s)
            await _save(store, state, ctx)

    async def _commands(self, ctx: DriverContext) -> None:
        async for command in ctx.commands():
            writer = self.writers.get(command.target)
            if writer is None:  # the context only routes our devices; be safe anyway
                continue
            await writer.execute(command)


async def _save(store: DerivedStateStore, state: DerivedState, ctx: DriverContext) -> None:
    """Write the derived state if it changed: serialised here, written in a thread."""
    if not state.dirty:
        return
    text = state.to_json()
    state.dirty = False
    try:
        await asyncio.to_thread(store.write, text)
    except OSError as exc:
        state.dirty = True  # try again at the next flush
        ctx.log.error("cannot save %s: %s", store.path, exc)
