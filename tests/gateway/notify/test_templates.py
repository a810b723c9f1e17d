"""Message templates: zh-CN and en, the value against the limit, the site's
time zone, every kind, digests within a byte budget, UTF-8 safe truncation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.model import Priority, from_datetime
from gateway.notify.message import Notification, Recipient, Rendered, document, dumps, new_id
from gateway.notify.templates import fit, format_number, format_value, render, truncate_utf8

TS = from_datetime(datetime(2026, 3, 2, 0, 5, 9, tzinfo=UTC))  # 08:05:09 in Shanghai
URL = "http://127.0.0.1:8080/ack/tok.en"

VIEW: dict[str, Any] = {
    "id": "tx1-hot@tx1.winding_temp_a",
    "rule": "tx1-hot",
    "description": "1号变压器绕组温度过高",
    "priority": "critical",
    "category": "electrical",
    "state": "unacknowledged",
    "device": "tx1",
    "device_name": "1号变压器",
    "location": "B1配电房",
    "source": "tx1.winding_temp_a",
    "value": 128.4,
    "limit": 120.0,
    "unit": "°C",
    "level": "H",
    "ts": TS,
    "count": 3,
    "control_room": "main",
}


def note(kind: str = "alarm", locale: str = "zh-CN", **over: Any) -> Notification:
    fields: dict[str, Any] = {
        "id": new_id(),
        "kind": kind,
        "recipient": Recipient("zhang", "张伟", locale, {"mobile": "13800000000"}),
        "alarm": VIEW,
        "ack_url": URL,
        "ts": TS,
        "priority": Priority.CRITICAL,
    }
    fields.update(over)
    return Notification(**fields)


def test_alarm_in_chinese() -> None:
    r = render(note())
    assert r.subject == "【紧急】报警：1号变压器绕组温度过高 - 1号变压器（B1配电房）"
    assert r.text.splitlines() == [
        r.subject,
        "位置：1号变压器（B1配电房）",
        "数值：128.4 °C ≥ 120 °C (H)",
        "时间：2026-03-02 08:05:09 +08:00",
        "状态：报警中，未确认",
        "发生次数：3",
        f"确认报警：{URL}",
    ]
    assert r.markdown.startswith(f"**{r.subject}**\n")
    assert r.markdown.endswith(f"[确认报警]({URL})")
    assert '<a href="http://127.0.0.1:8080/ack/tok.en"' in r.html and "1号变压器" in r.html
    assert r.short.startswith(r.subject) and r.short.endswith(URL) and "03-02 08:05" in r.short


def test_alarm_in_english_in_another_time_zone() -> None:
    r = render(note(locale="en", timezone="Europe/London"))
    assert r.subject == "[CRITICAL] Alarm: 1号变压器绕组温度过高 - 1号变压器 (B1配电房)"
    assert "Value: 128.4 °C ≥ 120 °C (H)" in r.text
    assert "Time: 2026-03-02 00:05:09 +00:00" in r.text
    assert "State: active, not acknowledged" in r.text
    assert r.text.endswith(f"Acknowledge: {URL}")


@pytest.mark.parametrize(
    ("kind", "level", "zh", "en"),
    [
        ("reminder", 0, "提醒：报警尚未确认", "Reminder, not acknowledged"),
        ("escalated", 2, "报警升级（第2级）", "Escalated (level 2)"),
        ("cleared", 0, "报警已恢复", "Cleared"),
        ("test", 0, "测试", "Test"),
    ],
)
def test_kinds(kind: str, level: int, zh: str, en: str) -> None:
    assert zh in render(note(kind, level=level)).subject
    assert en in render(note(kind, "en", level=level)).subject


def test_cleared_shows_the_value_below_the_limit_and_the_state() -> None:
    view = {**VIEW, "value": 101.0, "state": "rtn_unacknowledged", "count": 1}
    r = render(note("cleared", alarm=view))
    assert "数值：101 °C < 120 °C (H)" in r.text
    assert "状态：已恢复，未确认" in r.text
    assert "发生次数" not in r.text  # only shown when it came back


def test_test_message_without_an_alarm() -> None:
    r = render(note("test", alarm={}, ack_url=""))
    assert r.subject == "物业网关测试消息"
    assert "工作正常" in r.text
    assert "确认" not in r.text


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        ({"value": 128.4, "limit": 120, "unit": "°C", "level": "HH"}, "128.4 °C ≥ 120 °C (HH)"),
        ({"value": 0.12, "limit": 0.2, "unit": "MPa", "level": "L"}, "0.12 MPa ≤ 0.2 MPa (L)"),
        ({"value": 0.3, "limit": 0.2, "unit": "MPa", "level": "LL"}, "0.3 MPa > 0.2 MPa (LL)"),
        ({"value": 96.5, "limit": 90, "unit": "%"}, "96.5% ≥ 90%"),
        ({"value": 3, "limit": "not 0"}, "3（限值：not 0）"),
        ({"value": True}, "true"),
        ({"value": 12.0, "unit": "A"}, "12 A"),
        ({}, ""),
    ],
)
def test_format_value(view: dict[str, Any], expected: str) -> None:
    assert format_value(view, "zh-CN") == expected


def test_format_number() -> None:
    assert [format_number(x) for x in (128.4, 120.0, 0.00123, -0.0, 7, 1 / 3)] == [
        "128.4",
        "120",
        "0.00123",
        "0",
        "7",
        "0.333",
    ]


def test_missing_fields_do_not_break_a_message() -> None:
    r = render(note(alarm={"id": "x@y", "rule": "x"}))
    assert r.subject == "【紧急】报警：x"
    assert r.text.endswith(URL)


def digest(count: int, locale: str = "zh-CN") -> Notification:
    items = [
        {**VIEW, "description": f"第{i}号水泵故障", "ack_url": f"{URL}/{i}"} for i in range(count)
    ]
    return note("digest", locale, alarm={}, items=items, ack_url="")


def test_digest_lists_every_alarm_with_its_own_link() -> None:
    r = render(digest(3))
    assert r.subject == "【紧急】报警汇总：共3条"
    for i in range(3):
        assert f"第{i}号水泵故障" in r.text and f"{URL}/{i}" in r.text
        assert f"[确认报警]({URL}/{i})" in r.markdown
        assert f'href="{URL}/{i}"' in r.html
    assert render(digest(2, "en")).subject == "[CRITICAL] Alarm digest: 2 alarms"


def test_digest_within_a_budget_drops_items_and_says_how_many() -> None:
    n = digest(200)
    r = render(n, max_bytes=4096)
    for form in (r.text, r.markdown):
        assert len(form.encode("utf-8")) <= 4096
        kept = sum(1 for i in range(200) if f"{URL}/{i})" in form or f"{URL}/{i}\n" in form)
        assert 5 < kept < 200
        assert form.endswith(f"……另有{200 - kept}条")


def test_a_huge_description_is_cut_but_the_link_stays() -> None:
    n = note(alarm={**VIEW, "description": "超长描述" * 3000})
    rendered = render(n)
    md = fit(n, rendered, "markdown", 4096)
    assert len(md.encode("utf-8")) <= 4096
    assert md.endswith(f"[确认报警]({URL})")
    assert "…" in md
    md.encode("utf-8").decode("utf-8")  # whole characters only


def test_truncate_utf8_never_splits_a_character() -> None:
    text = "温度过高" * 10  # 3 bytes each
    for limit in range(1, 40):
        cut = truncate_utf8(text, limit)
        assert len(cut.encode("utf-8")) <= limit
        cut.encode("utf-8")
    assert truncate_utf8(text, 120) == text
    assert truncate_utf8(text, 10) == "温度…"  # 6 bytes + the 3-byte ellipsis


def test_bad_notifications_are_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        note("page")
    with pytest.raises(ValueError, match="time zone"):
        note(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="locale"):
        Recipient("x", "X", "fr")
    with pytest.raises(ValueError, match="max_bytes"):
        render(note(), max_bytes=3)


def test_json_document() -> None:
    n = note(alarm={**VIEW, "value": float("nan")})
    doc = json.loads(dumps(document(n, Rendered("s", "t", "m"))))
    assert doc["version"] == 1 and doc["kind"] == "alarm" and doc["priority"] == "critical"
    assert doc["alarm"]["description"] == "1号变压器绕组温度过高"
    assert doc["alarm"]["value"] == "nan"
    assert doc["recipient"] == {"id": "zhang", "name": "张伟", "locale": "zh-CN"}
    assert "addresses" not in json.dumps(doc)
    assert "1号变压器".encode() in dumps(document(n, Rendered("s", "t", "m")))  # not \\u escaped
