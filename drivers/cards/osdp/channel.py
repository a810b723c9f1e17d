"""The byte pipe under libosdp: a serial line or a TCP connection that never raises.

libosdp calls ``read``/``write``/``flush`` of a Python object from inside
``refresh()``; an exception there would be left pending in the interpreter
by the C glue, so every method here catches its own errors, marks the line
down and returns "nothing read" / "all written" (the bytes are lost, as
on a cut cable; libosdp's timeouts and our own health state take over).

The panel's refresh thread owns the channel: it calls :meth:`BusChannel.maintain`
each turn (opening or reconnecting with backoff, without blocking: a TCP
connect is non-blocking and finished when the socket turns writable) and
waits in ``select`` on :meth:`BusChannel.fileno` so a reply is handled the
moment its bytes arrive.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import time
from abc import ABC, abstractmethod

import serial

from gateway.backoff import Backoff

__all__ = ["BusChannel", "SerialChannel", "TcpChannel"]


class BusChannel(ABC):
    """What libosdp reads from and writes to (``id`` is its channel id: one per CP)."""

    id = 0

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.connected = False
        self.detail = "not connected yet"  # why it is down (for device.offline reasons)
        self.failures = 0  # connect attempts failed or connections lost so far
        self.heard: set[int] = set()  # PD addresses that replied since the panel last looked
        self.reads = 0  # reads that returned bytes (the panel refreshes again after one)
        self._next_attempt = 0.0
        self._som_at_end = False

    @property
    @abstractmethod
    def name(self) -> str:
        """Where the channel goes (``/dev/ttyUSB0``, ``10.0.0.5:4001``), for logs."""

    @abstractmethod
    def maintain(self, now: float) -> None:
        """Open or reconnect when due (non-blocking); called each refresh turn."""

    @abstractmethod
    def fileno(self) -> int | None:
        """The descriptor to wait on for incoming bytes (None while down)."""

    def connect_fileno(self) -> int | None:
        """A descriptor to wait on for writability (a TCP connect in progress)."""
        return None

    @abstractmethod
    def read(self, max_bytes: int) -> bytes: ...

    @abstractmethod
    def write(self, buf: bytes) -> int: ...

    @abstractmethod
    def flush(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def _sniff(self, data: bytes) -> None:
        """Count the read and note the address of every reply header (SOM 0x53, then
        the address with bit 7 set; headers are never encrypted): who answered, even on
        a multi-drop line."""
        if data:
            self.reads += 1
        if self._som_at_end and data and data[0] & 0x80:
            self.heard.add(data[0] & 0x7F)
        i = data.find(0x53)
        while i != -1 and i + 1 < len(data):
            if data[i + 1] & 0x80:
                self.heard.add(data[i + 1] & 0x7F)
            i = data.find(0x53, i + 1)
        self._som_at_end = bool(data) and data[-1] == 0x53

    def _down(self, detail: str, now: float | None = None) -> None:
        self.connected = False
        self.detail = detail
        self.failures += 1
        self._next_attempt = (time.monotonic() if now is None else now) + self.backoff.next()


class SerialChannel(BusChannel):
    """An RS-485 line through pyserial, 8N1 (OSDP's framing), non-blocking reads."""

    def __init__(self, port: str, baud: int, backoff: Backoff) -> None:
        super().__init__(backoff)
        self.port, self.baud = port, baud
        self._ser: serial.Serial | None = None

    @property
    def name(self) -> str:
        return self.port

    def maintain(self, now: float) -> None:
        if self._ser is not None or now < self._next_attempt:
            return
        try:
            self._ser = serial.Serial(
                self.port, self.baud, timeout=0, write_timeout=1.0, exclusive=True
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self._down(f"cannot open {self.port}: {exc}", now)
            return
        self.connected, self.detail = True, ""
        self.backoff.reset()

    def fileno(self) -> int | None:
        return self._ser.fileno() if self._ser is not None else None

    def read(self, max_bytes: int) -> bytes:
        if self._ser is None:
            return b""
        try:
            data = bytes(self._ser.read(max_bytes))
        except (serial.SerialException, OSError) as exc:
            self._lost(f"read from {self.port} failed: {exc}")
            return b""
        self._sniff(data)
        return data

    def write(self, buf: bytes) -> int:
        if self._ser is None:
            return len(buf)
        try:
            self._ser.write(buf)
        except (serial.SerialException, OSError) as exc:
            self._lost(f"write to {self.port} failed: {exc}")
        return len(buf)

    def flush(self) -> None:
        """Nothing to do: writes go straight to the descriptor."""

    def _lost(self, detail: str) -> None:
        self.close()
        self._down(detail)

    def close(self) -> None:
        ser, self._ser = self._ser, None
        self.connected = False
        if ser is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                ser.close()


class TcpChannel(BusChannel):
    """A TCP client: a serial device server in raw mode, or a reader listening on TCP."""

    def __init__(
        self, host: str, port: int, backoff: Backoff, *, connect_timeout_s: float = 5.0
    ) -> None:
        super().__init__(backoff)
        self.host, self.port = host, port
        self.connect_timeout_s = connect_timeout_s
        self._sock: socket.socket | None = None
        self._connecting = False
        self._deadline = 0.0

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    def maintain(self, now: float) -> None:
        if self._sock is None:
            if now >= self._next_attempt:
                self._start_connect(now)
            return
        if not self._connecting:
            return
        try:
            _r, writable, _x = select.select([], [self._sock], [], 0)
        except (OSError, ValueError) as exc:
            self._fail(f"connect to {self.name} failed: {exc}", now)
            return
        if writable:
            err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._fail(f"connect to {self.name} failed: {errno.errorcode.get(err, err)}", now)
                return
            self._connecting = False
            self.connected, self.detail = True, ""
            self.backoff.reset()
        elif now >= self._deadline:
            self._fail(f"connect to {self.name} timed out after {self.connect_timeout_s} s", now)

    def _start_connect(self, now: float) -> None:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            family, kind, proto, _name, addr = infos[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            self._down(f"cannot resolve {self.name}: {exc}", now)
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        rc = sock.connect_ex(addr)
        if rc not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            self._down(f"connect to {self.name} failed: {errno.errorcode.get(rc, rc)}", now)
            return
        self._sock, self._connecting, self._deadline = sock, True, now + self.connect_timeout_s

    def _fail(self, detail: str, now: float | None = None) -> None:
        self.close()
        self._down(detail, now)

    def fileno(self) -> int | None:
        if self._sock is None or self._connecting:
            return None
        return self._sock.fileno()

    def connect_fileno(self) -> int | None:
        return self._sock.fileno() if self._sock is not None and self._connecting else None

    def read(self, max_bytes: int) -> bytes:
        if self._sock is None or self._connecting:
            return b""
        try:
            data = self._sock.recv(max_bytes)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            self._fail(f"connection to {self.name} lost: {exc}")
            return b""
        if not data:
            self._fail(f"{self.name} closed the connection")
            return b""
        self._sniff(data)
        return data

    def write(self, buf: bytes) -> int:
        if self._sock is None or self._connecting:
            return len(buf)
        view, deadline = memoryview(buf), time.monotonic() + 1.0
        try:
            while view:
                try:
                    sent = self._sock.send(view)
                except (BlockingIOError, InterruptedError):
                    if time.monotonic() > deadline:
                        raise TimeoutError("send buffer full for 1 s") from None
                    select.select([], [self._sock], [], 0.05)
                    continue
                view = view[sent:]
        except OSError as exc:
            self._fail(f"write to {self.name} failed: {exc}")
        return len(buf)

    def flush(self) -> None:
        """Nothing to do: each write is sent whole before it returns."""

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._connecting = False
        self.connected = False
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
