"""Fault injection for the Modbus simulator: what the wire does instead of a good answer.

Each simulated unit has a :class:`FaultControl`; tests and demos switch its
fault at run time and the request handler below obeys it on the next request:

==============  ==============================================================
fault           on the wire
==============  ==============================================================
none            the normal answer from the unit's registers
silent          nothing at all; the request is read and dropped (client times out)
exception(c)    a Modbus exception response: function code | 0x80, exception code c
garbage         bytes that are not a valid answer: a frame of the transport's
                framing (MBAP echoing transaction id and unit, or RTU: unit,
                PDU, valid CRC) around function code 0x63 (no such function)
                and junk; custom bytes (e.g. a bad CRC) may be given instead
slow(s)         the normal answer, sent ``s`` seconds later (on the simulator's clock)
==============  ==============================================================

One fault at a time per unit: setting one replaces the previous one.
:class:`FaultInjectingTcpServer` (Modbus TCP, or RTU framing over TCP) and
:class:`FaultInjectingSerialServer` (RTU on a serial device) are pymodbus
servers whose request handler applies these faults and serves data from a
:class:`RequestStore` (the simulator) instead of a pymodbus datastore.

A unit id that is not served is answered with exception 11 (gateway target
failed to respond) on Modbus TCP, as a TCP gateway does; with RTU framing
(serial or RTU over TCP) nobody answers, as on a real RS-485 bus.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerBase, FramerSocket, FramerType
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusBaseServer, ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import SimData, SimDevice

from gateway.clock import Clock

__all__ = [
    "DEFAULT_GARBAGE_PDU",
    "Fault",
    "FaultControl",
    "FaultInjectingSerialServer",
    "FaultInjectingServer",
    "FaultInjectingTcpServer",
    "FaultKind",
    "InvalidFaultError",
    "RequestStore",
]

log = logging.getLogger(__name__)

DEFAULT_GARBAGE_PDU = b"\x63\xde\xad\xbe\xef"
"""PDU of the default garbage answer: function code 0x63 (undefined) and four junk bytes."""


class InvalidFaultError(ValueError):
    """A fault was asked for with an impossible parameter (code, delay, bytes)."""


class FaultKind(enum.StrEnum):
    NONE = "none"
    SILENT = "silent"
    EXCEPTION = "exception"
    GARBAGE = "garbage"
    SLOW = "slow"


@dataclass(frozen=True, slots=True)
class Fault:
    """The fault in force: its kind and the kind's parameter."""

    kind: FaultKind = FaultKind.NONE
    code: int = 0  # exception: the Modbus exception code
    delay: float = 0.0  # slow: seconds before the answer
    data: bytes | None = None  # garbage: raw bytes to send instead of the default frame


class FaultControl:
    """The run-time fault switch of one unit. Not thread-safe: use it from the server's loop."""

    def __init__(self) -> None:
        self._fault = Fault()

    @property
    def current(self) -> Fault:
        return self._fault

    def silent(self) -> None:
        """Read requests and never answer them."""
        self._fault = Fault(FaultKind.SILENT)

    def exception(self, code: int) -> None:
        """Answer every request with exception ``code`` (1..255; 2 illegal address, 6 busy)."""
        if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= 255:
            raise InvalidFaultError(f"exception code must be an integer 1..255, got {code!r}")
        self._fault = Fault(FaultKind.EXCEPTION, code=code)

    def garbage(self, data: bytes | None = None) -> None:
        """Answer with bytes that are no valid answer; ``data`` replaces the default frame."""
        if data is not None and (not isinstance(data, bytes) or not data):
            raise InvalidFaultError(f"garbage data must be non-empty bytes, got {data!r}")
        self._fault = Fault(FaultKind.GARBAGE, data=data)

    def slow(self, seconds: float) -> None:
        """Answer normally, but ``seconds`` late."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise InvalidFaultError(f"delay must be a number of seconds >= 0, got {seconds!r}")
        self._fault = Fault(FaultKind.SLOW, delay=float(seconds))

    def clear(self) -> None:
        """Back to normal answers."""
        self._fault = Fault()


class RequestStore(Protocol):
    """What the request handler needs from the simulator.

    ``async_getValues``/``async_setValues`` are the duck-typed datastore calls
    that pymodbus request PDUs make in ``datastore_update``; they return an
    ``ExcCodes`` member to answer with an exception.
    """

    def fault(self, unit: int) -> Fault | None:
        """The unit's fault, or None when no such unit is served."""

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        """Values of ``count`` registers (bits) from ``address``."""

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        """Write values; None on success."""


def garbage_frame(pdu: ModbusPDU, data: bytes | None, framer: FramerBase | None = None) -> bytes:
    """The garbage answer to ``pdu``: ``data`` as given, or junk in ``framer``'s frame.

    Without a framer the frame is MBAP (Modbus TCP). With an RTU framer it is
    unit id, the junk PDU and a valid CRC: the client's RTU framer finds no
    frame it knows in it and keeps waiting, as it would for line noise.
    """
    if data is not None:
        return data
    framer = framer or FramerSocket(DecodePDU(False))
    return framer.encode(DEFAULT_GARBAGE_PDU, pdu.dev_id & 0xFF, pdu.transaction_id & 0xFFFF)


