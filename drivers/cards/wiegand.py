"""Wiegand frames: the bit layouts of the common card formats, their parity, and their UID.

A Wiegand frame is a leading parity bit, the data bits, and a trailing
parity bit, sent most significant bit first. Readers and converters hand it
over as a bit count plus the bits (OSDP raw Wiegand: MSB first, padded with
zeros at the end to whole bytes), as a string of ``0``/``1``, or as a bit
count and the frame in hex (``26:0C607CF``). This module checks the parity
and splits the data into facility code and card number.

The card's UID is the number the data bits make without the parity bits
(:func:`gateway.access.cards.canonical_uid`): 26-bit facility 18, card 1234
is ``0x12`` then ``0x04D2``, so ``1204D2``. A desk reader that prints the
same number in hex therefore enrols the same credential.

Layouts (bit 1 is the first bit on the wire):

========  =====  ========  ======  ==========================  ==========================
format    bits   facility  card    even parity (bit 1) over    odd parity (last bit) over
========  =====  ========  ======  ==========================  ==========================
H10301    26     8         16      bits 2-13                   bits 14-25
H10306    34     16        16      bits 2-17                   bits 18-33
H10304    37     16        19      bits 2-19                   bits 19-36
H10302    37     none      35      bits 2-19                   bits 19-36
========  =====  ========  ======  ==========================  ==========================

The 34-bit layout is HID H10306, the one most 34-bit readers and
controllers in the field use (some vendors place the fields differently;
those are not decoded here). A 37-bit frame is ambiguous: H10304 and H10302
share the length and the parity, so the caller says which one the site's
cards are (``wiegand37``); the UID (all 35 data bits) is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.access.cards import canonical_uid

__all__ = [
    "FORMATS",
    "Wiegand37",
    "WiegandCard",
    "WiegandError",
    "decode_bitstring",
    "decode_frame",
    "decode_wiegand",
    "encode_wiegand",
    "format_bitstring",
    "format_wiegand_hex",
]

Wiegand37 = Literal["H10304", "H10302"]
ErrorReason = Literal["length", "parity", "format", "range"]


class WiegandError(ValueError):
    """A frame that is not a card of a known format.

    ``reason`` is what ``card.read_error`` reports: ``length`` (a bit count
    no format has, or data of the wrong size), ``parity``, ``format`` (not
    bits at all); ``range`` is a facility or number too large to encode.
    """

    def __init__(self, reason: ErrorReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: ErrorReason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class WiegandCard:
    """A decoded card. ``format`` is the event's (``wiegand26``, ``wiegand34``,
    ``wiegand37``); ``facility`` is None for layouts without one (H10302)."""

    format: str
    bits: int
    facility: int | None
    number: int
    uid: str


@dataclass(frozen=True, slots=True)
class _Layout:
    name: str
    event_format: str
    bits: int
    facility_bits: int  # 0: no facility code
    number_bits: int
    even: tuple[int, int]  # 1-based inclusive range covered by the even parity bit (bit 1)
    odd: tuple[int, int]  # 1-based inclusive range covered by the odd parity bit (last bit)


_LAYOUTS = {
    "H10301": _Layout("H10301", "wiegand26", 26, 8, 16, (2, 13), (14, 25)),
    "H10306": _Layout("H10306", "wiegand34", 34, 16, 16, (2, 17), (18, 33)),
    "H10304": _Layout("H10304", "wiegand37", 37, 16, 19, (2, 19), (19, 36)),
    "H10302": _Layout("H10302", "wiegand37", 37, 0, 35, (2, 19), (19, 36)),
}
_ALIASES = {"wiegand26": "H10301", "wiegand34": "H10306", "wiegand37": "H10304"}

FORMATS: tuple[str, ...] = tuple(_LAYOUTS)
"""Layout names :func:`encode_wiegand` takes (the event names ``wiegand26``,
``wiegand34`` and ``wiegand37`` are accepted too; ``wiegand37`` is H10304)."""


def _layout_for(bits: int, wiegand37: Wiegand37) -> _Layout:
    if bits == 26:
        return _LAYOUTS["H10301"]
    if bits == 34:
        return _LAYOUTS["H10306"]
    if bits == 37:
        return _LAYOUTS[wiegand37]
    raise WiegandError("length", f"no known Wiegand format has {bits} bits (26, 34, 37)")


def _field(frame: int, bits: int, first: int, last: int) -> int:
    """Bits ``first``..``last`` (1-based, MSB first) of an N-bit frame."""
    width = last - first + 1
    return (frame >> (bits - last)) & ((1 << width) - 1)


def _parity_ok(layout: _Layout, frame: int) -> bool:
    n = layout.bits
    lead = frame >> (n - 1) & 1
    trail = frame & 1
    even_ones = _field(frame, n, *layout.even).bit_count() + lead
    odd_ones = _field(frame, n, *layout.odd).bit_count() + trail
    return even_ones % 2 == 0 and odd_ones % 2 == 1


def decode_frame(bits: int, frame: int, *, wiegand37: Wiegand37 = "H10304") -> WiegandCard:
    """Decode an N-bit frame given as an integer (first bit on the wire = MSB)."""
    if frame < 0 or frame >> bits:
        raise WiegandError("length", f"the value has more than {bits} bits")
    layout = _layout_for(bits, wiegand37)
    if not _parity_ok(layout, frame):
        raise WiegandError("parity", f"{layout.name} parity check failed")
    data = _field(frame, bits, 2, bits - 1)
    number = data & ((1 << layout.number_bits) - 1)
    facility = data >> layout.number_bits if layout.facility_bits else None
    return WiegandCard(layout.event_format, bits, facility, number, canonical_uid(data))


def decode_wiegand(bits: int, data: bytes, *, wiegand37: Wiegand37 = "H10304") -> WiegandCard:
    """Decode ``bits`` bits held MSB first in ``data``, padded at the end to whole bytes.

    ``data`` must be exactly ``ceil(bits / 8)`` bytes, as OSDP raw Wiegand
    delivers it; the padding bits are ignored.
    """
    if bits <= 0:
        raise WiegandError("length", f"bit count must be positive, got {bits}")
    need = (bits + 7) // 8
    if len(data) != need:
        raise WiegandError("length", f"{bits} bits need {need} bytes, got {len(data)}")
    frame = int.from_bytes(data, "big") >> (need * 8 - bits)
    return decode_frame(bits, frame, wiegand37=wiegand37)


def decode_bitstring(text: str, *, wiegand37: Wiegand37 = "H10304") -> WiegandCard:
    """Decode ``"0101..."`` (parity bits included) as a serial Wiegand converter prints it."""
    bits = text.strip()
    if not bits or bits.strip("01"):
        raise WiegandError("format", "expected only the characters 0 and 1")
    return decode_frame(len(bits), int(bits, 2), wiegand37=wiegand37)


def encode_wiegand(fmt: str, facility: int | None, number: int) -> tuple[int, bytes]:
    """``(bits, data)`` of a card, parity computed, for simulators and tests.

    ``fmt`` is a layout name of :data:`FORMATS` or an event format name;
    ``facility`` must be None for H10302 and given for the others.
    """
    name = _ALIASES.get(fmt, fmt)
    layout = _LAYOUTS.get(name)
    if layout is None:
        raise WiegandError("format", f"unknown Wiegand format {fmt!r}; use one of {FORMATS}")
    if layout.facility_bits:
        if facility is None or not 0 <= facility < 1 << layout.facility_bits:
            raise WiegandError(
                "range", f"{name} facility code must be 0..{(1 << layout.facility_bits) - 1}"
            )
    elif facility is not None:
        raise WiegandError("range", f"{name} has no facility code")
    if not 0 <= number < 1 << layout.number_bits:
        raise WiegandError(
            "range", f"{name} card number must be 0..{(1 << layout.number_bits) - 1}"
        )
    n = layout.bits
    data = ((facility or 0) << layout.number_bits) | number
    frame = data << 1
    if _field(frame, n, *layout.even).bit_count() % 2:
        frame |= 1 << (n - 1)
    if _field(frame, n, *layout.odd).bit_count() % 2 == 0:
        frame |= 1
    nbytes = (n + 7) // 8
    return n, (frame << (nbytes * 8 - n)).to_bytes(nbytes, "big")


def _frame_of(bits: int, data: bytes) -> int:
    nbytes = (bits + 7) // 8
    if bits <= 0 or len(data) != nbytes:
        raise WiegandError("length", f"{bits} bits need {nbytes} bytes, got {len(data)}")
    return int.from_bytes(data, "big") >> (nbytes * 8 - bits)


def format_bitstring(bits: int, data: bytes) -> str:
    """``(26, data)`` -> ``"00110001100000011111001111"`` (what ``wiegand_bits`` lines carry)."""
    return format(_frame_of(bits, data), f"0{bits}b")


def format_wiegand_hex(bits: int, data: bytes) -> str:
    """``(26, data)`` -> ``"26:0C607CF"`` (what ``wiegand_hex`` lines carry)."""
    return f"{bits}:{_frame_of(bits, data):0{(bits + 3) // 4}X}"
