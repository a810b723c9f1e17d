"""Wiegand layouts: published vectors, hand-computed frames with their parity
written out, every parity bit of every format flipped, and wrong lengths."""

from __future__ import annotations

import pytest

from drivers.cards.wiegand import (
    FORMATS,
    Wiegand37,
    WiegandCard,
    WiegandError,
    decode_bitstring,
    decode_frame,
    decode_wiegand,
    encode_wiegand,
    format_bitstring,
    format_wiegand_hex,
)


def bits_to_bytes(text: str) -> tuple[int, bytes]:
    """'0101...' -> (bits, data MSB first, zero-padded at the end), as OSDP delivers it."""
    n = len(text)
    nbytes = (n + 7) // 8
    return n, (int(text, 2) << (nbytes * 8 - n)).to_bytes(nbytes, "big")


# --- published H10301 examples -------------------------------------------------


def test_published_h10301_fc90_card324() -> None:
    # jessety/wiegand-encoder README: encode(324, 90) -> 00101101000000001010001000
    card = decode_bitstring("00101101000000001010001000")
    assert card == WiegandCard("wiegand26", 26, 90, 324, "5A0144")


def test_published_h10301_fc99_card999() -> None:
    # angorb/wiegand-26bit-calculator-php README: FC 99, card 999 -> hex 0C607CF,
    # binary 00110001100000011111001111
    card = decode_bitstring("00110001100000011111001111")
    assert (card.facility, card.number) == (99, 999)
    bits, data = encode_wiegand("H10301", 99, 999)
    assert format_wiegand_hex(bits, data) == "26:0C607CF"
    assert format_bitstring(bits, data) == "00110001100000011111001111"


# --- hand-computed frames, parity written out -----------------------------------

# 26-bit FC 1 card 1:
#   P  | FC 00000001 | card 0000000000000001 | P
#   first 12 data bits 00000001 0000 -> one 1 -> even parity bit = 1
#   last 12 data bits 000000000001    -> one 1 -> odd parity bit  = 0
H10301_FC1_CARD1 = "1" + "00000001" + "0000000000000001" + "0"
# 26-bit FC 18 card 1234 (the example of gateway/access/cards.py):
#   FC 00010010, card 0000010011010010
#   first 12: 00010010 0000 -> two 1s  -> even parity 0
#   last 12: 010011010010  -> five 1s -> odd parity 0 (already odd)
H10301_FC18_CARD1234 = "0" + "00010010" + "0000010011010010" + "0"
# 34-bit (H10306) FC 1 card 1: even over the FC (one 1) -> 1; odd over the card (one 1) -> 0
H10306_FC1_CARD1 = "1" + "0000000000000001" + "0000000000000001" + "0"
# 37-bit H10304 FC 1 card 1: bits 2-17 FC, 18-36 card.
#   even over bits 2-19: FC has one 1, card bits 18-19 are 0 -> 1
#   odd over bits 19-36: the card's last bit is 1 -> one 1    -> 0
H10304_FC1_CARD1 = "1" + "0000000000000001" + "0000000000000000001" + "0"
# 37-bit H10302 card 1: bits 2-36 the number.
#   even over 2-19: no 1 -> 0; odd over 19-36: one 1 -> 0
H10302_CARD1 = "0" + "0" * 34 + "1" + "0"


@pytest.mark.parametrize(
    ("frame", "wiegand37", "expected"),
    [
        (H10301_FC1_CARD1, "H10304", WiegandCard("wiegand26", 26, 1, 1, "010001")),
        (H10301_FC18_CARD1234, "H10304", WiegandCard("wiegand26", 26, 18, 1234, "1204D2")),
        (H10306_FC1_CARD1, "H10304", WiegandCard("wiegand34", 34, 1, 1, "010001")),
        (H10304_FC1_CARD1, "H10304", WiegandCard("wiegand37", 37, 1, 1, "080001")),
        (H10302_CARD1, "H10302", WiegandCard("wiegand37", 37, None, 1, "01")),
    ],
)
def test_hand_computed_frames(frame: str, wiegand37: Wiegand37, expected: WiegandCard) -> None:
    assert decode_bitstring(frame, wiegand37=wiegand37) == expected
    bits, data = bits_to_bytes(frame)
    assert decode_wiegand(bits, data, wiegand37=wiegand37) == expected
    assert decode_frame(bits, int(frame, 2), wiegand37=wiegand37) == expected
    fmt = wiegand37 if bits == 37 else {26: "H10301", 34: "H10306"}[bits]
    assert encode_wiegand(fmt, expected.facility, expected.number) == (bits, data)


def test_osdp_style_bytes_ignore_the_padding() -> None:
    bits, data = bits_to_bytes(H10301_FC18_CARD1234)
    assert len(data) == 4
    padded = data[:-1] + bytes([data[-1] | 0x3F])  # the 6 padding bits set
    assert decode_wiegand(bits, padded).uid == "1204D2"


