"""OSDP pieces without a bus: the config's secure channel policy, key loading,
event translation (cards, PIN, tamper/power), commands, libosdp log lines,
and the simulator's Wiegand frames."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import osdp_sys
import pytest
import yaml
from pydantic import ValidationError

from drivers.cards.osdp.config import OsdpConfigError, OsdpDriverConfig, OsdpReaderConfig
from drivers.cards.osdp.liblog import parse_line
from drivers.cards.osdp.simulator import SimulatorError, wiegand_frame
from drivers.cards.osdp.translate import ReaderTranslator, led_command, output_command
from drivers.cards.wiegand import decode_wiegand, encode_wiegand
from gateway.clock import ManualClock

KEY_HEX = "303132333435363738393a3b3c3d3e3f"
SAMPLE = Path(__file__).resolve().parents[3] / "drivers" / "cards" / "osdp" / "sample.yaml"


def reader(**kw: Any) -> OsdpReaderConfig:
    return OsdpReaderConfig.model_validate({"device": "r1", "address": 1, "key_env": "K"} | kw)


def test_secure_channel_policy() -> None:
    assert reader().enforce_secure and not reader().install_mode
    assert not reader(key_env=None, enforce_secure=False).enforce_secure  # a reader without SC
    with pytest.raises(ValidationError, match="has no key_env"):
        reader(key_env=None)  # no key must be said out loud
    with pytest.raises(ValidationError, match="install_mode gives the reader the key"):
        reader(key_env=None, enforce_secure=False, install_mode=True)
    with pytest.raises(ValidationError, match="fall back to clear text"):
        reader(enforce_secure=False)
    assert reader(install_mode=True).install_mode


def test_bus_config_checks() -> None:
    base: dict[str, Any] = {"type": "osdp", "id": "b", "serial": {"port": "/dev/ttyUSB0"}}
    one = {"device": "r1", "address": 1, "key_env": "K"}
    cfg = OsdpDriverConfig.model_validate(base | {"readers": [one]})
    assert list(cfg.devices()) == ["r1"] and cfg.serial is not None and cfg.serial.baud == 9600
    with pytest.raises(ValidationError, match="exactly one of serial or tcp"):
        OsdpDriverConfig.model_validate(
            base | {"tcp": {"host": "h", "port": 4001}, "readers": [one]}
        )
    with pytest.raises(ValidationError, match="two readers at OSDP address 1"):
        OsdpDriverConfig.model_validate(base | {"readers": [one, one | {"device": "r2"}]})
    with pytest.raises(ValidationError, match="appears twice"):
        OsdpDriverConfig.model_validate(base | {"readers": [one, one | {"address": 2}]})
    with pytest.raises(ValidationError):
        OsdpDriverConfig.model_validate(base | {"readers": [one | {"key_env": "not a name"}]})


def test_sample_is_valid() -> None:
    blocks = yaml.safe_load(SAMPLE.read_text())["drivers"]
    configs = [OsdpDriverConfig.model_validate(b) for b in blocks]
    assert [d for c in configs for d in c.devices()] == [
        "lobby_in",
        "lobby_out",
        "carpark_in",
        "bikeshed_in",
    ]


def test_key_comes_from_the_environment_only() -> None:
    assert reader().key({"K": KEY_HEX}) == bytes.fromhex(KEY_HEX)
    assert reader(key_env=None, enforce_secure=False).key({}) is None
    with pytest.raises(OsdpConfigError, match="K is not set"):
        reader().key({})
    with pytest.raises(OsdpConfigError, match="32 hex characters") as err:
        reader().key({"K": "zz" + KEY_HEX[2:]})
    assert KEY_HEX[2:] not in str(err.value)  # the value is never shown


def card(data: bytes, bits: int, fmt: int = osdp_sys.CARD_FMT_RAW_WIEGAND) -> dict[str, Any]:
    return {"event": 1, "reader_no": 0, "format": fmt, "direction": 0, "length": bits, "data": data}


def test_cards_wiegand_raw_ascii_and_errors() -> None:
    t = ReaderTranslator(reader(), ManualClock(), 5.0)
    [ev] = t.translate(card(wiegand_frame("1204D2", 26), 26), 1)
    assert ev.type == "card.presented" and ev.source == "r1"
    assert dict(ev.data) == {
        "uid": "1204D2",
        "format": "wiegand26",
        "bits": 26,
        "facility": 18,
        "number": 1234,
        "reader_no": 0,
    }
    [ev] = t.translate(card(wiegand_frame("12345678", 34), 34, fmt=0), 1)  # unspecified, 34 bits
    assert ev.data["format"] == "wiegand34" and ev.data["uid"] == "12345678"
    bits, data = encode_wiegand("H10304", 1000, 123456)
    [ev] = t.translate(card(data, bits), 1)
    assert ev.data["format"] == "wiegand37" and (ev.data["facility"], ev.data["number"]) == (
        1000,
        123456,
    )
    bad = bytes([wiegand_frame("1204D2")[0] ^ 0x40]) + wiegand_frame("1204D2")[1:]
    [ev] = t.translate(card(bad, 26), 1)
    assert ev.type == "card.read_error" and ev.data["reason"] == "parity"
    assert ev.data["bits"] == 26 and ev.data["raw"] == bad.hex().upper()
    [ev] = t.translate(card(b"\xbc\x61\x4e\x00", 32, fmt=0), 1)  # a 32-bit CSN
    assert dict(ev.data) == {"uid": "BC614E00", "format": "raw", "bits": 32, "reader_no": 0}
    [ev] = t.translate(card(b"0x00bc614e", 0, fmt=osdp_sys.CARD_FMT_ASCII), 1)
    assert (ev.data["uid"], ev.data["format"]) == ("BC614E", "ascii")
    [ev] = t.translate(card(b"no card", 0, fmt=osdp_sys.CARD_FMT_ASCII), 1)
    assert ev.data["reason"] == "format"
    [ev] = t.translate(card(b"\x01", 30), 1)
    assert ev.data["reason"] == "length"


def keys(text: str) -> dict[str, Any]:
    return {"event": osdp_sys.EVENT_KEYPRESS, "reader_no": 0, "data": text.encode("latin-1")}


async def test_pin_until_hash_with_timeout_and_clear() -> None:
    clock = ManualClock()
    t = ReaderTranslator(reader(), clock, 5.0)
    assert t.translate(keys("12"), 1) == []
    await clock.advance(2)  # within the timeout: the PIN goes on
    [ev] = t.translate(keys("34#"), 2)
    assert dict(ev.data) == {"format": "pin", "value": "1234", "reader_no": 0}
    t.translate(keys("99"), 3)
    await clock.advance(6)  # too long: the partial PIN is forgotten
    [ev] = t.translate(keys("56\r"), 4)  # OSDP's '#' is 0x0D
    assert ev.data["value"] == "56"
    assert t.translate(keys("77*8#"), 5)[0].data["value"] == "8"  # '*' clears
    assert t.translate(keys("#"), 6) == []  # nothing typed: nothing sent
    [err] = t.translate(keys("1" * 17), 7)
    assert err.type == "card.read_error" and err.data["reason"] == "length"


def status(tamper: int, power: int, kind: int = osdp_sys.STATUS_REPORT_LOCAL) -> dict[str, Any]:
    return {"event": osdp_sys.EVENT_STATUS, "type": kind, "report": bytes([tamper, power])}


def test_tamper_and_power_changes_only() -> None:
    t = ReaderTranslator(reader(), ManualClock(), 5.0)
    assert t.translate(status(0, 0), 1) == []  # normal at start: nothing to say
    assert [e.type for e in t.translate(status(1, 0), 2)] == ["reader.tamper"]
    assert t.translate(status(1, 0), 3) == []  # repeated: no second alarm
    assert [e.type for e in t.translate(status(0, 1), 4)] == [
        "reader.tamper_cleared",
        "reader.power_fail",
    ]
    assert [e.type for e in t.translate(status(0, 0), 5)] == ["reader.power_ok"]
    assert t.translate(status(1, 1, osdp_sys.STATUS_REPORT_INPUT), 6) == []


def test_commands() -> None:
    led = led_command(True, 3)
    assert (led["on_color"], led["control_code"], led["timer_count"]) == (
        osdp_sys.LED_COLOR_GREEN,
        2,
        30,
    )
    assert led_command(False, 0.01)["on_color"] == osdp_sys.LED_COLOR_RED
    assert led_command(False, 0.01)["timer_count"] == 1
    out = output_command(1, 2.5)
    assert (out["output_no"], out["control_code"], out["timer_count"]) == (1, 5, 25)


def test_libosdp_log_lines() -> None:
    line = parse_line(
        "OSDP: CP: PD-101: 2026-11-21T10:49:41Z   osdp_cp.c:946  [ERROR] Response timeout\n"
    )
    assert (line.role, line.address, line.level, line.message, line.source) == (
        "CP",
        101,
        logging.WARNING,
        "Response timeout",
        "osdp_cp.c:946",
    )
    pd = parse_line("OSDP: PD-7: 2026-11-21T10:49:41Z   osdp_pd.c:1289 [WARN ] SCBK not provided.")
    assert (pd.role, pd.address, pd.level) == ("PD", 7, logging.INFO)
    odd = parse_line("something else")
    assert (odd.role, odd.address, odd.message) == ("", None, "something else")


def test_simulator_frames_have_good_parity() -> None:
    for uid, bits in (("1204D2", 26), ("FFFFFFFF", 34), ("7FFFFFFFF", 37), ("0", 26)):
        got = decode_wiegand(bits, wiegand_frame(uid, bits))
        assert got.uid == ("00" if uid == "0" else uid.zfill(len(uid) + len(uid) % 2))
    with pytest.raises(SimulatorError, match="does not fit"):
        wiegand_frame("1FFFFFF", 26)
    with pytest.raises(SimulatorError, match="use 26, 34 or 37"):
        wiegand_frame("12", 48)
