"""Config model of line readers (``type: card_line``): one reader that sends one read per line.

Desk enrolment readers, parking readers on RS-232/485 and serial Wiegand
converters print each card as a line of text. The reader is reached on a
serial port, as a TCP client of a serial device server (``tcp``), or it
connects to us (``tcp_listen``). Everything that can be wrong (escapes,
the prefix regex, the reply encoding, which transport) is checked at load.

Byte strings (``framing.terminator``, ``reply_grant``, ``reply_deny``) are
text with escapes ``\\r \\n \\t \\0 \\\\ \\xNN``, so they read the same in a
single-quoted, double-quoted or plain YAML scalar. Reply text is encoded
with ``reply_encoding`` (``gb2312`` for Chinese parking displays); with the
default ``latin-1`` ``\\xNN`` is the byte NN.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from drivers.cards.wiegand import Wiegand37
from gateway.driver import DriverConfig, StrictModel

__all__ = [
    "FramingConfig",
    "LineFormat",
    "LineReaderConfig",
    "SerialConfig",
    "TcpConfig",
    "TcpListenConfig",
    "unescape",
]

LineFormat = Literal["hex", "decimal", "wiegand_bits", "wiegand_hex"]

_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.|$)", re.DOTALL)
_SIMPLE = {"r": "\r", "n": "\n", "t": "\t", "0": "\0", "\\": "\\"}


def unescape(text: str) -> str:
    """``'\\x02OK\\r\\n'`` -> ``'\\x02OK\\r\\n'`` with real control characters.

    Raises ValueError naming the escape when it is not one of
    ``\\r \\n \\t \\0 \\\\ \\xNN``.
    """

    def one(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc.startswith("x") and len(esc) == 3:
            return chr(int(esc[1:], 16))
        if esc in _SIMPLE:
            return _SIMPLE[esc]
        raise ValueError(f"unknown escape '\\{esc}' in {text!r}; use \\r \\n \\t \\0 \\\\ or \\xNN")

    return _ESCAPE.sub(one, text)


class SerialConfig(StrictModel):
    """An RS-232/485 port (a USB adapter, a built-in UART, a pty)."""

    port: str = Field(min_length=1, description="Device path, e.g. /dev/ttyUSB0.")
    baud: int = Field(9600, gt=0, description="Baud rate (9600 for most desk readers).")
    bytesize: Literal[5, 6, 7, 8] = Field(8, description="Data bits.")
    parity: Literal["N", "E", "O", "M", "S"] = Field("N", description="N, E, O, M or S.")
    stopbits: float = Field(1, description="Stop bits: 1, 1.5 or 2.")

    @field_validator("stopbits")
    @classmethod
    def _stopbits(cls, v: float) -> float:
        if v not in (1, 1.5, 2):
            raise ValueError(f"stopbits must be 1, 1.5 or 2, got {v}")
        return v


class TcpConfig(StrictModel):
    """A reader or serial device server we connect to (its TCP server port)."""

    host: str = Field(min_length=1, description="Host name or address of the reader.")
    port: int = Field(ge=1, le=65535, description="Its TCP port (often 4001 or 8899).")
    connect_timeout_s: float = Field(5.0, gt=0, description="Give up a connect attempt after.")


class TcpListenConfig(StrictModel):
    """We listen; the reader connects to us (TCP client mode of the reader)."""

    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(ge=1, le=65535, description="Port to listen on.")
    allow: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description="Addresses or networks the reader may connect from (e.g. 10.1.2.30/32); "
        "empty: anyone who reaches the port can present cards, so set it.",
    )
    offline_after_s: float = Field(
        60.0,
        gt=0,
        description="Report the reader offline when it has not connected this long after start.",
    )

    def allows(self, address: str) -> bool:
        """Whether a peer address may connect (any when ``allow`` is empty)."""
        if not self.allow:
            return True
        try:
            ip = ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in self.allow)


class FramingConfig(StrictModel):
    """How the byte stream is cut into reads."""

    terminator: str = Field(
        r"\r\n",
        description="End of a line (escapes allowed). Any mix of CR and LF (the default "
        "'\\r\\n', '\\r', '\\n') ends a line at either character, so a reader that "
        "sends only one of them works too; empty lines are skipped.",
    )
    stx: int | None = Field(
        None,
        ge=0,
        le=255,
        description="Start byte of a frame (e.g. 0x02); bytes before it are dropped.",
    )
    etx: int | None = Field(
        None, ge=0, le=255, description="End byte of a frame (e.g. 0x03); replaces terminator."
    )
    prefix_strip: str | None = Field(
        None,
        description="Regular expression removed from the start of each line (e.g. '^ID:' or "
        "'[A-Z]+='), after surrounding whitespace.",
    )
    max_line: int = Field(
        256,
        ge=4,
        le=65536,
        description="Longest line in bytes; a longer one is a read error (length) and the "
        "stream resynchronises at the next end of line.",
    )

    @field_validator("stx", "etx", mode="before")
    @classmethod
    def _byte(cls, v: Any) -> Any:
        if isinstance(v, str):
            text = v.strip()
            if text.lower().startswith("0x"):
                return int(text, 16)
            char = unescape(text)
            if len(char) == 1 and ord(char) < 256:
                return ord(char)
        return v

    @field_validator("terminator")
    @classmethod
    def _terminator(cls, v: str) -> str:
        if not unescape(v):
            raise ValueError("terminator must not be empty")
        unescape(v).encode("latin-1")
        return v

    @field_validator("prefix_strip")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"prefix_strip is not a regular expression: {e}") from e
        return v

    @model_validator(mode="after")
    def _markers(self) -> FramingConfig:
        if self.stx is not None and self.stx == self.etx:
            raise ValueError("stx and etx must be different bytes")
        return self

    @property
    def terminator_bytes(self) -> bytes:
        return unescape(self.terminator).encode("latin-1")


class LineReaderConfig(DriverConfig):
    type: Literal["card_line"] = Field(
        description="A reader that sends one card (or QR token) per line, on serial or TCP."
    )
    device: str = Field(
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The reader's device id (kind card_reader): the source of its events.",
    )
    serial: SerialConfig | None = Field(None, description="The reader is on this serial port.")
    tcp: TcpConfig | None = Field(None, description="Connect to the reader (or device server).")
    tcp_listen: TcpListenConfig | None = Field(
        None, description="Listen; the reader connects to us."
    )
    format: LineFormat = Field(
        "hex",
        description="What a line holds: hex (UID, separators and 0x allowed), decimal (UID), "
        "wiegand_bits ('0101...' with parity) or wiegand_hex ('26:0C607CF', bits and frame).",
    )
    wiegand37: Wiegand37 = Field(
        "H10304",
        description="37-bit cards are H10304 (facility 16 + card 19 bits) or H10302 (card 35 "
        "bits); the UID is the same, only facility/number differ.",
    )
    qr: bool = Field(
        False,
        description="The line is a QR code's text: sent as format qr with the text as value "
        "(leave format unset).",
    )
    framing: FramingConfig = Field(
        default_factory=FramingConfig, description="Line ends, STX/ETX, prefix, length limit."
    )
    debounce_s: float = Field(
        1.0,
        ge=0,
        description="The same card again within this many seconds of its last read is the same "
        "read (desk readers repeat while a card lies on them); 0 turns it off.",
    )
    direction: Literal["in", "out"] | None = Field(
        None, description="Put this direction on every read (a reader fixed at an exit)."
    )
    reply_grant: str | None = Field(
        None, description="Bytes sent to the reader on a 'feedback' grant (escapes allowed)."
    )
    reply_deny: str | None = Field(
        None, description="Bytes sent to the reader on a 'feedback' deny (escapes allowed)."
    )
    reply_encoding: str = Field(
        "latin-1", description="Encoding of the reply text (latin-1: \\xNN is byte NN; gb2312...)."
    )
    idle_timeout_s: float | None = Field(
        None,
        gt=0,
        description="TCP/serial: reconnect after this long without a byte (for readers that "
        "send a heartbeat; a half-open TCP connection is noticed sooner). Default: never.",
    )
    reconnect_min_s: float = Field(0.5, gt=0, description="First wait before reconnecting.")
    reconnect_max_s: float = Field(
        30.0, gt=0, description="Longest wait between attempts (doubling, with random jitter)."
    )

    @field_validator("reply_encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError as e:
            raise ValueError(f"unknown reply_encoding {v!r}") from e
        return v

    @model_validator(mode="after")
    def _check(self) -> LineReaderConfig:
        given = [n for n in ("serial", "tcp", "tcp_listen") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of serial, tcp or tcp_listen (got {', '.join(given) or 'none'})"
            )
        if self.qr and "format" in self.model_fields_set:
            raise ValueError("qr: true reads the line as a token; remove 'format'")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        for name in ("reply_grant", "reply_deny"):
            text = getattr(self, name)
            if text is None:
                continue
            try:
                data = unescape(text).encode(self.reply_encoding)
            except UnicodeEncodeError as e:
                raise ValueError(f"{name} cannot be encoded as {self.reply_encoding}: {e}") from e
            if not data:
                raise ValueError(f"{name} is empty; leave it out to send nothing")
        return self

    @property
    def transport(self) -> Literal["serial", "tcp", "tcp_listen"]:
        if self.serial is not None:
            return "serial"
        return "tcp" if self.tcp is not None else "tcp_listen"

    def reply(self, result: str) -> bytes | None:
        """The bytes for a feedback ``result`` (``grant``/``deny``), None when not configured."""
        text = {"grant": self.reply_grant, "deny": self.reply_deny}.get(result)
        return None if text is None else unescape(text).encode(self.reply_encoding)

    def devices(self) -> Iterable[str]:
        return (self.device,)
