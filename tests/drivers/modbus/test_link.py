"""ModbusLink against pymodbus' own TCP server and raw misbehaving peers."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus.link import (
    BadResponse,
    DeviceException,
    DeviceTimeout,
    LinkDown,
    ModbusLink,
    tcp_client_factory,
)
from drivers.modbus.planner import Table

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def start_modbus(units: tuple[int, ...]) -> tuple[ModbusTcpServer, int]:
    """pymodbus server; unit ``u`` holds ``u * 100`` in registers 0..99."""
    devices = [
        SimDevice(
            id=u,
            simdata=[SimData(address=0, count=100, values=u * 100, datatype=DataType.REGISTERS)],
        )
        for u in units
    ]
    server = ModbusTcpServer(devices, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    assert server.transport is not None
    port = server.transport.sockets[0].getsockname()[1]
    return server, port


@pytest_asyncio.fixture(loop_scope="function")  # the server must share the test's loop
async def modbus() -> AsyncIterator[int]:
    server, port = await start_modbus((1, 2, 3))
    yield port
    await server.shutdown()


async def raw_server(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and read requests, never answer."""
    while await reader.read(256):
        pass
    writer.close()


def answer_with(body: Callable[[bytes], bytes]) -> Handler:
    """Answer each MBAP request with ``body(request_header)``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(7)
                (length,) = struct.unpack(">H", header[4:6])
                await reader.readexactly(length - 1)
                writer.write(body(header))
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    return handler


def link_to(port: int, **kwargs: float | int | bool) -> ModbusLink:
    return ModbusLink("test", tcp_client_factory("127.0.0.1", port), **kwargs)  # type: ignore[arg-type]


async def test_reads_each_table_and_unit(modbus: int) -> None:
    link = link_to(modbus, timeout_s=2.0)
    try:
        assert await link.read(Table.HOLDING, 0, 5, unit=1) == [100] * 5
        assert await link.read(Table.INPUT, 10, 3, unit=2) == [200] * 3
        # Registers are shared with the bit tables: 300 = 0b1_0010_1100.
        assert await link.read(Table.COIL, 0, 10, unit=3) == [
            False, False, True, True, False, True, False, False, True, False,
        ]  # fmt: skip
        assert await link.read(Table.DISCRETE, 2, 2, unit=3) == [True, True]
        assert link.connects == 1
    finally:
        await link.close()


async def test_exception_response_is_typed_with_code(modbus: int) -> None:
    link = link_to(modbus, timeout_s=2.0, retries=2)
    try:
        with pytest.raises(DeviceException) as info:
            await link.read(Table.HOLDING, 98, 5, unit=1)  # runs past the served block
        assert info.value.code == 2  # illegal data address
        assert link.requests == 1  # the device answered: no retry
        with pytest.raises(DeviceException) as info:
            await link.read(Table.HOLDING, 0, 1, unit=9)  # unit not served
        assert info.value.code == 4
        assert await link.read(Table.HOLDING, 0, 1, unit=1) == [100]  # link still fine
    finally:
        await link.close()


async def test_requests_are_serialised(modbus: int) -> None:
    """Many concurrent reads on one link: all answered, one connection, one at a time."""
    link = link_to(modbus, timeout_s=2.0, pause_s=0.001)
    try:
        results = await asyncio.gather(
            *(link.read(Table.HOLDING, i, 2, unit=1 + i % 3) for i in range(30))
        )
        assert results == [[100 * (1 + i % 3)] * 2 for i in range(30)]
        assert link.requests == 30
        assert link.connects == 1
    finally:
        await link.close()


async def test_silent_peer_times_out_after_retries() -> None:
    server, port = await raw_server(silent)
    link = link_to(port, timeout_s=0.05, retries=2, close_after_timeouts=100)
    try:
        with pytest.raises(DeviceTimeout):
            await link.read(Table.HOLDING, 0, 1, unit=1)
        assert link.requests == 3  # one attempt plus two retries
        assert link.connected  # a timeout alone keeps the connection
    finally:
        await link.close()
        server.close()


async def test_repeated_timeouts_close_the_connection() -> None:
    server, port = await raw_server(silent)
    link = link_to(port, timeout_s=0.05, close_after_timeouts=2)
    try:
        for _ in range(2):
            with pytest.raises(DeviceTimeout):
                await link.read(Table.HOLDING, 0, 1, unit=1)
        assert not link.connected
        with pytest.raises(DeviceTimeout):
            await link.read(Table.HOLDING, 0, 1, unit=1)
        assert link.connects == 2  # reopened on the next request
    finally:
        await link.close()
        server.close()


async def test_wrong_length_is_bad_response() -> None:
    def one_register(header: bytes) -> bytes:
        # Echo transaction and unit id; fc 3 with 1 register whatever was asked.
        return header[:4] + struct.pack(">HB", 5, header[6]) + bytes([3, 2, 0, 42])

    server, port = await raw_server(answer_with(one_register))
    link = link_to(port, timeout_s=1.0, retries=1)
    try:
        assert await link.read(Table.HOLDING, 0, 1, unit=1) == [42]
        with pytest.raises(BadResponse):
            await link.read(Table.HOLDING, 0, 5, unit=1)
        assert link.requests == 3  # a bad response is retried
    finally:
        await link.close()
        server.close()


async def test_garbage_is_a_failure_not_a_hang() -> None:
    """Bytes that are no Modbus frame: the read fails (timeout or bad response), never hangs."""
    server, port = await raw_server(answer_with(lambda _h: b"\xde\xad\xbe\xef garbage"))
    link = link_to(port, timeout_s=0.2)
    try:
        with pytest.raises((BadResponse, DeviceTimeout)):
            await link.read(Table.HOLDING, 0, 1, unit=1)
    finally:
        await link.close()
        server.close()


async def test_link_down_then_reconnect_after_server_returns() -> None:
    server, port = await start_modbus((1,))
    link = link_to(port, timeout_s=1.0)
    try:
        assert await link.read(Table.HOLDING, 0, 1, unit=1) == [100]
        await server.shutdown()
        with pytest.raises((LinkDown, DeviceTimeout)):
            await link.read(Table.HOLDING, 0, 1, unit=1)
        with pytest.raises(LinkDown):  # nobody listens: connect is refused
            await link.read(Table.HOLDING, 0, 1, unit=1)
        devices = [
            SimDevice(
                id=1,
                simdata=[SimData(address=0, count=10, values=7, datatype=DataType.REGISTERS)],
            )
        ]
        server = ModbusTcpServer(devices, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        assert await link.read(Table.HOLDING, 0, 1, unit=1) == [7]
    finally:
        await link.close()
        await server.shutdown()


async def test_close_after_cycle_reconnects_each_cycle(modbus: int) -> None:
    link = link_to(modbus, timeout_s=2.0, close_after_cycle=True, pause_after_connect_s=0.001)
    try:
        for _ in range(3):
            assert await link.read(Table.HOLDING, 0, 1, unit=2) == [200]
            await link.end_cycle()
            assert not link.connected
        assert link.connects == 3
    finally:
        await link.close()


def test_bad_settings_are_refused() -> None:
    factory = tcp_client_factory("127.0.0.1", 1)
    with pytest.raises(ValueError, match="timeout_s"):
        ModbusLink("x", factory, timeout_s=0)
    with pytest.raises(ValueError, match="retries"):
        ModbusLink("x", factory, retries=-1)
    with pytest.raises(ValueError, match="pauses"):
        ModbusLink("x", factory, pause_s=-1)
    with pytest.raises(ValueError, match="close_after_timeouts"):
        ModbusLink("x", factory, close_after_timeouts=0)
