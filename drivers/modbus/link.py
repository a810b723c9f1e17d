"""One Modbus connection (a TCP socket or a serial line): serialised reads.

A :class:`ModbusLink` owns one pymodbus async client and lets exactly one
request be in flight at a time, whatever number of devices (unit ids) share
the connection. Between two requests it keeps ``pause_s`` of quiet time (on
the injectable :class:`~gateway.clock.Clock`), and it races each attempt
against ``timeout_s`` on the same clock.

Transports: the client comes from a factory, so one link class serves them
all. :func:`tcp_client_factory` builds Modbus TCP and, with
``framer=FramerType.RTU``, RTU over TCP (serial servers). Serial RTU slots in
with a factory returning ``AsyncModbusSerialClient(port, baudrate=...,
retries=0, reconnect_delay=0, timeout=...)``: the factory only has to return a
:class:`pymodbus.client.base.ModbusBaseClient` with pymodbus' own retries and
background reconnects turned off, because the link does both itself.

Errors are typed: :class:`DeviceTimeout` (no answer in time),
:class:`DeviceException` (a Modbus exception response, with its code),
:class:`BadResponse` (garbage or a wrong length) and :class:`LinkDown` (the
connection cannot be opened). A lost connection is reopened on the next
request; nothing reconnects in the background.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from drivers.modbus.planner import Table
from gateway.clock import Clock, SystemClock

__all__ = [
    "BadResponse",
    "ClientFactory",
    "DeviceException",
    "DeviceTimeout",
    "LinkDown",
    "LinkError",
    "ModbusLink",
    "tcp_client_factory",
]

ClientFactory = Callable[[], ModbusBaseClient]
"""Builds the (not yet connected) pymodbus client of a link; called once, lazily."""

_T = TypeVar("_T")


class LinkError(Exception):
    """Base class: a read did not return the values asked for."""


class DeviceTimeout(LinkError):
    """The device did not answer within the timeout (after all retries)."""


class DeviceException(LinkError):
    """The device answered with a Modbus exception response."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class BadResponse(LinkError):
    """The answer could not be decoded or has the wrong size."""


class LinkDown(LinkError):
    """The connection could not be opened."""


def tcp_client_factory(
    host: str,
    port: int = 502,
    *,
    framer: FramerType = FramerType.SOCKET,
    connect_timeout_s: float = 3.0,
) -> ClientFactory:
    """Factory for Modbus TCP (``FramerType.SOCKET``) or RTU over TCP (``FramerType.RTU``).

    pymodbus' own retries and reconnect loop are off; its receive timeout is
    only a backstop (the link's ``timeout_s`` normally fires first).
    """

    def build() -> ModbusBaseClient:
        return AsyncModbusTcpClient(
            host,
            port=port,
            framer=framer,
            retries=0,
            reconnect_delay=0,
            timeout=connect_timeout_s,
        )

    return build


