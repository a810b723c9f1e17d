"""card_line over TCP with real sockets on loopback: the driver as a client of a
reader (device server) that goes away and comes back, and the driver listening
for readers that connect to it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from drivers.cards.line import LineReaderDriver
from drivers.cards.line_config import LineReaderConfig
from gateway.clock import ManualClock
from gateway.model import Command
from tests.fixtures.driver_harness import Harness, running
from tests.fixtures.servers import free_port


class ReaderServer:
    """A reader's TCP port: accepts the driver, can be stopped and started again
    on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.clients: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.clients.append((r, w))

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for _, w in self.clients:
            w.close()
        self.clients.clear()
        await self._server.wait_closed()

    def send(self, data: bytes) -> None:
        self.clients[-1][1].write(data)


def tcp_config(port: int, **kw: Any) -> LineReaderConfig:
    base = {
        "type": "card_line",
        "id": "park",
        "device": "park1",
        "tcp": {"host": "127.0.0.1", "port": port},
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
    }
    return LineReaderConfig.model_validate(base | kw)


def listen_config(port: int, **kw: Any) -> LineReaderConfig:
    base = {
        "type": "card_line",
        "id": "qr",
        "device": "qr1",
        "tcp_listen": {"host": "127.0.0.1", "port": port},
    }
    return LineReaderConfig.model_validate(base | kw)


def uids(h: Harness) -> list[str]:
    return [e.data["uid"] for e in h.events("card.presented")]


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the driver's listening port, waiting for it to listen."""
    for _ in range(500):
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            await asyncio.sleep(0.01)
    raise AssertionError(f"nothing listens on {port}")


async def test_client_reconnects_after_the_reader_went_away(tmp_path: Path) -> None:
    srv = ReaderServer(free_port())
    await srv.start()
    driver = LineReaderDriver(tcp_config(srv.port, reply_grant="OPEN\r\n"))
    async with running(driver, tmp_path) as h:
        await h.until(lambda: srv.clients and h.events("device.online"), what="connected")
        srv.send(b"BC614E\r\n")
        await h.until(lambda: uids(h) == ["BC614E"], what="first card")

        await srv.stop()  # the device server reboots
        offline = await h.until(lambda: h.events("device.offline"), what="offline")
        assert offline[0].source == "park1" and "closed" in offline[0].data["reason"]
        await h.bus.publish(Command("park1", "feedback", {"result": "grant"}, id="lost"))
        failed = await h.until(lambda: h.events("command.result"), what="result")
        assert (failed[0].data["result"], failed[0].data["reason"]) == (
            "failed",
            "the reader is not connected",
        )

        await srv.start()
        await h.until(lambda: len(h.events("device.online")) == 2, what="back online")
        await h.until(lambda: srv.clients, what="reconnected")
        srv.send(b"0A1B2C3D\n")
        await h.until(lambda: uids(h) == ["BC614E", "0A1B2C3D"], what="second card")
        assert len(h.events("device.offline")) == 1
        assert driver.connections == 2
    await srv.stop()


async def test_feedback_replies_over_tcp(tmp_path: Path) -> None:
    srv = ReaderServer(free_port())
    await srv.start()
    cfg = tcp_config(srv.port, reply_grant=r"\x02OK\x03", reply_deny=r"\x02NO\x03")
    async with running(LineReaderDriver(cfg), tmp_path) as h:
        await h.until(lambda: srv.clients and h.events("device.online"), what="connected")
        reader = srv.clients[-1][0]
        await h.bus.publish(Command("park1", "feedback", {"result": "grant"}, id="a"))
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"\x02OK\x03"
        await h.bus.publish(Command("park1", "feedback", {"result": "deny"}, id="b"))
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"\x02NO\x03"
        await h.bus.publish(Command("park1", "feedback", {"result": "maybe"}, id="c"))
        results = await h.until(lambda: len(h.events("command.result")) == 3 and h.events())
        got = [(e.data["id"], e.data["result"]) for e in results if e.type == "command.result"]
        assert got == [("a", "done"), ("b", "done"), ("c", "refused")]
    await srv.stop()


async def test_silent_connection_is_dropped_after_idle_timeout(tmp_path: Path) -> None:
    clock = ManualClock()
    srv = ReaderServer(free_port())
    await srv.start()
    cfg = tcp_config(srv.port, idle_timeout_s=30, reconnect_min_s=1, reconnect_max_s=2)
    async with running(LineReaderDriver(cfg), tmp_path, clock=clock) as h:
        await h.until(lambda: srv.clients and clock.sleepers == 1, what="connected and idle")
        first_reader = srv.clients[-1][0]
        await clock.advance(31)
        offline = await h.until(lambda: h.events("device.offline"), what="offline")
        assert "nothing received for 30 s" in offline[0].data["reason"]
        assert await asyncio.wait_for(first_reader.read(), 10) == b""  # we closed it
        await h.until(lambda: clock.sleepers == 1, what="backoff")
        await clock.advance(2)
        await h.until(lambda: len(h.events("device.online")) == 2, what="reconnected")
    await srv.stop()


