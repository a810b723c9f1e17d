"""LineFramer and LineParser on their own: every way a stream can be cut, and
every kind of line a reader sends, good and bad."""

from __future__ import annotations

import pytest

from drivers.cards.framing import Frame, FrameError, LineFramer, LineParser, LineProblem, LineRead
from drivers.cards.wiegand import encode_wiegand, format_bitstring, format_wiegand_hex


def frames(framer: LineFramer, *chunks: bytes) -> list[Frame | FrameError]:
    out: list[Frame | FrameError] = []
    for c in chunks:
        out += framer.feed(c)
    return out


# --- framing ------------------------------------------------------------------


def test_any_cr_lf_mix_ends_a_line_and_empty_lines_are_skipped() -> None:
    f = LineFramer()
    got = frames(f, b"AA\r\nBB\rCC\n\r\n\nDD")
    assert got == [Frame(b"AA"), Frame(b"BB"), Frame(b"CC")]
    assert frames(f, b"\r\n") == [Frame(b"DD")]


def test_bytes_arriving_one_at_a_time() -> None:
    f = LineFramer()
    got = frames(f, *[bytes([b]) for b in b"0A1B\r\n2C3D\r\n"])
    assert got == [Frame(b"0A1B"), Frame(b"2C3D")]


def test_a_multi_byte_terminator_split_across_reads() -> None:
    f = LineFramer(terminator=b"#END")
    assert frames(f, b"AB#E", b"N", b"D", b"CD#") == [Frame(b"AB")]
    assert frames(f, b"END") == [Frame(b"CD")]


def test_stx_etx_frames_drop_noise_between_them() -> None:
    f = LineFramer(stx=0x02, etx=0x03)
    got = frames(f, b"noise\x02AB", b"CD\x03\r\n\x02EF\x03\x02", b"12\x03junk")
    assert got == [Frame(b"ABCD"), Frame(b"EF"), Frame(b"12")]


def test_a_frame_whose_etx_was_lost_is_reported_and_the_next_one_kept() -> None:
    f = LineFramer(stx=0x02, etx=0x03)
    got = frames(f, b"\x02AB\x02CD\x03")
    assert got == [FrameError("format", b"AB"), Frame(b"CD")]


def test_etx_alone_ends_frames() -> None:
    f = LineFramer(etx=0x03)
    assert frames(f, b"AB\x03CD\x03E") == [Frame(b"AB"), Frame(b"CD")]


def test_stx_with_terminator() -> None:
    f = LineFramer(stx=0x02, terminator=b"\r\n")
    assert frames(f, b"xx\x02AB\r\nyy\x02CD\n") == [Frame(b"AB"), Frame(b"CD")]


def test_too_long_a_line_is_one_error_then_the_stream_resynchronises() -> None:
    f = LineFramer(max_line=8)
    got = frames(f, b"0123456789", b"ABCDEF", b"GHIJ\r\n", b"0A1B\r\n")
    assert got == [FrameError("length", b"0123456789"), Frame(b"0A1B")]


def test_too_long_a_line_arriving_whole() -> None:
    f = LineFramer(max_line=8)
    got = frames(f, b"0123456789\r\n0A1B\r\n")
    assert got == [FrameError("length", b"0123456789"), Frame(b"0A1B")]


def test_too_long_a_frame_resynchronises_at_the_next_stx() -> None:
    f = LineFramer(stx=0x02, etx=0x03, max_line=4)
    got = frames(f, b"\x02ABCDEFGH", b"IJ\x03\x02AB\x03")
    assert got == [FrameError("length", b"ABCDEFGH"), Frame(b"AB")]


def test_a_framer_needs_an_end() -> None:
    with pytest.raises(ValueError, match="terminator or an etx"):
        LineFramer(terminator=b"")


