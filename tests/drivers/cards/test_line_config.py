"""card_line config: what a bad block says, what a good one means, and the sample loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.cards.line import LineReaderDriver
from drivers.cards.line_config import LineReaderConfig, unescape
from gateway.config.loader import load_site
from gateway.registry import DriverRegistry

SAMPLE = Path(__file__).resolve().parents[3] / "drivers" / "cards" / "sample_line.yaml"


def config(**kw: Any) -> LineReaderConfig:
    base: dict[str, Any] = {"type": "card_line", "id": "r", "device": "desk1"}
    if not {"serial", "tcp", "tcp_listen"} & kw.keys():
        base["tcp"] = {"host": "127.0.0.1", "port": 4001}
    return LineReaderConfig.model_validate(base | kw)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"serial": {"port": "/dev/ttyS0"}, "tcp": {"host": "h", "port": 1}}, "exactly one of"),
        ({"tcp_listen": None, "tcp": None}, "got none"),
        ({"qr": True, "format": "hex"}, "remove 'format'"),
        ({"framing": {"terminator": ""}}, "must not be empty"),
        ({"framing": {"terminator": "\\q"}}, "unknown escape"),
        ({"framing": {"prefix_strip": "ID[("}}, "not a regular expression"),
        ({"framing": {"stx": 2, "etx": 2}}, "different bytes"),
        ({"framing": {"stx": 300}}, "less than or equal to 255"),
        ({"reply_grant": "门开", "reply_encoding": "latin-1"}, "cannot be encoded"),
        ({"reply_encoding": "klingon"}, "unknown reply_encoding"),
        ({"reply_deny": ""}, "leave it out"),
        ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "must not exceed"),
        ({"serial": {"port": "/dev/ttyS0", "stopbits": 3}}, "stopbits must be"),
        ({"format": "binary"}, "hex"),
        ({"device": "desk 1"}, "pattern"),
        ({"debounce": 1}, "Extra inputs"),
    ],
)
def test_bad_blocks(block: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(**block)


def test_byte_strings_take_escapes_from_any_yaml_quoting() -> None:
    assert unescape(r"\x02OK\x03\r\n\t\0\\") == "\x02OK\x03\r\n\t\0\\"
    assert unescape("\x02OK\x03") == "\x02OK\x03"  # already real characters
    cfg = config(
        reply_grant=r"\x02OK\x03",
        reply_deny="请缴费",
        reply_encoding="gb2312",
        framing={"terminator": r"\r", "stx": "0x02", "etx": "\x03"},
    )
    assert cfg.reply("grant") == b"\x02OK\x03"
    assert cfg.reply("deny") == "请缴费".encode("gb2312")
    assert cfg.reply("other") is None
    assert cfg.framing.terminator_bytes == b"\r"
    assert (cfg.framing.stx, cfg.framing.etx) == (2, 3)


def test_defaults_and_devices() -> None:
    cfg = config()
    assert cfg.transport == "tcp"
    assert cfg.format == "hex" and cfg.debounce_s == 1.0
    assert cfg.framing.terminator_bytes == b"\r\n" and cfg.framing.max_line == 256
    assert list(cfg.devices()) == ["desk1"]
    assert config(qr=True).qr


def test_listen_allow_list() -> None:
    cfg = config(tcp_listen={"port": 7001, "allow": ["10.1.2.0/24", "::1/128"]})
    listen = cfg.tcp_listen
    assert listen is not None
    assert listen.allows("10.1.2.51") and listen.allows("::1")
    assert not listen.allows("10.1.3.1") and not listen.allows("garbage")
    open_to_all = config(tcp_listen={"port": 7001}).tcp_listen
    assert open_to_all is not None and open_to_all.allows("192.0.2.1")


def test_sample_loads_as_part_of_a_site(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        f"version: 1\nsite: {{id: demo-estate}}\ninclude: [{SAMPLE}]\n"
        "devices:\n  - {id: desk1, kind: card_reader}\n"
        "  - {id: car_in_reader, kind: card_reader}\n"
        "  - {id: turnstile_qr, kind: card_reader}\n"
    )
    loaded = load_site(site, registry=DriverRegistry(drivers={"card_line": LineReaderDriver}))
    drivers = loaded.config.drivers
    assert [d.type for d in drivers] == ["card_line"] * 3
    desk, parking, qr = drivers
    assert isinstance(desk, LineReaderConfig) and desk.transport == "serial"
    assert isinstance(parking, LineReaderConfig) and parking.reply("grant") == b"\x02OK\x03"
    assert (parking.framing.stx, parking.framing.etx) == (2, 3)
    assert isinstance(qr, LineReaderConfig) and qr.qr and qr.transport == "tcp_listen"
