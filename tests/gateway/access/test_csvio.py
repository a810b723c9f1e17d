"""CSV import and export: round trip, Excel's BOM, Chinese names, every bad
value reported with its line and column (and nothing returned), and an
export without card UIDs."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from gateway.access.cards import CardHasher
from gateway.access.credentials import Credential, CredentialIndex
from gateway.access.csvio import COLUMNS, CsvError, CsvProblem, export_csv, parse_csv
from gateway.clock import ManualClock
from gateway.model import from_datetime

HASHER = CardHasher(b"csv-test-key-0123456789abcdef")
TZ = "Asia/Shanghai"
CLOCK = ManualClock(datetime(2026, 11, 21, 2, 0, tzinfo=UTC))
HEADER = ",".join(COLUMNS)


def sample() -> list[Credential]:
    index = CredentialIndex(HASHER, clock=CLOCK)
    return [
        index.make(
            id="R-0001",
            kind="resident",
            holder="张三",
            group="residents",
            card="BC614E",
            certifications=["hv_electrician", "fire_warden"],
            data={"phone": "13800138000", "unit": "3-1201", "note": '说"你好", 逗号,换行\n第二行'},
        ),
        index.make(
            id="C-0001",
            kind="vehicle",
            holder="李四",
            group="vehicles",
            card="00C0FFEE",
            plate="沪A12345",
            valid_from=from_datetime(datetime(2026, 1, 1, 0, 0, tzinfo=UTC)),
            valid_until=from_datetime(datetime(2026, 12, 31, 16, 0, 30, tzinfo=UTC)),
        ),
        index.make(id="C-0002", kind="vehicle", holder="王五", group="vehicles", plate="粤B88888"),
        index.make(
            id="S-0001",
            kind="staff",
            holder="Guard Li",
            group="staff",
            card="0A0B",
            uses_left=5,
            blacklisted=True,
            disabled=True,
        ),
    ]


def test_round_trip() -> None:
    creds = sample()
    text = export_csv(creds, with_uid=True, timezone=TZ)
    assert text.startswith(HEADER + "\r\n")
    assert "2027-01-01T00:00:30+08:00" in text  # written in the site's zone
    assert parse_csv(text, HASHER, CLOCK, timezone=TZ) == creds
    assert parse_csv(text, HASHER, CLOCK, timezone="UTC") == creds  # offsets are explicit


def test_utf8_bom_and_chinese_names_from_excel() -> None:
    raw = (
        "\ufeff" + HEADER + "\r\nR-9,resident,欧阳娜娜,residents,12345678,decimal,,,,,否,否,,,,\r\n"
    )
    excel_bytes = raw.encode("utf-8")
    (cred,) = parse_csv(excel_bytes.decode("utf-8"), HASHER, CLOCK)
    assert cred.holder == "欧阳娜娜"
    assert cred.card_uid == "BC614E" and cred.card_hash == HASHER.card("BC614E")
    assert not cred.blacklisted and cred.created_ts == CLOCK.time_ns()


def test_without_uid_exports_no_card_values() -> None:
    text = export_csv(sample(), with_uid=False)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["card"] for r in rows] == ["", "", "", ""]
    assert [r["card_format"] for r in rows] == ["", "", "", ""]
    assert "BC614E" not in text and "C0FFEE" not in text and "0A0B" not in text
    assert rows[1]["plate"] == "沪A12345"  # plates are not card UIDs


def test_every_bad_value_is_reported_and_nothing_is_returned() -> None:
    text = "\r\n".join(
        [
            "id,kind,holder,group,card,card_format,plate,valid_from,valid_until,uses_left,blacklisted",
            "R-1,resident,张三,residents,0A01,,,,,,",  # line 2: fine
            "R-2,alien,李四,residents,XYZ,,,,,,",  # line 3: kind
            "R-3,resident,王五,residents,12AB,decimal,,2026-13-01,,-1,maybe",  # line 4: 4 bad
            "R-1,resident,赵六,residents,0A04,,,,,,",  # line 5: duplicate id
            "R-6,resident,孙七,residents,0A01,,,,,,",  # line 6: duplicate card
            "R-7,resident,,residents,0A07,,,,,,",  # line 7: no holder
            "R-8,resident,周八,residents,0A08,,,2026-10-02,2026-10-01,,",  # line 8: dates
            "",
            "R-9,vehicle,吴九,cars,,,,,,,",  # line 10: nothing to read
            "R-10,resident,郑十,residents,0A10,octal,,,,,,extra",  # line 11: too many values
        ]
    )
    with pytest.raises(CsvError) as err:
        parse_csv(text, HASHER, CLOCK)
    found = [(p.line, p.column) for p in err.value.problems]
    assert found == [
        (3, "kind"),
        (3, "card"),
        (4, "card"),
        (4, "valid_from"),
        (4, "uses_left"),
        (4, "blacklisted"),
        (5, "id"),
        (6, "card"),
        (7, "holder"),
        (8, "valid_until"),
        (10, "card"),
        (11, ""),
    ]
    assert "line 5, column id: R-1 is also on line 2" in str(err.value)
    assert "line 6, column card: same card as line 2" in str(err.value)


def test_quoted_newlines_keep_line_numbers_right() -> None:
    text = (
        HEADER
        + '\nR-1,resident,张三,residents,0A01,,,,,,,,,,,"多行\n备注"'
        + "\nR-2,resident,李四,residents,0A02,,,,,,sometimes,,,,,\n"
    )
    with pytest.raises(CsvError) as err:
        parse_csv(text, HASHER, CLOCK)
    assert err.value.problems == [CsvProblem(4, "blacklisted", "'sometimes' is not true or false")]


def test_header_problems() -> None:
    with pytest.raises(CsvError) as err:
        parse_csv("id,kind,holder,colour,colour\n", HASHER, CLOCK)
    assert [(p.line, p.column) for p in err.value.problems] == [
        (1, "colour"),
        (1, "colour"),
        (1, "group"),
    ]
    with pytest.raises(CsvError, match="empty"):
        parse_csv("\ufeff", HASHER, CLOCK)


def test_bare_dates_cover_whole_local_days() -> None:
    text = HEADER + "\nR-1,resident,张三,residents,0A01,hex,,2026-10-01,2026-10-07,,,,,,,\n"
    (cred,) = parse_csv(text, HASHER, CLOCK, timezone=TZ)
    assert cred.valid_from == from_datetime(datetime(2026, 9, 30, 16, 0, tzinfo=UTC))
    assert cred.valid_until == from_datetime(datetime(2026, 10, 7, 16, 0, tzinfo=UTC))