# --- parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "uid"),
    [
        (b"00BC614E", "BC614E"),
        (b"0xbc614e", "BC614E"),
        (b"BC:61:4E", "BC614E"),
        (b"  bc614e  ", "BC614E"),
        (b"04A1B2C3D4E5F6", "04A1B2C3D4E5F6"),
    ],
)
def test_hex_lines(line: bytes, uid: str) -> None:
    assert LineParser("hex").parse(line) == LineRead("line", uid)


def test_decimal_lines() -> None:
    assert LineParser("decimal").parse(b"12345678") == LineRead("line", "BC614E")
    assert LineParser("decimal").parse(b"0012345678") == LineRead("line", "BC614E")


@pytest.mark.parametrize(
    ("fmt", "line", "reason"),
    [
        ("hex", b"12G4", "format"),
        ("hex", b"\xff\xfe", "format"),
        ("hex", b"AB" * 17, "length"),  # 17 bytes: longer than any card UID
        ("decimal", b"12a4", "format"),
        ("decimal", b"9" * 45, "length"),
    ],
)
def test_bad_uid_lines(fmt: str, line: bytes, reason: str) -> None:
    got = LineParser(fmt).parse(line)  # type: ignore[arg-type]
    assert isinstance(got, LineProblem)
    assert (got.reason, got.raw) == (reason, line)


def test_prefix_strip() -> None:
    p = LineParser("hex", prefix_strip=r"ID[:=]")
    assert p.parse(b"ID:BC614E") == LineRead("line", "BC614E")
    assert p.parse(b"BC614E") == LineRead("line", "BC614E")  # no prefix: read as is
    assert p.parse(b"ID:") is None  # nothing after the prefix


def test_wiegand_lines() -> None:
    bits, data = encode_wiegand("H10301", 18, 1234)
    expected = LineRead("wiegand26", "1204D2", bits=26, facility=18, number=1234)
    assert LineParser("wiegand_bits").parse(format_bitstring(bits, data).encode()) == expected
    assert LineParser("wiegand_hex").parse(format_wiegand_hex(bits, data).encode()) == expected
    assert LineParser("wiegand_hex").parse(b"26:0c607cf") == LineRead(
        "wiegand26", "6303E7", bits=26, facility=99, number=999
    )


def test_wiegand_37_layout_is_chosen_by_config() -> None:
    bits, data = encode_wiegand("H10302", None, 123456)
    line = format_wiegand_hex(bits, data).encode()
    got = LineParser("wiegand_hex", wiegand37="H10302").parse(line)
    assert got == LineRead("wiegand37", "01E240", bits=37, facility=None, number=123456)


@pytest.mark.parametrize(
    ("fmt", "line", "reason", "bits"),
    [
        ("wiegand_bits", b"10110101000000001010001000", "parity", 26),
        ("wiegand_bits", b"0" * 30, "length", 30),
        ("wiegand_bits", b"0101x", "format", 0),
        ("wiegand_hex", b"26:0C607CE", "parity", 26),
        ("wiegand_hex", b"26:FFFFFFFF", "length", 26),
        ("wiegand_hex", b"30:0C607CF", "length", 30),
        ("wiegand_hex", b"0C607CF", "format", 0),
        ("wiegand_hex", b"26:XYZ", "format", 26),
    ],
)
def test_bad_wiegand_lines(fmt: str, line: bytes, reason: str, bits: int) -> None:
    got = LineParser(fmt).parse(line)  # type: ignore[arg-type]
    assert got == LineProblem(reason, line, bits)  # type: ignore[arg-type]


def test_qr_lines_keep_their_text() -> None:
    p = LineParser(qr=True)
    assert p.parse(b"V-abc_DEF-123 \r") == LineRead("qr", value="V-abc_DEF-123")
    assert p.parse("访客-1".encode()) == LineRead("qr", value="访客-1")
    assert p.parse(b"\xff\xfe") == LineProblem("format", b"\xff\xfe")
    assert p.parse(b"a\x07b") == LineProblem("format", b"a\x07b")
    assert p.parse(b"   ") is None


def test_debounce_keys_tell_cards_from_tokens() -> None:
    assert LineRead("line", "AB").key != LineRead("qr", value="AB").key
