"""The demo's terminal board: latest value of every point, recent events."""

from __future__ import annotations

from collections import deque

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gateway.bus import Subscription
from gateway.clock import Clock
from gateway.i18n import t
from gateway.model import Alarm, Event, Reading, to_datetime

__all__ = ["LiveBoard"]


class LiveBoard:
    def __init__(self, sub: Subscription, clock: Clock, locale: str, units: dict[str, str]) -> None:
        self._sub = sub
        self._clock = clock
        self._locale = locale
        self._units = units
        self.latest: dict[str, Reading] = {}
        self.events: deque[Event | Alarm] = deque(maxlen=8)

    def pull(self) -> None:
        for msg in self._sub.get_nowait(100_000):
            if isinstance(msg, Reading):
                if not msg.point.startswith("gateway."):
                    self.latest[msg.point] = msg
            elif isinstance(msg, Event | Alarm):
                self.events.append(msg)

    def render(self, title: str, footer: str) -> Group:
        loc = self._locale
        table = Table(title=title, expand=True)
        table.add_column(t("demo.col.point", loc))
        table.add_column(t("demo.col.value", loc), justify="right")
        table.add_column(t("demo.col.unit", loc))
        table.add_column(t("demo.col.age", loc), justify="right")
        now = self._clock.time_ns()
        for point in sorted(self.latest):
            r = self.latest[point]
            value = (
                f"{r.value:.3f}".rstrip("0").rstrip(".")
                if isinstance(r.value, float)
                else str(r.value)
            )
            table.add_row(point, value, self._units.get(point, ""), f"{(now - r.ts) / 1e9:.0f} s")
        lines = [Text(t("demo.events", loc), style="bold")]
        for e in reversed(self.events):
            when = to_datetime(e.ts).strftime("%H:%M:%S")
            kind = e.type if isinstance(e, Event) else f"alarm.{e.state.value}"
            lines.append(Text(f"{when}  {kind:<18} {e.source}  {dict(e.data) if e.data else ''}"))
        return Group(table, *lines, Text(footer, style="dim"))