async def test_listen_for_a_qr_reader_that_comes_and_goes(tmp_path: Path) -> None:
    port = free_port()
    async with running(LineReaderDriver(listen_config(port, qr=True)), tmp_path) as h:
        _, w = await connect(port)
        await h.until(lambda: h.events("device.online"), what="online")
        w.write(b"V-Abc_123-")
        await w.drain()
        await asyncio.sleep(0.02)
        w.write("xyz访客\r\n".encode())
        await h.until(lambda: h.events("card.presented"), what="token")
        assert [dict(e.data) for e in h.events("card.presented")] == [
            {"format": "qr", "value": "V-Abc_123-xyz访客"}
        ]
        w.close()
        offline = await h.until(lambda: h.events("device.offline"), what="offline")
        assert offline[0].source == "qr1"

        _, w = await connect(port)
        await h.until(lambda: len(h.events("device.online")) == 2, what="online again")
        w.write(b"V-second\n")
        await h.until(lambda: len(h.events("card.presented")) == 2, what="second token")
        w.close()


async def test_newest_listen_connection_replaces_the_old_one(tmp_path: Path) -> None:
    port = free_port()
    driver = LineReaderDriver(listen_config(port, reply_deny="DENY\n"))
    async with running(driver, tmp_path) as h:
        old_r, old_w = await connect(port)
        await h.until(lambda: driver.connections == 1, what="first connection")
        new_r, new_w = await connect(port)
        await h.until(lambda: driver.connections == 2, what="second connection")
        assert await asyncio.wait_for(old_r.read(), 10) == b""  # the stale one was closed
        new_w.write(b"BC614E\r\n")
        await h.until(lambda: uids(h) == ["BC614E"], what="card on the new connection")
        await h.bus.publish(Command("qr1", "feedback", {"result": "deny"}))
        assert await asyncio.wait_for(new_r.readexactly(5), 10) == b"DENY\n"
        assert h.events("device.offline") == []  # replacing is not going offline
        for w in (old_w, new_w):
            w.close()


async def test_listen_refuses_peers_outside_allow(tmp_path: Path) -> None:
    port = free_port()
    cfg = listen_config(
        port, tcp_listen={"host": "127.0.0.1", "port": port, "allow": ["10.9.9.9/32"]}
    )
    driver = LineReaderDriver(cfg)
    async with running(driver, tmp_path) as h:
        r, w = await connect(port)
        with contextlib.suppress(ConnectionResetError):
            w.write(b"BC614E\r\n")
            assert await asyncio.wait_for(r.read(), 10) == b""
        w.close()
        assert driver.connections == 0
        assert h.events("card.presented") == [] and h.events("device.online") == []


async def test_listen_reports_a_reader_that_never_connects(tmp_path: Path) -> None:
    clock = ManualClock()
    port = free_port()
    cfg = listen_config(port, tcp_listen={"host": "127.0.0.1", "port": port, "offline_after_s": 60})
    async with running(LineReaderDriver(cfg), tmp_path, clock=clock) as h:
        await h.until(lambda: clock.sleepers == 1, what="listening")
        await clock.advance(59)
        assert h.events("device.offline") == []
        await clock.advance(2)
        offline = await h.until(lambda: h.events("device.offline"), what="offline")
        assert offline[0].data["reason"] == f"no reader has connected to 127.0.0.1:{port}"


async def test_listen_port_taken_is_offline_until_it_is_free(tmp_path: Path) -> None:
    squatter = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = squatter.sockets[0].getsockname()[1]
    cfg = listen_config(
        port,
        tcp_listen={"host": "127.0.0.1", "port": port},
        reconnect_min_s=0.05,
        reconnect_max_s=0.1,
    )
    async with running(LineReaderDriver(cfg), tmp_path) as h:
        offline = await h.until(lambda: h.events("device.offline"), what="offline")
        assert offline[0].data["reason"].startswith(f"cannot listen on 127.0.0.1:{port}")
        squatter.close()
        await squatter.wait_closed()
        _, w = await connect(port)  # retries until the driver listens
        await h.until(lambda: h.events("device.online"), what="online")
        w.close()
