"""Pure pieces: JSON paths, coercion, timestamps, topic filters, templates,
the malformed-message reporter and the inbox bound."""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import pytest

from drivers.mqtt.inbox import Inbox
from drivers.mqtt.malformed import MalformedReporter
from drivers.mqtt.mapping import Template, TopicFilter
from drivers.mqtt.payload import (
    JsonPath,
    Malformed,
    MissingPath,
    coerce,
    parse_json,
    parse_lwt,
    parse_timestamp,
)
from gateway.clock import ManualClock

DOC = {"temp": 21.5, "data": {"temp": 22}, "items": [{"v": 1}, {"v": 2}], "a.b": {"c": 3}}


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("temp", 21.5),
        ("$.temp", 21.5),
        ("$.data.temp", 22),
        ("data.temp", 22),
        ("items[0].v", 1),
        ("items[-1].v", 2),
        ('$["a.b"].c', 3),
        ("$['a.b'].c", 3),
        ("$", DOC),
    ],
)
def test_json_paths(path: str, want: Any) -> None:
    assert JsonPath(path).get(DOC) == want


@pytest.mark.parametrize(
    ("path", "error", "why"),
    [
        ("nope", MissingPath, "no 'nope'"),
        ("items[5].v", MissingPath, "out of range"),
        ("temp.x", Malformed, "expected an object"),
        ("data[0]", Malformed, "expected a list"),
    ],
)
def test_json_path_misses(path: str, error: type[Exception], why: str) -> None:
    with pytest.raises(error, match=why):
        JsonPath(path).get(DOC)


@pytest.mark.parametrize("bad", ["", " a", "a..b", "a[", "a[x]", "$x", "a.[0]"])
def test_json_path_syntax_errors(bad: str) -> None:
    with pytest.raises(ValueError, match="JSON path"):
        JsonPath(bad)


@pytest.mark.parametrize(
    ("raw", "kind", "want"),
    [
        (12, "number", 12.0),
        (1.5, "number", 1.5),
        ("3.25", "number", 3.25),
        (b" 7\n", "number", 7.0),
        (True, "bool", True),
        ("ON", "bool", True),
        ("off", "bool", False),
        (0, "bool", False),
        (b"Online", "bool", True),
        ("x", "text", "x"),
        (b" text \n", "text", "text"),
        (3, "text", "3"),
        (False, "text", "false"),
    ],
)
def test_coerce(raw: Any, kind: Any, want: Any) -> None:
    got = coerce(raw, kind)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize(
    ("raw", "kind", "why"),
    [
        ("warm", "number", "not a number"),
        (True, "number", "expected a number, got a boolean"),
        (None, "number", "got null"),
        ([1], "number", "got a list"),
        (float("nan"), "number", "finite"),
        ("inf", "number", "finite"),
        ("maybe", "bool", "not a boolean"),
        (2, "bool", "expected a boolean"),
        ({"a": 1}, "text", "expected text"),
        (b"\xff", "text", "not UTF-8"),
    ],
)
def test_coerce_rejects(raw: Any, kind: Any, why: str) -> None:
    with pytest.raises(Malformed, match=why):
        coerce(raw, kind)


def test_timestamps_are_exact() -> None:
    assert parse_timestamp(1_790_000_000_123, "epoch_ms", None) == 1_790_000_000_123_000_000
    assert parse_timestamp(1790000000.123, "epoch_s", None) == 1_790_000_000_123_000_000
    assert parse_timestamp("1790000000", "epoch_s", None) == 1_790_000_000 * 10**9
    assert parse_timestamp("2026-11-21T02:00:00Z", "iso8601", None) == 1_795_226_400 * 10**9
    shanghai = ZoneInfo("Asia/Shanghai")
    assert parse_timestamp("2026-11-21T10:00:00", "iso8601", shanghai) == 1_795_226_400 * 10**9
    for raw, fmt, why in [
        ("2026-11-21T10:00:00", "iso8601", "no UTC offset"),
        ("yesterday", "iso8601", "not ISO 8601"),
        (5, "iso8601", "expected an ISO 8601 string"),
        ("soon", "epoch_s", "not a number"),
        (None, "epoch_ms", "expected a number"),
        ("NaN", "epoch_ms", "finite"),
    ]:
        with pytest.raises(Malformed, match=why):
            parse_timestamp(raw, fmt, None)  # type: ignore[arg-type]


def test_json_and_lwt_parsing() -> None:
    assert parse_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
    with pytest.raises(Malformed, match="bad JSON"):
        parse_json(b"{oops")
    with pytest.raises(Malformed, match="bad JSON"):
        parse_json(b"\xff\xfe")
    with pytest.raises(Malformed, match="bad JSON"):  # deep nesting: no RecursionError
        parse_json(b"[" * 200_000 + b"]" * 200_000)
    assert parse_lwt(b"Online") is True and parse_lwt(b"offline\n") is False
    with pytest.raises(Malformed, match="neither"):
        parse_lwt(b"Maybe")


@pytest.mark.parametrize(
    ("flt", "topic", "match"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/+", "a/b/c", False),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("a/b", "a/b", True),
    ],
)
def test_topic_filters(flt: str, topic: str, match: bool) -> None:
    assert TopicFilter(flt).match(topic.split("/")) is match


def test_templates_render_and_refuse_bad_names() -> None:
    t = Template("meter_{2}")
    assert t.render(["a", "b", "c7"]) == "meter_c7"
    assert Template("{1}").render(["a", "pm1"]) == "pm1"
    assert Template("tx1").render([]) == "tx1"
    with pytest.raises(ValueError, match="not a valid name"):
        Template("{1}").render(["a", "bad name"])


def test_malformed_events_once_per_topic_per_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    log = logging.getLogger("test.malformed")
    r = MalformedReporter("mq", clock, log)
    with caplog.at_level(logging.DEBUG, "test.malformed"):
        first = r.note("a/1", "a/+", "bad JSON", b"{x")
        assert first is not None and first.data["payload"] == "{x"
        assert r.note("a/1", "a/+", "bad JSON", b"{y") is None  # same topic, same minute
        assert r.note("a/2", "a/+", "bad JSON", b"{z") is not None  # another topic
    clock._t += 60  # a minute of the injected clock
    assert r.note("a/1", "a/+", "bad JSON", b"{x") is not None
    warnings = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(warnings) == 2  # the first per topic; the rest at DEBUG
    line = r.summary()
    assert line is not None and line.startswith("4 malformed message(s) on 2 topic(s)")
    assert r.summary() is None  # nothing new


async def test_inbox_drops_and_counts_past_its_limit() -> None:
    inbox = Inbox(3, logging.getLogger("test.inbox"))
    put = inbox.queue_type()().put_nowait
    for i in range(5):
        put(aiomqtt.Message("t", str(i).encode(), 0, False, i, None))
    assert [m.payload for m in inbox.items] == [b"0", b"1", b"2"]
    assert inbox.dropped == 2
    await inbox.wait()  # there is something: returns at once
