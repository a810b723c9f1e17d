"""The OSDP driver against real libosdp readers (simulator.py) on a socat pty pair and over TCP.

Each test runs the driver in a real runtime context (tests/fixtures/driver_harness.py)
and plays the readers with :class:`~drivers.cards.osdp.simulator.SimulatedReader`:
cards, keypad, tamper and power in; LED, buzzer and output commands out, seen by
the reader itself. No timing assertions: only that things happen (latency is
measured in bench/).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import osdp_sys
import pytest

from drivers.cards.osdp.config import OsdpConfigError, OsdpDriverConfig
from drivers.cards.osdp.driver import OsdpDriver
from drivers.cards.osdp.simulator import SimulatedReader, TcpPdServer
from gateway.model import Command
from tests.fixtures.driver_harness import Harness, running
from tests.fixtures.osdp import (
    OSDP_KEY,
    OSDP_KEY_ENV,
    OTHER_KEY,
    OsdpBus,
    osdp_serial_bus,
    osdp_tcp_bus,
)
from tests.fixtures.serial import SOCAT_MISSING

FAST: dict[str, Any] = {"silence_s": 0.5, "reprobe_max_s": 1.0, "reconnect_max_s": 1.0}


@pytest.fixture
def serial_bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OsdpBus]:
    if shutil.which("socat") is None:
        pytest.skip(SOCAT_MISSING)
    monkeypatch.setenv(OSDP_KEY_ENV, OSDP_KEY.hex())
    with osdp_serial_bus(tmp_path) as bus:
        yield bus


@pytest.fixture
def tcp_bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[OsdpBus]:
    monkeypatch.setenv(OSDP_KEY_ENV, OSDP_KEY.hex())
    with osdp_tcp_bus() as bus:
        yield bus


@asynccontextmanager
async def driver_on(cfg: OsdpDriverConfig, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running(OsdpDriver(cfg), tmp_path / "data") as h:
        yield h


def of(h: Harness, type_: str, source: str | None = None) -> list[dict[str, Any]]:
    return [dict(e.data) for e in h.events(type_) if source in (None, e.source)]


async def online(h: Harness, device: str, count: int = 1) -> None:
    await h.until(lambda: len(of(h, "device.online", device)) >= count, what=f"{device} online")


async def offline(h: Harness, device: str, count: int = 1) -> dict[str, Any]:
    got = await h.until(
        lambda: len(of(h, "device.offline", device)) >= count and of(h, "device.offline", device),
        what=f"{device} offline",
    )
    return dict(got[count - 1])


async def command(h: Harness, target: str, action: str, **args: Any) -> dict[str, Any]:
    cid = f"c{len(h.events('command.result'))}-{action}"
    await h.bus.publish(Command(target, action, args, id=cid))
    results = await h.until(
        lambda: [r for r in of(h, "command.result") if r["id"] == cid], what=f"result of {cid}"
    )
    return dict(results[0])


async def test_cards_keypad_and_bad_parity(serial_bus: OsdpBus, tmp_path: Path) -> None:
    sim = serial_bus.reader(101)
    async with driver_on(
        serial_bus.config([{"device": "door1-in", "address": 101}]), tmp_path
    ) as h:
        await online(h, "door1-in")
        assert of(h, "reader.secure_channel") == [{"active": True, "install_mode": False}]
        sim.present_card("1204D2")
        sim.present_card("12345678", bits=34)
        sim.present_raw(26, b"\x00\x00\x00\x00")  # leading even parity fine, odd parity wrong
        sim.key_in("1234#")
        await h.until(lambda: len(of(h, "card.presented")) == 3, what="two cards and a PIN")
        first, second, pin = of(h, "card.presented")
        assert first == {
            "uid": "1204D2",
            "format": "wiegand26",
            "bits": 26,
            "facility": 18,
            "number": 1234,
            "reader_no": 0,
        }
        assert (second["uid"], second["format"]) == ("12345678", "wiegand34")
        assert pin == {"format": "pin", "value": "1234", "reader_no": 0}
        await h.until(lambda: of(h, "card.read_error"), what="read error")
        assert of(h, "card.read_error") == [{"reason": "parity", "bits": 26, "raw": "00000000"}]
        assert {e.source for e in h.events("card.presented")} == {"door1-in"}


@pytest.mark.parametrize("result", ["grant", "deny"])
async def test_feedback_and_pulse_reach_the_reader(
    serial_bus: OsdpBus, tmp_path: Path, result: str
) -> None:
    sim = serial_bus.reader(5)
    async with driver_on(serial_bus.config([{"device": "gate", "address": 5}]), tmp_path) as h:
        await online(h, "gate")
        done = await command(h, "gate", "feedback", result=result)
        assert (done["result"], done["reason"], done["target"]) == ("done", "", "gate")
        led, buzzer = sim.wait_command("led", 2), sim.wait_command("buzzer", 2)
        green = result == "grant"
        want = osdp_sys.LED_COLOR_GREEN if green else osdp_sys.LED_COLOR_RED
        assert (led["on_color"], led["control_code"], led["timer_count"]) == (want, 2, 30)
        assert buzzer["rep_count"] == (1 if green else 3)
        if green:
            pulse = await command(h, "gate", "pulse", output=1, seconds=2.5)
            assert pulse["result"] == "done"
            out = sim.wait_command("output", 2)
            assert (out["output_no"], out["control_code"], out["timer_count"]) == (1, 5, 25)
        refused = await command(h, "gate", "pulse", seconds=-1)
        assert refused["result"] == "refused" and refused["reason"].startswith("bad_args")
        unknown = await command(h, "gate", "open")
        assert unknown["result"] == "refused" and unknown["reason"].startswith("unknown_action")
        if not green:
            assert sim.commands("output") == []


async def test_tamper_and_power(tcp_bus: OsdpBus, tmp_path: Path) -> None:
    sim = tcp_bus.reader(3)
    async with driver_on(tcp_bus.config([{"device": "r3", "address": 3}]), tmp_path) as h:
        await online(h, "r3")
        sim.tamper(True)
        await h.until(lambda: h.events("reader.tamper"), what="tamper")
        sim.tamper(False)
        sim.power(False)
        await h.until(lambda: h.events("reader.power_fail"), what="power fail")
        sim.power(True)
        await h.until(lambda: h.events("reader.power_ok"), what="power ok")
        kinds = [e.type for e in h.events() if e.type.startswith("reader.") and e.source == "r3"]
        assert kinds == [
            "reader.secure_channel",
            "reader.tamper",
            "reader.tamper_cleared",
            "reader.power_fail",
            "reader.power_ok",
        ]


async def test_reader_offline_and_back(serial_bus: OsdpBus, tmp_path: Path) -> None:
    sim = serial_bus.reader(9)
    cfg = serial_bus.config([{"device": "r9", "address": 9}], **FAST)
    async with driver_on(cfg, tmp_path) as h:
        await online(h, "r9")
        sim.stop()
        down = await offline(h, "r9")
        assert down["reason"] == "no answer from the reader"
        failed = await command(h, "r9", "feedback", result="grant")
        assert (failed["result"], failed["reason"]) == ("failed", "offline")
        sim = serial_bus.restart(sim)
        await online(h, "r9", count=2)
        assert (await command(h, "r9", "feedback", result="deny"))["result"] == "done"
        assert sim.wait_command("led", 2)["on_color"] == osdp_sys.LED_COLOR_RED
        assert len(sim.commands("led")) == 1  # only the deny: the failed grant never went out


async def test_back_within_seconds_after_libosdp_gave_up(
    serial_bus: OsdpBus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="drivers.cards.osdp.libosdp")
    sim = serial_bus.reader(42)
    cfg = serial_bus.config([{"device": "r42", "address": 42}], **FAST)
    async with driver_on(cfg, tmp_path) as h:
        await online(h, "r42")
        sim.stop()
        await offline(h, "r42")  # we tell after silence_s; libosdp probes ~8 s, then gives up
        await h.until(
            lambda: [r for r in caplog.records if "PD-42: Going offline for 300" in r.getMessage()],
            timeout=15,
            what="libosdp giving up on the reader",
        )
        sim = serial_bus.restart(sim)
        await h.until(
            lambda: len(of(h, "device.online", "r42")) == 2,
            timeout=5,  # not 300 s: the driver re-enables it for libosdp
            what="r42 online again",
        )


async def test_tcp_connection_lost_and_back(tcp_bus: OsdpBus, tmp_path: Path) -> None:
    sim = tcp_bus.reader(1)
    cfg = tcp_bus.config([{"device": "r1", "address": 1}], **FAST)
    async with driver_on(cfg, tmp_path) as h:
        await online(h, "r1")
        sim.present_card("ABCDEF")
        await h.until(lambda: of(h, "card.presented"), what="card over TCP")
        assert tcp_bus.server is not None
        port = tcp_bus.server.port
        tcp_bus.close()  # the converter loses power: the connection drops
        down = await offline(h, "r1")
        assert down["reason"].startswith("connection down")
        server = TcpPdServer("127.0.0.1", port)
        server.start()
        back = SimulatedReader(1, scbk=OSDP_KEY, tcp_listen=server.address)
        back.start()
        try:
            await online(h, "r1", count=2)
            back.present_card("123456")
            await h.until(lambda: len(of(h, "card.presented")) == 2, what="card after reconnect")
        finally:
            back.stop()
            server.stop()


async def test_wrong_key_refused_then_rekeyed(serial_bus: OsdpBus, tmp_path: Path) -> None:
    sim = serial_bus.reader(7, scbk=OTHER_KEY)
    cfg = serial_bus.config([{"device": "r7", "address": 7}], **FAST)
    async with driver_on(cfg, tmp_path) as h:
        down = await offline(h, "r7")
        assert down["reason"].startswith("secure channel refused")
        assert of(h, "reader.secure_channel", "r7") == [
            {"active": False, "install_mode": False, "reason": "refused"}
        ]
        with pytest.raises(TimeoutError):
            sim.wait_command("led", 0.01)
        assert not sim.sc_active
        # the reader gets the right key (a technician re-keys it): back within seconds,
        # although libosdp itself would wait 300 s after the failed handshake
        sim = serial_bus.restart(sim, scbk=OSDP_KEY)
        await online(h, "r7")
        sim.present_card("1204D2")
        await h.until(lambda: of(h, "card.presented"), what="card after re-keying")
        assert of(h, "reader.secure_channel", "r7")[-1] == {"active": True, "install_mode": False}


async def test_cards_from_a_wrong_key_reader_are_not_accepted(
    serial_bus: OsdpBus, tmp_path: Path
) -> None:
    sim = serial_bus.reader(8, scbk=OTHER_KEY)
    async with driver_on(serial_bus.config([{"device": "r8", "address": 8}]), tmp_path) as h:
        await offline(h, "r8")
        sim.present_card("1204D2")
        sim.key_in("99#")
        with pytest.raises(AssertionError, match="timed out"):
            await h.until(lambda: of(h, "card.presented"), timeout=1.0, what="no card")


async def test_install_mode_only_when_asked(serial_bus: OsdpBus, tmp_path: Path) -> None:
    factory = serial_bus.reader(11, scbk=None)  # a factory-default reader (SCBK-D)
    strict = serial_bus.config([{"device": "r11", "address": 11}], **FAST)
    async with driver_on(strict, tmp_path) as h:
        down = await offline(h, "r11")
        assert down["reason"].startswith("secure channel refused")
        assert factory.scbk is None and not factory.commands("keyset")
    install = serial_bus.config([{"device": "r11", "address": 11, "install_mode": True}], **FAST)
    async with driver_on(install, tmp_path) as h:
        await online(h, "r11")
        await h.until(
            lambda: [
                d for d in of(h, "reader.secure_channel") if d["active"] and d["install_mode"]
            ],
            what="secure channel in install mode",
        )
        assert factory.scbk == OSDP_KEY  # keyed over SCBK-D
        assert factory.wait_command("keyset", 2)["data"] == OSDP_KEY
    async with driver_on(strict, tmp_path) as h:  # install mode off again: the key works
        await online(h, "r11")
        assert factory.sc_active


async def test_install_mode_never_accepts_cards_in_clear_text(
    tcp_bus: OsdpBus, tmp_path: Path
) -> None:
    sim = tcp_bus.reader(12, scbk=OTHER_KEY)  # keyed by someone else, not in install mode
    cfg = tcp_bus.config([{"device": "r12", "address": 12, "install_mode": True}])
    async with driver_on(cfg, tmp_path) as h:
        await online(h, "r12")  # libosdp fell back to clear text
        assert of(h, "reader.secure_channel") == [{"active": False, "install_mode": True}]
        sim.present_card("1204D2")
        sim.tamper(True)
        await h.until(lambda: h.events("reader.tamper"), what="tamper still reported")
        assert of(h, "card.presented") == []


async def test_two_readers_on_one_line(serial_bus: OsdpBus, tmp_path: Path) -> None:
    a, b = serial_bus.reader(1), serial_bus.reader(2)
    readers = [{"device": "in", "address": 1}, {"device": "out", "address": 2}]
    async with driver_on(serial_bus.config(readers), tmp_path) as h:
        await online(h, "in")
        await online(h, "out")
        a.present_card("0A0B0C")
        b.present_card("0D0E0F")
        await h.until(lambda: len(of(h, "card.presented")) == 2, what="both cards")
        by_source = {e.source: e.data["uid"] for e in h.events("card.presented")}
        assert by_source == {"in": "0A0B0C", "out": "0D0E0F"}
        assert (await command(h, "out", "pulse", seconds=1))["result"] == "done"
        assert b.wait_command("output", 2)["timer_count"] == 10
        assert a.commands("output") == []


async def test_reader_without_secure_channel(tcp_bus: OsdpBus, tmp_path: Path) -> None:
    sim = tcp_bus.reader(4, scbk=None)
    cfg = tcp_bus.config([{"device": "r4", "address": 4, "key_env": None, "enforce_secure": False}])
    async with driver_on(cfg, tmp_path) as h:
        await online(h, "r4")
        assert of(h, "reader.secure_channel") == [{"active": False, "install_mode": False}]
        sim.present_card("1204D2")
        await h.until(lambda: of(h, "card.presented"), what="clear-text card")


async def test_missing_key_stops_the_driver(
    tcp_bus: OsdpBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(OSDP_KEY_ENV)
    driver = OsdpDriver(tcp_bus.config([{"device": "r1", "address": 1}]))
    with pytest.raises(OsdpConfigError, match=f"{OSDP_KEY_ENV} is not set"):
        await driver.run(None)  # type: ignore[arg-type]  # fails before touching the context