def test_the_same_37_bit_frame_read_both_ways_keeps_its_uid() -> None:
    bits, data = bits_to_bytes(H10304_FC1_CARD1)
    h10304 = decode_wiegand(bits, data, wiegand37="H10304")
    h10302 = decode_wiegand(bits, data, wiegand37="H10302")
    assert h10304.uid == h10302.uid == "080001"
    assert (h10302.facility, h10302.number) == (None, (1 << 19) + 1)


# --- parity: flip each parity bit and a data bit covered by each ----------------

_FRAMES = {
    "H10301": H10301_FC18_CARD1234,
    "H10306": H10306_FC1_CARD1,
    "H10304": H10304_FC1_CARD1,
    "H10302": H10302_CARD1,
}
# (first covered data bit of the even half, last covered data bit of the odd half), 1-based
_COVERED = {"H10301": (2, 25), "H10306": (2, 33), "H10304": (2, 36), "H10302": (2, 36)}


def _flip(frame: str, pos: int) -> str:
    i = pos - 1
    return frame[:i] + ("1" if frame[i] == "0" else "0") + frame[i + 1 :]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_parity_is_reported(fmt: str) -> None:
    frame = _FRAMES[fmt]
    w37: Wiegand37 = "H10302" if fmt == "H10302" else "H10304"
    decode_bitstring(frame, wiegand37=w37)  # the good frame decodes
    even_bit, odd_bit = _COVERED[fmt]
    for pos in (1, len(frame), even_bit, odd_bit):
        with pytest.raises(WiegandError) as e:
            decode_bitstring(_flip(frame, pos), wiegand37=w37)
        assert e.value.reason == "parity", pos


def test_37_bit_parity_halves_overlap_on_bit_19() -> None:
    # bit 19 counts in both halves: flipping it breaks both parities, flipping it
    # and both parity bits gives a valid frame again.
    frame = _flip(_flip(_flip(H10304_FC1_CARD1, 19), 1), 37)
    assert decode_bitstring(frame).number == 1 | 1 << 17


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_at_the_field_limits(fmt: str) -> None:
    w37: Wiegand37 = "H10302" if fmt == "H10302" else "H10304"
    fac_bits, num_bits = {"H10301": (8, 16), "H10306": (16, 16), "H10304": (16, 19)}.get(
        fmt, (0, 35)
    )
    for facility, number in ((0, 0), ((1 << fac_bits) - 1, (1 << num_bits) - 1), (5, 12345)):
        fac = facility if fac_bits else None
        bits, data = encode_wiegand(fmt, fac, number)
        card = decode_wiegand(bits, data, wiegand37=w37)
        assert (card.facility, card.number) == (fac, number)
        assert decode_bitstring(format_bitstring(bits, data), wiegand37=w37) == card


# --- lengths and formats ------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 24, 25, 27, 32, 35, 36, 38, 64])
def test_unknown_lengths(n: int) -> None:
    with pytest.raises(WiegandError) as e:
        decode_bitstring("0" * n)
    assert e.value.reason == "length"
    with pytest.raises(WiegandError) as e:
        decode_wiegand(n, bytes((n + 7) // 8))
    assert e.value.reason == "length"


def test_data_of_the_wrong_size() -> None:
    bits, data = bits_to_bytes(H10301_FC1_CARD1)
    for bad in (data[:-1], data + b"\x00", b""):
        with pytest.raises(WiegandError) as e:
            decode_wiegand(bits, bad)
        assert e.value.reason == "length"
    with pytest.raises(WiegandError) as e:
        decode_wiegand(0, b"")
    assert e.value.reason == "length"
    with pytest.raises(WiegandError) as e:
        decode_frame(26, 1 << 26)  # a 27-bit value claimed as 26 bits
    assert e.value.reason == "length"


@pytest.mark.parametrize("text", ["", "   ", "0101x0", "26:0C607CF", "0b0101"])
def test_not_bits(text: str) -> None:
    with pytest.raises(WiegandError) as e:
        decode_bitstring(text)
    assert e.value.reason == "format"


@pytest.mark.parametrize(
    ("fmt", "facility", "number"),
    [
        ("H10301", 256, 1),
        ("H10301", 1, 65536),
        ("H10301", None, 1),
        ("H10301", -1, 1),
        ("H10306", 65536, 1),
        ("H10304", 1, 1 << 19),
        ("H10302", 1, 1),
        ("H10302", None, 1 << 35),
    ],
)
def test_encode_refuses_values_that_do_not_fit(fmt: str, facility: int | None, number: int) -> None:
    with pytest.raises(WiegandError) as e:
        encode_wiegand(fmt, facility, number)
    assert e.value.reason == "range"


def test_encode_names() -> None:
    assert encode_wiegand("wiegand26", 18, 1234) == encode_wiegand("H10301", 18, 1234)
    assert encode_wiegand("wiegand34", 18, 1234) == encode_wiegand("H10306", 18, 1234)
    assert encode_wiegand("wiegand37", 18, 1234) == encode_wiegand("H10304", 18, 1234)
    with pytest.raises(WiegandError) as e:
        encode_wiegand("H99999", 1, 1)
    assert e.value.reason == "format"