class ModbusLink:
    """One connection shared by the devices behind it; one request at a time.

    ``timeout_s`` bounds each attempt, ``retries`` extra attempts follow a
    timeout or a bad response (never an exception response: the device did
    answer). ``pause_after_connect_s`` and ``close_after_cycle`` are the
    device-quirk workarounds: wait after opening the connection, and close
    it in :meth:`end_cycle`. After ``close_after_timeouts`` consecutive
    timeouts (any unit) the connection is closed and reopened on the next
    request, which cures a silently dead (half-open) TCP connection.
    """

    def __init__(
        self,
        name: str,
        client_factory: ClientFactory,
        *,
        timeout_s: float = 1.0,
        retries: int = 0,
        pause_s: float = 0.0,
        pause_after_connect_s: float = 0.0,
        close_after_cycle: bool = False,
        close_after_timeouts: int = 3,
        clock: Clock | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"link {name}: timeout_s must be > 0, got {timeout_s!r}")
        if retries < 0:
            raise ValueError(f"link {name}: retries must be >= 0, got {retries!r}")
        if close_after_timeouts < 1:
            raise ValueError(f"link {name}: close_after_timeouts must be >= 1")
        if pause_s < 0 or pause_after_connect_s < 0:
            raise ValueError(f"link {name}: pauses must be >= 0")
        self.name = name
        self.timeout_s = timeout_s
        self.retries = retries
        self.pause_s = pause_s
        self.pause_after_connect_s = pause_after_connect_s
        self.close_after_cycle = close_after_cycle
        self.close_after_timeouts = close_after_timeouts
        self._timeouts = 0  # consecutive timeouts on this link, any unit
        self._factory = client_factory
        self._clock: Clock = clock or SystemClock()
        self._client: ModbusBaseClient | None = None
        self._lock = asyncio.Lock()
        self._last_end: float | None = None
        self.requests = 0  # attempts sent, for stats and tests
        self.connects = 0

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def read(self, table: Table, start: int, count: int, unit: int) -> list[int] | list[bool]:
        """Read ``count`` registers (bits) of ``table`` from ``start`` on device ``unit``.

        Waits its turn behind other requests on this link. Raises a
        :class:`LinkError` subclass when no valid answer comes.
        """
        async with self._lock:
            attempt = 0
            while True:
                try:
                    values = await self._attempt(table, start, count, unit)
                except DeviceTimeout:
                    self._timeouts += 1
                    if self._timeouts >= self.close_after_timeouts:
                        self._timeouts = 0
                        self._close()
                    if attempt >= self.retries:
                        raise
                except BadResponse:
                    if attempt >= self.retries:
                        raise
                except DeviceException:
                    self._timeouts = 0  # the connection works: the device answered
                    raise
                else:
                    self._timeouts = 0
                    return values
                attempt += 1

    async def end_cycle(self) -> None:
        """Close the connection if ``close_after_cycle`` is set (a device quirk)."""
        if self.close_after_cycle:
            async with self._lock:
                self._close()

    async def close(self) -> None:
        """Close the connection; the next read reopens it."""
        async with self._lock:
            self._close()

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()

    async def _attempt(
        self, table: Table, start: int, count: int, unit: int
    ) -> list[int] | list[bool]:
        client = await self._ensure_connected()
        await self._pause()
        self.requests += 1
        what = f"link {self.name} unit {unit} {table} {start}+{count}"
        try:
            response = await self._race(_call(client, table, start, count, unit), what)
        except ConnectionException as exc:
            self._close()
            raise LinkDown(f"{what}: connection lost: {exc}") from exc
        except ModbusException as exc:
            raise BadResponse(f"{what}: {exc}") from exc
        finally:
            self._last_end = self._clock.monotonic()
        if isinstance(response, ExceptionResponse) or response.isError():
            code = int(getattr(response, "exception_code", 0))
            raise DeviceException(code, f"{what}: exception response, code {code}")
        values: list[int] | list[bool]
        if table.is_bit:
            bits = list(response.bits)
            if len(bits) < count:
                raise BadResponse(f"{what}: got {len(bits)} bits")
            values = bits[:count]
        else:
            values = list(response.registers)
            if len(values) != count:
                raise BadResponse(f"{what}: got {len(values)} registers")
        return values

    async def _ensure_connected(self) -> ModbusBaseClient:
        if self._client is None:
            self._client = self._factory()
        client = self._client
        if client.connected:
            return client
        try:
            ok = await self._race(client.connect(), f"link {self.name}: connect")
        except DeviceTimeout as exc:
            client.close()
            raise LinkDown(str(exc)) from exc
        if not ok:
            client.close()
            raise LinkDown(f"link {self.name}: cannot connect")
        self.connects += 1
        if self.pause_after_connect_s > 0:
            await self._clock.sleep(self.pause_after_connect_s)
        return client

    async def _pause(self) -> None:
        if self.pause_s > 0 and self._last_end is not None:
            wait = self._last_end + self.pause_s - self._clock.monotonic()
            if wait > 0:
                await self._clock.sleep(wait)

    async def _race(self, work: Awaitable[_T], what: str) -> _T:
        """Await ``work`` unless ``timeout_s`` of clock time passes first."""
        task = asyncio.ensure_future(work)
        timer = asyncio.ensure_future(self._clock.sleep(self.timeout_s))
        try:
            await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not task.done():
                task.cancel()
        if task.cancelled() or not task.done():
            raise DeviceTimeout(f"{what}: no answer within {self.timeout_s:g} s")
        return task.result()


def _call(
    client: ModbusBaseClient, table: Table, start: int, count: int, unit: int
) -> Awaitable[ModbusPDU]:
    if table is Table.HOLDING:
        return client.read_holding_registers(start, count=count, device_id=unit)
    if table is Table.INPUT:
        return client.read_input_registers(start, count=count, device_id=unit)
    if table is Table.COIL:
        return client.read_coils(start, count=count, device_id=unit)
    return client.read_discrete_inputs(start, count=count, device_id=unit)
