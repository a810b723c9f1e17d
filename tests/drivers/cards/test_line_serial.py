"""card_line on a real serial line: a socat pty pair, the driver on one end and
the test playing the reader on the other with pyserial."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import serial

from drivers.cards.line import LineReaderDriver
from drivers.cards.line_config import LineReaderConfig
from drivers.cards.wiegand import encode_wiegand, format_bitstring
from gateway.clock import Clock, ManualClock
from gateway.model import Command, Event
from tests.fixtures.driver_harness import Harness, running
from tests.fixtures.serial import SOCAT_MISSING, socat_pty_pair


@pytest.fixture
def ptys(tmp_path: Path) -> Iterator[tuple[str, str]]:
    if shutil.which("socat") is None:
        pytest.skip(SOCAT_MISSING)
    with socat_pty_pair(tmp_path) as ends:
        yield ends


@asynccontextmanager
async def reader_on(
    ptys: tuple[str, str], tmp_path: Path, clock: Clock | None = None, **kw: Any
) -> AsyncIterator[tuple[Harness, serial.Serial]]:
    """The driver on pty end a (online), the test's 'reader' on end b."""
    cfg = LineReaderConfig.model_validate(
        {"type": "card_line", "id": "desk", "device": "desk1", "serial": {"port": ptys[0]}} | kw
    )
    peer = serial.Serial(ptys[1], 9600, timeout=5)
    try:
        async with running(LineReaderDriver(cfg), tmp_path / "data", clock=clock) as h:
            await h.until(lambda: h.events("device.online"), what="device.online")
            yield h, peer
    finally:
        peer.close()


def cards(h: Harness) -> list[dict[str, Any]]:
    return [dict(e.data) for e in h.events("card.presented")]


def errors(h: Harness) -> list[dict[str, Any]]:
    return [dict(e.data) for e in h.events("card.read_error")]


async def test_hex_reads_coalesced_in_one_write(ptys: tuple[str, str], tmp_path: Path) -> None:
    async with reader_on(ptys, tmp_path) as (h, peer):
        peer.write(b"0A1B2C3D\r\nID:00bc614e\r\n00:bc:61:4e\r\n")  # three reads, one write
        got = await h.until(lambda: len(cards(h)) == 2 and cards(h), what="two cards")
        assert got == [{"uid": "0A1B2C3D", "format": "line"}, {"uid": "BC614E", "format": "line"}]
        assert all(e.source == "desk1" for e in h.events("card.presented"))
        assert errors(h) == [{"reason": "format", "bits": 0, "raw": "49443A3030626336313465"}]


async def test_decimal_reads_split_into_pieces(ptys: tuple[str, str], tmp_path: Path) -> None:
    async with reader_on(ptys, tmp_path, format="decimal", direction="out") as (h, peer):
        for piece in (b"123", b"45", b"678\r", b"\n00", b"42\n"):
            peer.write(piece)
            peer.flush()
            await asyncio.sleep(0.02)  # let each piece arrive on its own
        got = await h.until(lambda: len(cards(h)) == 2 and cards(h), what="two cards")
        assert got == [
            {"uid": "BC614E", "format": "line", "direction": "out"},
            {"uid": "2A", "format": "line", "direction": "out"},
        ]


async def test_wiegand_bits_good_and_bad_parity(ptys: tuple[str, str], tmp_path: Path) -> None:
    bits, data = encode_wiegand("H10301", 18, 1234)
    good = format_bitstring(bits, data)
    bad = ("1" if good[0] == "0" else "0") + good[1:]
    async with reader_on(ptys, tmp_path, format="wiegand_bits") as (h, peer):
        peer.write(f"{bad}\n{good}\n".encode())
        await h.until(lambda: cards(h), what="a card")
        assert cards(h) == [
            {"uid": "1204D2", "format": "wiegand26", "bits": 26, "facility": 18, "number": 1234}
        ]
        raw = bad.encode().hex().upper()
        assert errors(h) == [{"reason": "parity", "bits": 26, "raw": raw}]


