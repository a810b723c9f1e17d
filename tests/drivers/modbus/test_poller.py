"""DevicePoller over a real link to pymodbus' TCP server; asserts counts, never durations."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus.breaker import BreakerState, CircuitBreaker
from drivers.modbus.link import ModbusLink, tcp_client_factory
from drivers.modbus.planner import PlanPoint, Request, Table, build_plan
from drivers.modbus.poller import DevicePoller, _next_due
from gateway.clock import SystemClock
from gateway.health import Health
from gateway.model import Event

PLAN = build_plan(
    [
        PlanPoint("temp_a", Table.HOLDING, 0, 1, interval=0.02),
        PlanPoint("temp_b", Table.HOLDING, 1, 1, interval=0.02),
        PlanPoint("fan", Table.COIL, 3, 1, interval=0.02),
    ]
)


async def start_server(units: tuple[int, ...], port: int = 0) -> tuple[ModbusTcpServer, int]:
    """Units answer ``u * 100``; other units get an exception response."""
    devices = [
        SimDevice(
            id=u,
            simdata=[SimData(address=0, count=10, values=u * 100, datatype=DataType.REGISTERS)],
        )
        for u in units
    ]
    server = ModbusTcpServer(devices, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    assert server.transport is not None
    return server, server.transport.sockets[0].getsockname()[1]


async def start_dropper(upstream: int, dead: int) -> tuple[asyncio.Server, int]:
    """A raw TCP proxy that forwards requests, but never answers unit ``dead``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        try:
            while True:
                header = await reader.readexactly(7)
                body = await reader.readexactly(struct.unpack(">H", header[4:6])[0] - 1)
                if header[6] == dead:
                    continue
                up_writer.write(header + body)
                answer = await up_reader.readexactly(7)
                answer += await up_reader.readexactly(struct.unpack(">H", answer[4:6])[0] - 1)
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up_writer.close()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.values: dict[str, list[tuple[Request, list[int] | list[bool]]]] = {}

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    def sink(self, device: str) -> Callable[[Request, list[int] | list[bool], int], None]:
        def on_values(request: Request, values: list[int] | list[bool], ts_ns: int) -> None:
            assert ts_ns > 0
            self.values.setdefault(device, []).append((request, values))

        return on_values

    def types(self, device: str) -> list[str]:
        return [e.type for e in self.events if e.source == device]


def poller(
    unit: int, link: ModbusLink, health: Health, rec: Recorder, delay_s: float = 0.3
) -> DevicePoller:
    breaker = CircuitBreaker(min_delay_s=delay_s, max_delay_s=delay_s, jitter=0.0)
    device = f"dev{unit}"
    return DevicePoller(device, unit, PLAN, link, breaker, health, rec.sink(device))


async def wait_until(cond: Callable[[], bool], limit_s: float = 20.0) -> None:
    """Poll a condition; the limit only guards against a hang, it is not asserted."""
    for _ in range(int(limit_s / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_dead_unit_does_not_starve_healthy_ones() -> None:
    healthy = (1, 2, 3, 4)
    server, upstream = await start_server(healthy)
    proxy, port = await start_dropper(upstream, dead=9)
    link = ModbusLink("line", tcp_client_factory("127.0.0.1", port), timeout_s=0.1)
    rec = Recorder()
    health = Health(SystemClock(), rec.emit)
    pollers = {u: poller(u, link, health, rec) for u in (*healthy, 9)}
    tasks = [asyncio.create_task(p.run()) for p in pollers.values()]
    dead = pollers[9]
    try:
        await wait_until(lambda: dead.stats.failures >= 4)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await link.close()
        proxy.close()
        await server.shutdown()

    # The dead unit is probed once per breaker delay, one request per probe:
    # everything else it was due for was skipped, never sent.
    assert dead.stats.reads == 0
    assert dead.stats.skipped > 10 * dead.stats.failures
    # Healthy units kept being polled between the probes.
    for unit in healthy:
        stats = pollers[unit].stats
        assert stats.failures == 0
        assert stats.reads >= 10 * dead.stats.failures, (unit, stats.reads)
        assert rec.types(f"dev{unit}") == ["device.online"]
        request, values = rec.values[f"dev{unit}"][0]
        assert values == ([unit * 100, unit * 100] if request.table is Table.HOLDING else [True])
    # Offline announced once however many probes failed.
    assert rec.types("dev9") == ["device.offline"]
    assert [e.data["reason"].split(":")[0] for e in rec.events if e.source == "dev9"] == [
        "DeviceTimeout"
    ]
    # Every request sent is accounted for, except the one the cancellation may
    # have cut off in flight (one at a time on a link).
    counted = sum(p.stats.reads + p.stats.failures for p in pollers.values())
    assert 0 <= link.requests - counted <= 1


async def test_offline_then_online_when_server_returns() -> None:
    server, port = await start_server((1,))
    link = ModbusLink("line", tcp_client_factory("127.0.0.1", port), timeout_s=0.2)
    rec = Recorder()
    health = Health(SystemClock(), rec.emit)
    p = poller(1, link, health, rec, delay_s=0.05)
    task = asyncio.create_task(p.run())
    try:
        await wait_until(lambda: p.stats.reads >= 3)
        await server.shutdown()
        await wait_until(lambda: p.stats.failures >= 3)
        assert p.breaker.state is not BreakerState.CLOSED
        server, _ = await start_server((1,), port=port)
        reads = p.stats.reads
        await wait_until(lambda: p.stats.reads >= reads + 3)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await link.close()
        await server.shutdown()
    assert rec.types("dev1") == ["device.online", "device.offline", "device.online"]
    assert p.breaker.state is BreakerState.CLOSED
    assert health.devices["dev1"].online


async def test_poll_once_skips_rest_of_cycle_after_failure() -> None:
    server, port = await start_server((1,))
    link = ModbusLink("line", tcp_client_factory("127.0.0.1", port), timeout_s=0.1)
    rec = Recorder()
    health = Health(SystemClock(), rec.emit)
    breaker = CircuitBreaker(min_delay_s=60, max_delay_s=60, jitter=0.0)

    async def on_values(request: Request, values: list[int] | list[bool], ts_ns: int) -> None:
        rec.values.setdefault("dev5", []).append((request, values))

    p = DevicePoller("dev5", 5, PLAN, link, breaker, health, on_values)  # unit 5: exception
    try:
        await p.poll_once()
        await p.poll_once()
    finally:
        await link.close()
        await server.shutdown()
    assert (p.stats.failures, p.stats.skipped, p.stats.reads) == (1, len(PLAN) * 2 - 1, 0)
    assert link.requests == 1
    assert rec.types("dev5") == ["device.offline"]
    assert "dev5" not in rec.values


def test_empty_plan_is_refused() -> None:
    link = ModbusLink("line", tcp_client_factory("127.0.0.1", 1))
    health = Health(SystemClock(), Recorder().emit)
    with pytest.raises(ValueError, match="empty plan"):
        DevicePoller("d", 1, (), link, CircuitBreaker(), health, Recorder().sink("d"))


@pytest.mark.parametrize(
    ("previous", "now", "expected"),
    [
        (0.0, 0.5, 1.0),  # on time: next tick
        (0.0, 1.0, 1.0),  # exactly at the next tick: due now
        (0.0, 3.5, 4.0),  # fell behind: skip missed ticks, keep phase
    ],
)
def test_next_due_keeps_phase(previous: float, now: float, expected: float) -> None:
    assert _next_due(previous, 1.0, now) == expected
