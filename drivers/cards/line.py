"""Line readers (``type: card_line``): one card or QR token per line, on serial or TCP.

The reader's bytes go through :class:`~drivers.cards.framing.LineFramer`
(terminator, STX/ETX, length limit) and
:class:`~drivers.cards.framing.LineParser` (hex, decimal, Wiegand bits or
hex, QR text), and become ``card.presented`` or ``card.read_error``
events with the reader's ``device`` id as source. Nothing a reader sends
can stop the driver: a bad line is an event, a lost connection is
``device.offline`` and a reconnect with jittered backoff.

Transports:

* ``serial``: pyserial opens the port; its file descriptor is watched by
  the event loop (POSIX), so no thread sits in a blocking read.
* ``tcp``: we connect (a serial device server, a networked reader) and
  reconnect after a loss, waiting ``reconnect_min_s`` doubling to
  ``reconnect_max_s`` with jitter.
* ``tcp_listen``: the reader connects to us. The newest connection wins
  (a reader that rebooted leaves a half-open one behind); peers outside
  ``allow`` are refused, since whoever can connect can present cards.

Debouncing: desk readers repeat a card as long as it lies on them. The same
card (or token) again within ``debounce_s`` of its *last* sighting is the
same read, so a card left on the reader is one ``card.presented`` until it
has been away for ``debounce_s``.

Commands: ``feedback`` sends ``reply_grant`` / ``reply_deny`` to the reader
(parking readers show a message); every command is answered by a
``command.result`` event (``done``, ``refused``, ``failed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from drivers.cards.events import (
    CARD_PRESENTED,
    COMMAND_FEEDBACK,
    COMMAND_RESULT,
    card_presented,
    read_error,
)
from drivers.cards.framing import Frame, FrameError, LineFramer, LineParser, LineProblem
from drivers.cards.line_config import LineReaderConfig, SerialConfig, TcpConfig
from gateway.access.cards import mask_value
from gateway.backoff import Backoff
from gateway.driver import Driver, DriverContext
from gateway.model import Command, Event

__all__ = ["Debouncer", "LineClosed", "LineReaderDriver", "LineReaderError"]

_CHUNK = 4096


class LineReaderError(Exception):
    """Base of the line reader's own errors."""


class LineClosed(LineReaderError):
    """The reader closed the connection or went quiet past ``idle_timeout_s``."""


class Debouncer:
    """Is a read a repeat: the same key within ``window_s`` of its last sighting?"""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._key: str | None = None
        self._last = 0.0

    def repeat(self, key: str, now: float) -> bool:
        same = key == self._key and now - self._last <= self.window_s
        self._key, self._last = key, now
        return same and self.window_s > 0