async def test_stx_etx_frames_of_wiegand_hex(ptys: tuple[str, str], tmp_path: Path) -> None:
    framing = {"stx": 2, "etx": 3}
    async with reader_on(ptys, tmp_path, format="wiegand_hex", framing=framing) as (h, peer):
        peer.write(b"\r\n\x0226:0C6")
        peer.flush()
        await asyncio.sleep(0.02)
        peer.write(b"07CF\x03\r\n\x0226:0C607CE\x03")  # the second has bad parity
        await h.until(lambda: cards(h) and errors(h), what="a card and an error")
        assert cards(h) == [
            {"uid": "6303E7", "format": "wiegand26", "bits": 26, "facility": 99, "number": 999}
        ]
        assert [e["reason"] for e in errors(h)] == ["parity"]


async def test_too_long_a_line_then_a_good_one(ptys: tuple[str, str], tmp_path: Path) -> None:
    async with reader_on(ptys, tmp_path, framing={"max_line": 16}) as (h, peer):
        peer.write(b"A" * 40)
        peer.flush()
        await asyncio.sleep(0.02)
        peer.write(b"B" * 40 + b"\r\nBC614E\r\n")
        await h.until(lambda: cards(h), what="the good card")
        assert cards(h) == [{"uid": "BC614E", "format": "line"}]
        assert [e["reason"] for e in errors(h)] == ["length"]


async def test_a_card_lying_on_the_reader_is_one_read(
    ptys: tuple[str, str], tmp_path: Path
) -> None:
    clock = ManualClock()
    async with reader_on(ptys, tmp_path, clock, debounce_s=2) as (h, peer):
        sent = 0

        async def send(uid: bytes) -> list[str]:
            # a garbage line after it: its read_error proves the card line was handled
            nonlocal sent
            peer.write(uid + b"\r\nZZ\r\n")
            sent += 1
            await h.until(lambda: len(h.events("card.read_error")) == sent, what="marker")
            return [e.data["uid"] for e in h.events("card.presented")]

        assert await send(b"BC614E") == ["BC614E"]
        for _ in range(5):  # repeated every 1.5 s: each within 2 s of the one before
            await clock.advance(1.5)
            assert await send(b"BC614E") == ["BC614E"]
        await clock.advance(2.5)  # the card was lifted, then put back
        assert await send(b"BC614E") == ["BC614E"] * 2
        assert await send(b"0A1B2C3D") == ["BC614E"] * 2 + ["0A1B2C3D"]  # another card at once
        assert await send(b"BC614E") == ["BC614E"] * 2 + ["0A1B2C3D", "BC614E"]


async def test_feedback_bytes_reach_the_reader(ptys: tuple[str, str], tmp_path: Path) -> None:
    kw: dict[str, Any] = {"reply_grant": r"\x02OK\x03", "reply_deny": "NO\r\n"}
    async with reader_on(ptys, tmp_path, **kw) as (h, peer):
        await h.bus.publish(Command("desk1", "feedback", {"result": "deny"}, id="c1"))
        assert await asyncio.to_thread(peer.read, 4) == b"NO\r\n"
        await h.bus.publish(Command("desk1", "feedback", {"result": "grant"}, id="c2"))
        assert await asyncio.to_thread(peer.read, 4) == b"\x02OK\x03"
        await h.bus.publish(Command("desk1", "pulse", {"output": 0, "seconds": 1}, id="c3"))
        results = await h.until(
            lambda: len(h.events("command.result")) == 3 and h.events("command.result")
        )
        assert [(e.data["id"], e.data["result"]) for e in results] == [
            ("c1", "done"),
            ("c2", "done"),
            ("c3", "refused"),
        ]


async def test_an_unopenable_port_is_offline_and_retried(tmp_path: Path) -> None:
    cfg = LineReaderConfig.model_validate(
        {
            "type": "card_line",
            "id": "desk",
            "device": "desk1",
            "serial": {"port": str(tmp_path / "no-such-tty")},
            "reconnect_min_s": 0.01,
            "reconnect_max_s": 0.02,
        }
    )
    driver = LineReaderDriver(cfg)
    async with running(driver, tmp_path / "data") as h:
        offline: list[Event] = await h.until(lambda: h.events("device.offline"))
        assert "no-such-tty" in offline[0].data["reason"]
        assert offline[0].source == "desk1"
        await h.until(lambda: h.ctx.health.devices["desk1"].failures >= 3, what="retries")
        assert driver.connections == 0