class _FaultInjectingHandler(ServerRequestHandler):
    """One client connection (or the serial line): decode requests as pymodbus does,
    answer as the fault says."""

    server: FaultInjectingServer

    async def handle_request(self) -> None:
        pdu, addr = self.last_pdu, self.last_addr  # capture: a slow answer outlives them
        if pdu is None:
            return
        task = asyncio.current_task()
        if task is not None:
            self.server.pending.add(task)
        try:
            await self._handle(pdu, addr)
        finally:
            if task is not None:
                self.server.pending.discard(task)

    async def _handle(self, pdu: ModbusPDU, addr: tuple[Any, ...] | None) -> None:
        fault = self.server.store.fault(pdu.dev_id)
        if fault is None:
            if self.server.answers_unknown_units:
                # A TCP gateway with nothing behind this unit id (as pymodbus itself answers).
                code = ExcCodes.GATEWAY_NO_RESPONSE
                self._answer(ExceptionResponse(pdu.function_code, code), pdu, addr)
            # On an RTU line nobody owns this address, so nobody answers.
            return
        if fault.kind is FaultKind.SILENT:
            return
        if fault.kind is FaultKind.GARBAGE:
            self.send(garbage_frame(pdu, fault.data, self.framer), addr)
            return
        if fault.kind is FaultKind.EXCEPTION:
            self._answer(ExceptionResponse(pdu.function_code, fault.code), pdu, addr)
            return
        if fault.kind is FaultKind.SLOW:
            await self.server.clock.sleep(fault.delay)
            if self.transport is None:
                return  # the client hung up (or the line closed) while we dawdled
        # pymodbus annotates the context as its own datastore class; ours is duck-typed.
        context = cast(Any, self.server.store)
        self._answer(await pdu.datastore_update(context, pdu.dev_id), pdu, addr)

    def _answer(
        self, response: ModbusPDU, request: ModbusPDU, addr: tuple[Any, ...] | None
    ) -> None:
        response.transaction_id = request.transaction_id
        response.dev_id = request.dev_id
        self.pdu_send(response, addr)


class FaultInjectingServer(ModbusBaseServer):
    """What the fault-injecting TCP and serial servers share: the store, the
    clock, the answers in progress and the connection handler.

    pymodbus 3.16 offers no per-request hook that can stay silent or send raw
    bytes (``SimDevice(action=...)`` can only delay or return an exception
    code), so the subclasses replace the connection handler's
    ``handle_request``. The ``SimDevice`` they give pymodbus is a placeholder
    it insists on; no request reaches it.
    """

    store: RequestStore
    clock: Clock
    pending: set[asyncio.Task[Any]]  # requests being answered
    answers_unknown_units: bool  # Modbus TCP: exception 11; RTU: silence

    def _setup_faults(self, store: RequestStore, clock: Clock, framer: FramerType) -> None:
        self.store = store
        self.clock = clock
        self.pending = set()
        self.answers_unknown_units = framer is FramerType.SOCKET

    async def close_all(self) -> None:
        """Stop listening, drop the connections and cancel answers in progress."""
        if not self.serving.done():  # what pymodbus' (untyped) shutdown() does
            self.serving.set_result(True)
        self.close()
        for task in list(self.pending):
            task.cancel()
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)

    def callback_new_connection(self) -> ServerRequestHandler:
        # pymodbus leaves this __init__ unannotated.
        return _FaultInjectingHandler(self, None, None, None)  # type: ignore[no-untyped-call]


def _placeholder() -> SimDevice:
    return SimDevice(id=0, simdata=SimData(0))


class FaultInjectingTcpServer(FaultInjectingServer, ModbusTcpServer):
    """A pymodbus TCP server whose answers come from ``store`` and obey its faults.

    ``framer=FramerType.RTU`` serves RTU frames over TCP, as a serial device
    server (a transparent RS-485 to Ethernet converter) passes them on.
    """

    def __init__(
        self,
        store: RequestStore,
        clock: Clock,
        host: str,
        port: int,
        *,
        framer: FramerType = FramerType.SOCKET,
    ) -> None:
        super().__init__(_placeholder(), address=(host, port), framer=framer)
        self._setup_faults(store, clock, framer)

    @property
    def bound_port(self) -> int:
        """The TCP port listened on (after ``listen()``)."""
        listener = cast(asyncio.base_events.Server, self.transport)
        port: int = listener.sockets[0].getsockname()[1]
        return port


class FaultInjectingSerialServer(FaultInjectingServer, ModbusSerialServer):
    """A pymodbus RTU server on a serial device (a real port or one end of a pty pair).

    All units share the line, as devices on one RS-485 bus do. pymodbus'
    serial transport keeps no inter-frame timing: a frame ends when its
    length and CRC say so, not after 3.5 characters of silence.
    """

    def __init__(
        self,
        store: RequestStore,
        clock: Clock,
        device: str,
        *,
        baudrate: int = 19200,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: int = 1,
    ) -> None:
        super().__init__(
            _placeholder(),
            framer=FramerType.RTU,
            port=device,
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
        )
        self._setup_faults(store, clock, FramerType.RTU)
