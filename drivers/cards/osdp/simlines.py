"""The lines simulated readers sit on: a serial port or a TCP server, shared like RS-485.

Readers given the same serial port (or the same server address) share one
line: one thread reads it, hands the bytes to every PD on it (each answers
only its own address) and refreshes them, waiting in ``select`` so a
command is answered as soon as it arrives. The last reader to leave a line
closes it (a TCP server made for a reader stops listening: the CP sees the
connection drop, as when a converter loses power); a :class:`TcpPdServer`
made by the caller stays until the caller stops it.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from abc import ABC, abstractmethod
from typing import Any, Protocol

import serial

__all__ = ["Line", "LineMember", "PdChannel", "SimulatorError", "TcpPdServer", "join", "leave"]


class SimulatorError(Exception):
    """A simulated reader or its line cannot do what was asked."""


class LineMember(Protocol):
    """What a line needs of a simulated reader."""

    address: int
    serial_port: str | None
    tcp_listen: tuple[str, int] | None

    def refresh(self, data: bytes) -> None: ...


class PdChannel:
    """What one PD's libosdp context reads from and writes to: its share of the line."""

    id = 0

    def __init__(self, line: Line) -> None:
        self._line = line
        self._rx = bytearray()

    def feed(self, data: bytes) -> None:
        self._rx += data

    def read(self, max_bytes: int) -> bytes:
        data = bytes(self._rx[:max_bytes])
        del self._rx[:max_bytes]
        return data

    def write(self, buf: bytes) -> int:
        self._line.send(buf)
        return len(buf)

    def flush(self) -> None:
        """Nothing to do: the line sends each write whole."""


class Line(ABC):
    """A shared medium with one thread that reads it and refreshes its PDs."""

    def __init__(self, key: tuple[Any, ...]) -> None:
        self.key = key
        self.lock = threading.RLock()  # held while a PD context is used
        self.readers: list[LineMember] = []
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None

    def _launch(self) -> None:
        self._open()
        self._thread = threading.Thread(target=self._run, name=f"osdp-sim-{self.key}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def _run(self) -> None:
        while not self._stop.is_set():
            fds = [self._wake_r, *self._fds()]
            try:
                readable, _w, _x = select.select(fds, [], [], 0.005)
            except (OSError, ValueError):
                readable = []
            if self._wake_r in readable:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
            data = self._receive(readable)
            with self.lock:
                for reader in self.readers:
                    reader.refresh(data)

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _fds(self) -> list[int]: ...

    @abstractmethod
    def _receive(self, readable: list[int]) -> bytes: ...

    @abstractmethod
    def send(self, data: bytes) -> None: ...


class _SerialLine(Line):
    def __init__(self, port: str) -> None:
        super().__init__(("serial", port))
        self.port = port
        self._ser: serial.Serial | None = None

    def _open(self) -> None:
        try:
            self._ser = serial.Serial(self.port, 115200, timeout=0, exclusive=True)
        except (serial.SerialException, OSError) as exc:
            raise SimulatorError(f"cannot open {self.port}: {exc}") from exc

    def _close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                ser.close()

    def _fds(self) -> list[int]:
        return [self._ser.fileno()] if self._ser is not None else []

    def _receive(self, readable: list[int]) -> bytes:
        if self._ser is None or not readable:
            return b""
        with contextlib.suppress(serial.SerialException, OSError):
            return bytes(self._ser.read(4096))
        return b""

    def send(self, data: bytes) -> None:
        if self._ser is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._ser.write(data)


class TcpPdServer(Line):
    """A TCP port the CP connects to, with the PDs of one multi-drop line behind it.

    The newest connection wins (a CP that reconnects leaves a half-open one
    behind). ``port=0`` picks a free port: read it back from :attr:`address`.
    Readers join with ``LineMember(..., tcp_listen=server.address)``;
    a server made that way by a reader stops with its last reader, one made
    by the caller when the caller stops it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(("tcp", host, port))
        self.host, self.port = host, port
        self._listener: socket.socket | None = None
        self._client: socket.socket | None = None
        self.owned = True  # stopped by whoever made it, not by its last reader

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self) -> None:
        """Listen (``address`` then has the real port) and serve the readers that join."""
        self._launch()
        _register(self)

    def stop(self) -> None:
        _unregister(self)
        super().stop()

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise SimulatorError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        sock.listen(4)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self.key = ("tcp", self.host, self.port)
        self._listener = sock

    def _close(self) -> None:
        for sock in (self._client, self._listener):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._client = self._listener = None

    def _fds(self) -> list[int]:
        return [s.fileno() for s in (self._listener, self._client) if s is not None]

    def _receive(self, readable: list[int]) -> bytes:
        if self._listener is not None and self._listener.fileno() in readable:
            with contextlib.suppress(BlockingIOError):
                client, _addr = self._listener.accept()
                client.setblocking(False)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._client is not None:
                    self._client.close()
                self._client = client
        if self._client is None or self._client.fileno() not in readable:
            return b""
        try:
            data = self._client.recv(4096)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self._client.close()
            self._client = None
        return data

    def send(self, data: bytes) -> None:
        if self._client is None:
            return
        try:
            self._client.sendall(data)
        except OSError:
            self._client.close()
            self._client = None


_lines: dict[tuple[Any, ...], Line] = {}
_lines_lock = threading.Lock()


def _register(line: Line) -> None:
    with _lines_lock:
        _lines[line.key] = line


def _unregister(line: Line) -> None:
    with _lines_lock:
        if _lines.get(line.key) is line:
            del _lines[line.key]


def join(reader: LineMember) -> Line:
    """The line a reader's address says, made (and started) if nobody made it yet."""
    with _lines_lock:
        if reader.serial_port is not None:
            key: tuple[Any, ...] = ("serial", reader.serial_port)
            line = _lines.get(key)
            if line is None:
                line = _SerialLine(reader.serial_port)
                line._launch()
                _lines[key] = line
        else:
            assert reader.tcp_listen is not None
            host, port = reader.tcp_listen
            line = _lines.get(("tcp", host, port))
            if line is None:
                line = TcpPdServer(host, port)
                line.owned = False
                line._launch()
                _lines[line.key] = line
        with line.lock:
            if any(r.address == reader.address for r in line.readers):
                raise SimulatorError(f"address {reader.address} is taken on {line.key}")
            line.readers.append(reader)
        return line


def leave(reader: LineMember, line: Line) -> None:
    with line.lock:
        if reader in line.readers:
            line.readers.remove(reader)
        last = not line.readers
    if last and not (isinstance(line, TcpPdServer) and line.owned):
        with _lines_lock:
            if _lines.get(line.key) is line:
                del _lines[line.key]
        line.stop()
