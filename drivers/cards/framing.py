"""Cutting a reader's byte stream into lines and reading a card out of each.

:class:`LineFramer` is fed whatever the transport delivers (a read may hold
half a line or three lines) and returns whole frames. It knows three ways a
frame ends: a terminator (any CR/LF mix when the terminator is made of CR
and LF only, so ``\\r\\n`` readers and bare ``\\r`` readers both work), an ETX
byte, and, with an STX byte, only what lies between STX and the end. A line
longer than ``max_line`` is reported once as a ``length`` error and skipped
up to the next end (or the next STX), so one noisy burst costs one read,
not the stream.

:class:`LineParser` turns one frame into a :class:`LineRead` (a card with
its canonical UID, or a QR token) or a :class:`LineProblem` whose
``reason`` is what ``card.read_error`` says (``format``, ``length``,
``parity``). Neither raises on bad input: garbage from a reader is data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from drivers.cards.wiegand import (
    Wiegand37,
    WiegandCard,
    WiegandError,
    decode_bitstring,
    decode_frame,
)
from gateway.access.cards import CardValueError, canonical_uid

__all__ = [
    "Frame",
    "FrameError",
    "LineFramer",
    "LineParser",
    "LineProblem",
    "LineRead",
]

_CRLF = frozenset(b"\r\n")
_RAW_MAX = 64  # bytes of a bad line kept (as hex) in the read_error event
_HEX_ONLY = re.compile(r"^(?:0[xX])?[0-9A-Fa-f]+$")
_SEPARATORS = re.compile(r"[\s:\-]")


@dataclass(frozen=True, slots=True)
class Frame:
    """One line, without its markers."""

    data: bytes


@dataclass(frozen=True, slots=True)
class FrameError:
    """Bytes that could not be a line: too long, or a frame cut by a new STX."""

    reason: Literal["length", "format"]
    data: bytes


class LineFramer:
    """Incremental framer; one per connection (a reconnect starts clean)."""

    def __init__(
        self,
        *,
        terminator: bytes = b"\r\n",
        stx: int | None = None,
        etx: int | None = None,
        max_line: int = 256,
    ) -> None:
        if not terminator and etx is None:
            raise ValueError("a framer needs a terminator or an etx byte")
        self._terminator = terminator
        self._universal = etx is None and set(terminator) <= _CRLF
        self._stx = stx
        self._etx = etx
        self._max = max_line
        self._buf = bytearray()
        self._in_frame = stx is None  # without STX every byte belongs to a line
        self._skipping = False  # after an over-long line: drop up to the next end

    def _find_end(self) -> tuple[int, int]:
        """Index and size of the first end marker in the buffer, (-1, 0) if none."""
        buf = self._buf
        if self._etx is not None:
            return buf.find(self._etx), 1
        if self._universal:
            cr, lf = buf.find(b"\r"), buf.find(b"\n")
            ends = [i for i in (cr, lf) if i >= 0]
            return (min(ends), 1) if ends else (-1, 0)
        return buf.find(self._terminator), len(self._terminator)

    def feed(self, chunk: bytes) -> list[Frame | FrameError]:
        """The frames completed by ``chunk`` (empty lines are skipped)."""
        out: list[Frame | FrameError] = []
        buf = self._buf
        buf += chunk
        while buf:
            if not self._in_frame:  # STX framing: look for the start
                start = buf.find(self._stx)  # type: ignore[arg-type]
                if start < 0:
                    buf.clear()  # noise between frames
                    break
                del buf[: start + 1]
                self._in_frame = True
            end, size = self._find_end()
            if self._stx is not None:
                restart = buf.find(self._stx)
                if restart >= 0 and (end < 0 or restart < end):
                    # a new frame began before this one ended: its end was lost
                    out.append(FrameError("format", bytes(buf[: min(restart, _RAW_MAX)])))
                    del buf[: restart + 1]
                    continue
            if end < 0:
                if len(buf) > self._max:
                    out.append(FrameError("length", bytes(buf[:_RAW_MAX])))
                    buf.clear()
                    if self._stx is not None:
                        self._in_frame = False  # resynchronise at the next STX
                    else:
                        self._skipping = True
                break
            line = bytes(buf[:end])
            del buf[: end + size]
            if self._stx is not None:
                self._in_frame = False
            if self._skipping:
                self._skipping = False  # the tail of an over-long line
                continue
            if len(line) > self._max:
                out.append(FrameError("length", line[:_RAW_MAX]))
            elif line:
                out.append(Frame(line))
        return out


@dataclass(frozen=True, slots=True)
class LineRead:
    """A card (``uid``) or a QR token (``value``) read from one line."""

    format: str  # "line", "wiegand26", "wiegand34", "wiegand37" or "qr"
    uid: str | None = None
    value: str | None = None
    bits: int | None = None
    facility: int | None = None
    number: int | None = None

    @property
    def key(self) -> str:
        """What debouncing compares: the same card or token read again."""
        return f"qr:{self.value}" if self.uid is None else f"uid:{self.uid}"


@dataclass(frozen=True, slots=True)
class LineProblem:
    """A line that is not a card; the fields of ``card.read_error``."""

    reason: Literal["format", "length", "parity"]
    raw: bytes
    bits: int = 0

    @property
    def raw_hex(self) -> str:
        return self.raw[:_RAW_MAX].hex().upper()


class LineParser:
    """Reads one frame as the configured format."""

    def __init__(
        self,
        fmt: Literal["hex", "decimal", "wiegand_bits", "wiegand_hex"] = "hex",
        *,
        qr: bool = False,
        prefix_strip: str | None = None,
        wiegand37: Wiegand37 = "H10304",
    ) -> None:
        self._fmt = fmt
        self._qr = qr
        self._prefix = re.compile(prefix_strip) if prefix_strip else None
        self._wiegand37: Wiegand37 = wiegand37

    def parse(self, raw: bytes) -> LineRead | LineProblem | None:
        """The read on this line; None for a line with nothing on it."""
        try:
            text = raw.decode("utf-8" if self._qr else "ascii")
        except UnicodeDecodeError:
            return LineProblem("format", raw)
        text = text.strip()
        if self._prefix is not None:
            m = self._prefix.match(text)
            if m is not None:
                text = text[m.end() :].strip()
        if not text:
            return None
        if self._qr:
            if not text.isprintable():
                return LineProblem("format", raw)
            return LineRead("qr", value=text)
        if self._fmt in ("hex", "decimal"):
            return self._uid(text, raw)
        try:
            if self._fmt == "wiegand_bits":
                card = decode_bitstring(text, wiegand37=self._wiegand37)
            else:
                card = self._wiegand_hex(text)
        except WiegandError as e:
            reason: Literal["format", "length", "parity"] = (
                "parity" if e.reason == "parity" else "length" if e.reason == "length" else "format"
            )
            return LineProblem(reason, raw, _bits_of(text, self._fmt))
        return LineRead(
            card.format, card.uid, bits=card.bits, facility=card.facility, number=card.number
        )

    def _uid(self, text: str, raw: bytes) -> LineRead | LineProblem:
        decimal = self._fmt == "decimal"
        try:
            uid = canonical_uid(text, decimal=decimal)
        except CardValueError:
            digits = _SEPARATORS.sub("", text)
            well_formed = digits.isdigit() if decimal else bool(_HEX_ONLY.match(digits))
            return LineProblem("length" if well_formed else "format", raw)
        return LineRead("line", uid)

    def _wiegand_hex(self, text: str) -> WiegandCard:
        count, sep, frame = text.partition(":")
        count, frame = count.strip(), frame.strip()
        if not sep or not count.isdigit() or not frame or not _HEX_ONLY.match(frame):
            raise WiegandError("format", "expected '<bits>:<hex frame>', e.g. 26:0C607CF")
        return decode_frame(int(count), int(frame, 16), wiegand37=self._wiegand37)


def _bits_of(text: str, fmt: str) -> int:
    """The bit count a bad Wiegand line claims, for the read_error event."""
    if fmt == "wiegand_bits":
        return len(text) if not text.strip("01") else 0
    count = text.partition(":")[0].strip()
    return int(count) if count.isdigit() and len(count) < 6 else 0
