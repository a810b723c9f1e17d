"""One Modbus connection (a TCP socket or a serial line): serialised reads.

A :class:`ModbusLink` owns one pymodbus async client and lets exactly one
request be in flight at a time, whatever number of devices (unit ids) share
the connection. Between two requests it keeps ``pause_s`` of quiet time (on
the injectable :class:`~gateway.clock.Clock`), and it races each attempt
against ``timeout_s`` on the same clock.

Transports: the client comes from a factory, so one link class serves them
all. :func:`tcp_client_factory` builds Modbus TCP and, with
``framer=FramerType.RTU``, RTU over TCP (serial device servers);
:func:`serial_client_factory` builds RTU on a serial line. Both turn
pymodbus' own retries and background reconnects off, because the link does
both itself.

Errors are typed: :class:`DeviceTimeout` (no answer in time),
:class:`DeviceException` (a Modbus exception response, with its code),
:class:`BadResponse` (an answer that decodes but has the wrong size) and
:class:`LinkDown` (the connection cannot be opened). A lost connection is
reopened on the next request; nothing reconnects in the background.

RTU specifics (serial and RTU over TCP):

* An answer with a CRC error, a truncated answer and line noise all end as
  :class:`DeviceTimeout`. pymodbus' RTU framer drops a frame whose CRC does
  not match and waits for the rest of a short one; on a line there is no way
  to tell noise from silence, so the attempt runs into the timeout (and is
  retried like any timeout). Only a frame with a valid CRC whose contents
  are wrong (e.g. fewer registers than asked) is a :class:`BadResponse`.
* RTU has no transaction ids: a late answer (from a device slower than
  ``timeout_s``) to a unit that is asked again right away can be taken as
  the answer to the new request. Keep ``timeout_s`` above the slowest
  device's answer time.
* The Modbus spec wants at least 3.5 character times of silence between
  frames. pymodbus does not keep it; set ``pause_s`` to at least
  :func:`rtu_frame_gap_s` (about 0.004 s at 9600 baud 8N1, 1.75 ms above
  19200 baud). Many slow devices want more: 0.02-0.05 s at 9600 baud is a
  common working value when a device misses every other request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
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
    "rtu_frame_gap_s",
    "serial_client_factory",
    "serial_settings_problem",
    "tcp_client_factory",
]

ClientFactory = Callable[[], ModbusBaseClient]
"""Builds the (not yet connected) pymodbus client of a link; called once, lazily."""

_T = TypeVar("_T")

# pymodbus 3.16 reports its own receive timeout only as a ModbusIOException
# whose text says so ("No response received after 0 retries ...").
_NO_RESPONSE = "No response received"


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


def serial_settings_problem(baudrate: int, parity: str, stopbits: int, bytesize: int) -> str | None:
    """What is wrong with these serial line settings, or None when they are usable."""
    if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
        return f"baudrate must be a positive integer, got {baudrate!r}"
    if parity not in ("N", "E", "O"):
        return f"parity must be 'N', 'E' or 'O', got {parity!r}"
    if stopbits not in (1, 2) or isinstance(stopbits, bool):
        return f"stopbits must be 1 or 2, got {stopbits!r}"
    if bytesize not in (7, 8) or isinstance(bytesize, bool):
        return f"bytesize must be 7 or 8 (RTU uses 8), got {bytesize!r}"
    return None


def rtu_frame_gap_s(
    baudrate: int, *, parity: str = "N", stopbits: int = 1, bytesize: int = 8
) -> float:
    """The RTU inter-frame silence: 3.5 character times, 1.75 ms above 19200 baud.

    A character is a start bit, the data bits, the parity bit if any and the
    stop bits (10 bits at 8N1, 11 at 8E1). A lower bound for ``pause_s``.
    """
    problem = serial_settings_problem(baudrate, parity, stopbits, bytesize)
    if problem is not None:
        raise ValueError(problem)
    if baudrate > 19200:
        return 0.00175  # the spec's fixed value for fast lines
    bits = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
    return 3.5 * bits / baudrate


def serial_client_factory(
    port: str,
    *,
    baudrate: int = 9600,
    parity: str = "N",
    stopbits: int = 1,
    bytesize: int = 8,
    timeout_s: float = 1.0,
) -> ClientFactory:
    """Factory for Modbus RTU on the serial device ``port`` (``/dev/ttyUSB0``, a pty).

    pymodbus' own retries and reconnect loop are off. ``timeout_s`` is
    pymodbus' timeout for opening the port and, as a backstop, for each
    answer; when it fires before the link's ``timeout_s`` the link still
    reports :class:`DeviceTimeout`. Bad settings raise ValueError here, at
    configuration time, not at the first read.
    """
    problem = serial_settings_problem(baudrate, parity, stopbits, bytesize)
    if problem is not None:
        raise ValueError(f"serial port {port}: {problem}")
    if not port:
        raise ValueError("serial port: give a device path such as /dev/ttyUSB0")
    if timeout_s <= 0:
        raise ValueError(f"serial port {port}: timeout_s must be > 0, got {timeout_s!r}")

    def build() -> ModbusBaseClient:
        return AsyncModbusSerialClient(
            port,
            framer=FramerType.RTU,
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
            bytesize=bytesize,
            retries=0,
            reconnect_delay=0,
            timeout=timeout_s,
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
        what = f"link {self.name} unit {unit} {table} {start}+{count}"

        def values(response: ModbusPDU) -> list[int] | list[bool]:
            if table.is_bit:
                bits = list(response.bits)
                if len(bits) < count:
                    raise BadResponse(f"{what}: got {len(bits)} bits")
                return bits[:count]
            registers = list(response.registers)
            if len(registers) != count:
                raise BadResponse(f"{what}: got {len(registers)} registers")
            return registers

        return await self._transact(what, lambda c: _call(c, table, start, count, unit), values)

    async def write(
        self, table: Table, start: int, values: Sequence[int] | Sequence[bool], unit: int
    ) -> None:
        """Write holding registers or coils from ``start`` on device ``unit``.

        One value goes out as a single write (function 6 or 5), several as a
        multiple write (16 or 15). Retried like a read: writing the same
        value twice is harmless. Raises a :class:`LinkError` subclass.
        """
        if table not in (Table.HOLDING, Table.COIL):
            raise ValueError(f"link {self.name}: {table} is read-only")
        if not values:
            raise ValueError(f"link {self.name}: nothing to write")
        what = f"link {self.name} unit {unit} write {table} {start}+{len(values)}"
        await self._transact(
            what, lambda c: _write_call(c, table, start, values, unit), lambda _r: None
        )

    async def _transact(
        self,
        what: str,
        call: Callable[[ModbusBaseClient], Awaitable[ModbusPDU]],
        check: Callable[[ModbusPDU], _T],
    ) -> _T:
        """One request with the link's retries, in turn with the others; ``check``
        turns the answer into the result or raises BadResponse (retried too)."""
        async with self._lock:
            attempt = 0
            while True:
                try:
                    result = check(await self._attempt(what, call))
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
                    return result
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
        self, what: str, call: Callable[[ModbusBaseClient], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        client = await self._ensure_connected()
        await self._pause()
        self.requests += 1
        try:
            response = await self._race(call(client), what)
        except ConnectionException as exc:
            self._close()
            raise LinkDown(f"{what}: connection lost: {exc}") from exc
        except ModbusIOException as exc:
            if _NO_RESPONSE in exc.string:  # pymodbus' own receive timeout fired first
                raise DeviceTimeout(f"{what}: no answer: {exc}") from exc
            raise BadResponse(f"{what}: {exc}") from exc
        except ModbusException as exc:
            raise BadResponse(f"{what}: {exc}") from exc
        finally:
            self._last_end = self._clock.monotonic()
        if isinstance(response, ExceptionResponse) or response.isError():
            code = int(getattr(response, "exception_code", 0))
            raise DeviceException(code, f"{what}: exception response, code {code}")
        return response

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


def _write_call(
    client: ModbusBaseClient,
    table: Table,
    start: int,
    values: Sequence[int] | Sequence[bool],
    unit: int,
) -> Awaitable[ModbusPDU]:
    if table is Table.COIL:
        bits = [bool(v) for v in values]
        if len(bits) == 1:
            return client.write_coil(start, bits[0], device_id=unit)
        return client.write_coils(start, bits, device_id=unit)
    words = [int(v) for v in values]
    if len(words) == 1:
        return client.write_register(start, words[0], device_id=unit)
    return client.write_registers(start, words, device_id=unit)