class _Link:
    """One open connection to the reader: a stream to read, a way to send and to close."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        send: Callable[[bytes], Awaitable[None]],
        close: Callable[[], Awaitable[None]],
        peer: str,
    ) -> None:
        self.reader, self.send, self.close, self.peer = reader, send, close, peer


def _stream_link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> _Link:
    sock = writer.get_extra_info("socket")
    if sock is not None:  # notice a vanished peer eventually even when it never sends
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def close() -> None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    return _Link(reader, send, close, peer)


async def open_tcp(cfg: TcpConfig) -> _Link:
    """Connect to a reader; OSError (TimeoutError included) when it cannot be reached."""
    async with asyncio.timeout(cfg.connect_timeout_s):
        reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
    return _stream_link(reader, writer, f"{cfg.host}:{cfg.port}")


async def open_serial(cfg: SerialConfig) -> _Link:
    """Open a serial port and watch it from the event loop; OSError when it cannot be opened."""
    import serial  # the 'cards' extra; imported here so TCP readers work without it

    def _open() -> Any:
        return serial.Serial(
            port=cfg.port,
            baudrate=cfg.baud,
            bytesize=cfg.bytesize,
            parity=cfg.parity,
            stopbits=cfg.stopbits,
            timeout=0,
            exclusive=True,
        )

    port = await asyncio.to_thread(_open)  # SerialException is an OSError
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    fd: int = port.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError as e:  # EIO: the adapter was unplugged or the pty closed
            loop.remove_reader(fd)
            reader.set_exception(e)
            return
        if not data:
            loop.remove_reader(fd)
            reader.feed_eof()
            return
        reader.feed_data(data)

    loop.add_reader(fd, readable)

    async def send(data: bytes) -> None:
        await asyncio.to_thread(port.write, data)

    async def close() -> None:
        loop.remove_reader(fd)
        await asyncio.to_thread(port.close)

    return _Link(reader, send, close, cfg.port)


class LineReaderDriver(Driver):
    config_model = LineReaderConfig
    config: LineReaderConfig

    def __init__(self, config: LineReaderConfig) -> None:
        super().__init__(config)
        f = config.framing
        self._parser = LineParser(
            config.format, qr=config.qr, prefix_strip=f.prefix_strip, wiegand37=config.wiegand37
        )
        self._debounce = Debouncer(config.debounce_s)
        self._link: _Link | None = None
        self.connections = 0  # successful connections so far (for tests and stats)

    def _framer(self) -> LineFramer:
        f = self.config.framing
        return LineFramer(terminator=f.terminator_bytes, stx=f.stx, etx=f.etx, max_line=f.max_line)

    async def run(self, ctx: DriverContext) -> None:
        transport = self._listen(ctx) if self.config.transport == "tcp_listen" else self._dial(ctx)
        tasks = [
            asyncio.create_task(transport, name=f"{self.config.id}:transport"),
            asyncio.create_task(self._commands(ctx), name=f"{self.config.id}:commands"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a bug: let the supervisor restart the driver
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            link, self._link = self._link, None
            if link is not None:
                await link.close()

    # -- transports ------------------------------------------------------------
    async def _dial(self, ctx: DriverContext) -> None:
        """serial / tcp: open, read until it breaks, report, wait, again."""
        cfg = self.config
        backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s)
        if cfg.serial is not None:
            where = cfg.serial.port
        else:
            assert cfg.tcp is not None
            where = f"{cfg.tcp.host}:{cfg.tcp.port}"
        while True:
            reason = f"{where}: connection closed"
            try:
                if cfg.serial is not None:
                    link = await open_serial(cfg.serial)
                else:
                    assert cfg.tcp is not None
                    link = await open_tcp(cfg.tcp)
            except OSError as e:
                reason = f"cannot open {where}: {e or type(e).__name__}"
            else:
                self._link = link
                self.connections += 1
                backoff.reset()
                ctx.log.info("reader %s connected on %s", cfg.device, where)
                await ctx.health.device_online(cfg.device, driver=cfg.id)
                try:
                    await self._pump(ctx, link)
                except (OSError, LineClosed) as e:
                    reason = f"{where}: {e or type(e).__name__}"
                finally:
                    self._link = None
                    await link.close()
            await ctx.health.device_offline(cfg.device, reason, driver=cfg.id)
            await ctx.clock.sleep(backoff.next())

    async def _listen(self, ctx: DriverContext) -> None:
        """tcp_listen: serve until cancelled; each reader connection is pumped by its handler."""
        cfg = self.config
        listen = cfg.tcp_listen
        assert listen is not None
        handlers: set[asyncio.Task[Any]] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await self._serve(ctx, reader, writer)
            finally:
                handlers.discard(task)

        if not listen.allow:
            ctx.log.warning(
                "reader %s: tcp_listen has no 'allow' list; anyone reaching %s:%s can present "
                "cards",
                cfg.device,
                listen.host,
                listen.port,
            )
        backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s)
        while True:
            try:
                server = await asyncio.start_server(accept, listen.host, listen.port)
                break
            except OSError as e:  # the port is taken, the address is not ours
                reason = f"cannot listen on {listen.host}:{listen.port}: {e}"
                await ctx.health.device_offline(cfg.device, reason, driver=cfg.id)
                await ctx.clock.sleep(backoff.next())
        try:
            await ctx.clock.sleep(listen.offline_after_s)
            if self.connections == 0:
                await ctx.health.device_offline(
                    cfg.device,
                    f"no reader has connected to {listen.host}:{listen.port}",
                    driver=cfg.id,
                )
            await asyncio.Event().wait()  # serve until cancelled
        finally:
            server.close()
            for task in list(handlers):
                task.cancel()
            for task in list(handlers):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _serve(
        self, ctx: DriverContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        cfg = self.config
        assert cfg.tcp_listen is not None
        peername = writer.get_extra_info("peername")
        addr = str(peername[0]) if peername else "?"
        if not cfg.tcp_listen.allows(addr):
            ctx.log.warning(
                "reader %s: refused a connection from %s (not allowed)", cfg.device, addr
            )
            writer.close()
            return
        link = _stream_link(reader, writer, addr)
        old, self._link = self._link, link
        if old is not None:
            ctx.log.info(
                "reader %s: new connection from %s replaces %s", cfg.device, addr, old.peer
            )
            await old.close()
        self.connections += 1
        ctx.log.info("reader %s connected from %s", cfg.device, addr)
        await ctx.health.device_online(cfg.device, driver=cfg.id)
        reason = f"{addr}: connection closed"
        try:
            await self._pump(ctx, link)
        except (OSError, LineClosed) as e:
            reason = f"{addr}: {e or type(e).__name__}"
        finally:
            await link.close()
            current = self._link is link  # not replaced by a newer connection
            if current:
                self._link = None
        if current:  # not reached when the driver is stopping
            await ctx.health.device_offline(cfg.device, reason, driver=cfg.id)

    # -- reading -----------------------------------------------------------------
    async def _pump(self, ctx: DriverContext, link: _Link) -> None:
        framer = self._framer()
        while True:
            chunk = await self._read(ctx, link.reader)
            if not chunk:
                raise LineClosed("connection closed by the reader")
            for item in framer.feed(chunk):
                await self._handle(ctx, item)

    async def _read(self, ctx: DriverContext, reader: asyncio.StreamReader) -> bytes:
        idle = self.config.idle_timeout_s
        if idle is None:
            return await reader.read(_CHUNK)
        read = asyncio.ensure_future(reader.read(_CHUNK))
        timer = asyncio.ensure_future(ctx.clock.sleep(idle))
        try:
            await asyncio.wait((read, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (read, timer):
                if not fut.done():
                    fut.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fut
        if read.cancelled():
            raise LineClosed(f"nothing received for {idle:g} s")
        return read.result()

    async def _handle(self, ctx: DriverContext, item: Frame | FrameError) -> None:
        dev = self.config.device
        ts = ctx.clock.time_ns()
        if isinstance(item, FrameError):
            await ctx.emit(read_error(dev, ts, item.reason, raw=item.data.hex().upper()))
            return
        parsed = self._parser.parse(item.data)
        if parsed is None:
            return
        if isinstance(parsed, LineProblem):
            await ctx.emit(read_error(dev, ts, parsed.reason, bits=parsed.bits, raw=parsed.raw_hex))
            return
        if self._debounce.repeat(parsed.key, ctx.clock.monotonic()):
            return
        direction = self.config.direction
        if parsed.uid is None:
            data: dict[str, Any] = {"format": "qr", "value": parsed.value}
            if direction is not None:
                data["direction"] = direction
            ctx.log.debug("reader %s: QR token read", dev)
            await ctx.emit(Event(CARD_PRESENTED, dev, ts, data))
            return
        ctx.log.debug("reader %s: card %s", dev, mask_value(parsed.uid))
        await ctx.emit(
            card_presented(
                dev,
                ts,
                parsed.uid,
                parsed.format,
                bits=parsed.bits,
                facility=parsed.facility,
                number=parsed.number,
                direction=direction,
            )
        )

    # -- commands ----------------------------------------------------------------
    async def _commands(self, ctx: DriverContext) -> None:
        async for cmd in ctx.commands():
            result, reason = await self._execute(cmd)
            if result != "done":
                ctx.log.info("reader %s: %s %s: %s", cmd.target, cmd.action, result, reason)
            await ctx.emit(
                Event(
                    COMMAND_RESULT,
                    self.config.device,
                    ctx.clock.time_ns(),
                    {
                        "id": cmd.id,
                        "target": cmd.target,
                        "action": cmd.action,
                        "result": result,
                        "reason": reason,
                    },
                )
            )

    async def _execute(self, cmd: Command) -> tuple[str, str]:
        if cmd.action != COMMAND_FEEDBACK:
            return "refused", f"a line reader cannot '{cmd.action}' (only 'feedback')"
        which = cmd.args.get("result")
        if which not in ("grant", "deny"):
            return "refused", f"feedback result must be 'grant' or 'deny', got {which!r}"
        data = self.config.reply(which)
        if data is None:
            return "refused", f"no reply_{which} configured for this reader"
        link = self._link
        if link is None:
            return "failed", "the reader is not connected"
        try:
            await link.send(data)
        except OSError as e:
            return "failed", f"cannot send to {link.peer}: {e or type(e).__name__}"
        return "done", ""
