"""Message templates: a :class:`Notification` as subject, text, markdown, HTML
and one SMS line, in the recipient's language (zh-CN or en, through the
``notify.*`` keys of :mod:`gateway.i18n`).

An alarm message says what (the rule's description), how urgent (priority),
where (device name and location), the value against the limit with its unit
(``128.4 °C ≥ 120 °C (H)``), when (in the site's time zone), the state, how
often it came back, and ends with the ack link. A digest lists its alarms,
one ack link each.

``render(n, max_bytes=...)`` keeps text and markdown within a byte budget
(a chat robot's size limit): a digest drops whole items from the end and says
how many; a single alarm is cut on a UTF-8 boundary with an ellipsis. The ack
link always survives.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.i18n import t
from gateway.model import AlarmState, Priority
from gateway.notify.message import Notification, Rendered

__all__ = ["ELLIPSIS", "fit", "format_number", "format_value", "render", "truncate_utf8"]

ELLIPSIS = "…"
_PRIORITY_COLOUR = {
    Priority.CRITICAL: "#c62828",
    Priority.HIGH: "#ef6c00",
    Priority.MEDIUM: "#f9a825",
    Priority.LOW: "#1565c0",
}
_STATES = frozenset(s.value for s in AlarmState)


def truncate_utf8(text: str, max_bytes: int, ellipsis: str = ELLIPSIS) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, never inside a
    character, ending with ``ellipsis`` when it was cut."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    room = max_bytes - len(ellipsis.encode("utf-8"))
    if room <= 0:
        return raw[:max_bytes].decode("utf-8", errors="ignore")
    return raw[:room].decode("utf-8", errors="ignore") + ellipsis


def format_number(x: float | int) -> str:
    """A reading for people: ``128.4``, ``120``, ``0.00123``."""
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if x != 0 and abs(x) < 0.01:
        return f"{x:.3g}"
    s = f"{x:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def _with_unit(value: Any, unit: str) -> str:
    text = format_number(value) if isinstance(value, (int, float)) else _one_line(value)
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def _numeric(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def format_value(view: Mapping[str, Any], locale: str) -> str:
    """The value against the limit: ``128.4 °C ≥ 120 °C (H)``; '' without a value."""
    value, limit = view.get("value"), view.get("limit")
    if value is None or value == "":
        return ""
    unit = str(view.get("unit") or "")
    level = str(view.get("level") or "")
    text = _with_unit(value, unit)
    suffix = f" ({level})" if level else ""
    if limit is None or limit == "":
        return text + suffix
    if _numeric(value) and _numeric(limit):
        if level.upper() in ("L", "LL"):
            op = "≤" if value <= limit else ">"
        else:
            op = "≥" if value >= limit else "<"
        return f"{text} {op} {_with_unit(limit, unit)}{suffix}"
    return t("notify.value.vs", locale, value=text, limit=_one_line(limit)) + suffix


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


@dataclass(frozen=True, slots=True)
class _Alarm:
    """One alarm's pieces, already in the recipient's language."""

    priority: str  # 高
    tag: str  # 【高】
    title: str
    where: str
    value: str
    time: str
    short_time: str
    state: str
    count: int
    url: str


def _alarm(n: Notification, view: Mapping[str, Any], url: str, *, own: bool = False) -> _Alarm:
    """``own``: the notification's own alarm (its priority is the notification's);
    else a digest item (its own priority)."""
    loc = n.recipient.locale
    raw_priority = n.priority if own else view.get("priority") or n.priority
    try:
        priority = Priority(raw_priority)
        plabel = t(f"notify.priority.{priority.value}", loc)
    except ValueError:
        plabel = _one_line(raw_priority)
    device = _one_line(view.get("device_name") or view.get("device") or view.get("source") or "")
    location = _one_line(view.get("location") or "")
    where = t("notify.where", loc, device=device, location=location) if location else device
    if not device:
        where = location
    ts = view.get("ts") or n.ts
    time = short_time = ""
    if isinstance(ts, int) and ts > 0:
        try:
            dt = n.local_time(ts)
        except (OverflowError, OSError, ValueError):  # a garbled timestamp: show no time
            pass
        else:
            time = dt.strftime("%Y-%m-%d %H:%M:%S ") + dt.isoformat()[-6:]
            short_time = dt.strftime("%m-%d %H:%M")
    state = str(view.get("state") or "")
    state_label = t(f"notify.state.{state}", loc) if state in _STATES else _one_line(state)
    count = view.get("count")
    return _Alarm(
        priority=plabel,
        tag=t("notify.tag", loc, priority=plabel),
        title=_one_line(view.get("description") or view.get("rule") or view.get("id") or ""),
        where=where,
        value=format_value(view, loc),
        time=time,
        short_time=short_time,
        state=state_label,
        count=count if isinstance(count, int) and not isinstance(count, bool) else 0,
        url=str(url or ""),
    )


def _fields(a: _Alarm, loc: str) -> list[tuple[str, str]]:
    rows = [
        ("notify.label.where", a.where),
        ("notify.label.value", a.value),
        ("notify.label.time", a.time),
        ("notify.label.state", a.state),
        ("notify.label.count", str(a.count) if a.count > 1 else ""),
    ]
    return [(t(key, loc), value) for key, value in rows if value]


def _fit(
    head: Sequence[str],
    blocks: Sequence[str],
    foot: Sequence[str],
    max_bytes: int | None,
    more: Callable[[int], str],
    sep: str = "\n",
) -> str:
    """Join head, blocks and foot within ``max_bytes``: drop blocks from the end
    (saying how many), then cut the rest, keeping the foot (the ack link)."""
    full = sep.join([*head, *blocks, *foot])
    if max_bytes is None or len(full.encode("utf-8")) <= max_bytes:
        return full
    step = len(sep.encode("utf-8"))
    fixed = sum(len(p.encode("utf-8")) + step for p in (*head, *foot))
    sizes = [len(b.encode("utf-8")) + step for b in blocks]
    used = fixed + sum(sizes)
    kept = len(blocks)
    while kept > 1:  # drop whole blocks from the end
        kept -= 1
        used -= sizes[kept]
        if used + len(more(len(blocks) - kept).encode("utf-8")) <= max_bytes:
            return sep.join([*head, *blocks[:kept], more(len(blocks) - kept), *foot])
    tail = [more(len(blocks) - kept)] if kept < len(blocks) else []
    tail += list(foot)
    room = max_bytes - (len(sep.join(tail).encode("utf-8")) + step if tail else 0)
    body = truncate_utf8(sep.join([*head, *blocks[:kept]]), max(room, 0))
    return truncate_utf8(sep.join([body, *tail]), max_bytes)  # the foot alone may be too long


def _single(n: Notification, max_bytes: int | None) -> Rendered:
    loc = n.recipient.locale
    if n.kind == "test" and not n.alarm:
        subject, body = t("notify.test.subject", loc), t("notify.test.body", loc)
        return Rendered(
            subject,
            f"{subject}\n{body}",
            f"**{subject}**\n{body}",
            f"<p><b>{html.escape(subject)}</b></p><p>{html.escape(body)}</p>",
            f"{subject}: {body}",
        )
    a = _alarm(n, n.alarm, n.ack_url, own=True)
    kind = t(f"notify.kind.{n.kind}", loc, level=n.level)
    key = "notify.subject" if a.where else "notify.subject.nowhere"
    subject = t(key, loc, priority=a.priority, kind=kind, title=a.title, where=a.where)
    fields = _fields(a, loc)
    lines = [t("notify.line", loc, label=label, value=value) for label, value in fields]
    button = t("notify.ack.button", loc)

    def more(_: int) -> str:
        return ELLIPSIS

    text_foot = [t("notify.ack.text", loc, url=a.url)] if a.url else []
    md_foot = [f"[{button}]({a.url})"] if a.url else []
    text = _fit([subject], lines, text_foot, max_bytes, more)
    markdown = _fit([f"**{subject}**"], lines, md_foot, max_bytes, more)
    short_parts = [subject, a.value, a.short_time, *text_foot]
    short = " ".join(p for p in short_parts if p)
    colour = _PRIORITY_COLOUR.get(Priority(n.priority), "#333")
    rows = "".join(
        f'<tr><th align="left" style="padding:4px 12px 4px 0">{html.escape(label)}</th>'
        f"<td>{html.escape(value)}</td></tr>"
        for label, value in fields
    )
    link = (
        f'<p><a href="{html.escape(a.url, quote=True)}" style="display:inline-block;'
        f"padding:10px 20px;background:{colour};color:#fff;text-decoration:none;"
        f'border-radius:4px">{html.escape(button)}</a></p>'
        if a.url
        else ""
    )
    page = (
        f'<html><body style="font-family:sans-serif">'
        f'<h2 style="color:{colour}">{html.escape(subject)}</h2>'
        f"<table>{rows}</table>{link}</body></html>"
    )
    return Rendered(subject, text, markdown, page, short)


def _digest(n: Notification, max_bytes: int | None) -> Rendered:
    loc = n.recipient.locale
    plabel = t(f"notify.priority.{Priority(n.priority).value}", loc)
    kind = t("notify.kind.digest", loc)
    subject = t("notify.subject.digest", loc, priority=plabel, kind=kind, count=len(n.items))
    button = t("notify.ack.button", loc)
    alarms = [_alarm(n, item, str(item.get("ack_url") or "")) for item in n.items]
    text_blocks, md_blocks, html_items = [], [], []
    for i, a in enumerate(alarms, 1):
        facts = " - ".join(p for p in (a.where, a.value, a.short_time) if p)
        line = f"{i}. {a.tag}{a.title}" + (f" - {facts}" if facts else "")
        text_blocks.append(line + (f"\n   {t('notify.ack.text', loc, url=a.url)}" if a.url else ""))
        md_blocks.append(
            f"{i}. **{a.tag}{a.title}**"
            + (f" {facts}" if facts else "")
            + (f" [{button}]({a.url})" if a.url else "")
        )
        link = (
            f' <a href="{html.escape(a.url, quote=True)}">{html.escape(button)}</a>'
            if a.url
            else ""
        )
        html_items.append(
            f"<li><b>{html.escape(a.tag + a.title)}</b> {html.escape(facts)}{link}</li>"
        )

    def more(count: int) -> str:
        return t("notify.digest.more", loc, count=count)

    text = _fit([subject], text_blocks, [], max_bytes, more)
    markdown = _fit([f"**{subject}**"], md_blocks, [], max_bytes, more)
    colour = _PRIORITY_COLOUR.get(Priority(n.priority), "#333")
    page = (
        f'<html><body style="font-family:sans-serif">'
        f'<h2 style="color:{colour}">{html.escape(subject)}</h2>'
        f"<ol>{''.join(html_items)}</ol></body></html>"
    )
    titles = "; ".join(a.title for a in alarms)
    short = f"{subject}: {titles}" if titles else subject
    return Rendered(subject, text, markdown, page, short)


def render(n: Notification, *, max_bytes: int | None = None) -> Rendered:
    """``n`` in its recipient's language; ``max_bytes`` bounds text and markdown
    (UTF-8 bytes) for channels with a size limit."""
    if max_bytes is not None and max_bytes < 16:
        raise ValueError(f"max_bytes must be at least 16, got {max_bytes}")
    if n.kind == "digest":
        return _digest(n, max_bytes)
    return _single(n, max_bytes)


def fit(
    n: Notification,
    rendered: Rendered,
    form: Literal["text", "markdown", "short"],
    max_bytes: int,
) -> str:
    """``rendered``'s ``form`` within ``max_bytes`` UTF-8 bytes: as it is when it
    fits, else rendered again within the budget (a digest drops items, the ack
    link stays), else cut."""
    text: str = getattr(rendered, form)
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    if form != "short":
        text = getattr(render(n, max_bytes=max_bytes), form)
    return truncate_utf8(text, max_bytes)
