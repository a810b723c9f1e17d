"""The demo's terminal board: latest value of every point, recent events."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gateway.bus import Subscription
from gateway.clock import Clock
from gateway.driver import PointSpec
from gateway.i18n import t
from gateway.model import Alarm, Event, Reading, split_point, to_datetime

__all__ = ["LiveBoard"]


class LiveBoard:
    def __init__(
        self,
        sub: Subscription,
        clock: Clock,
        locale: str,
        timezone: str,
        points: Iterable[PointSpec],
        device_names: dict[str, str],
    ) -> None:
        self._sub = sub
        self._clock = clock
        self._locale = locale
        self._tz = ZoneInfo(timezone)
        # Exact points first; a driver that learns devices at run time declares '*.name'.
        self._units = {p.point: p.unit for p in points if p.unit}
        self._names = device_names
        self.latest: dict[str, Reading] = {}
        self.events: deque[Event | Alarm] = deque(maxlen=8)

    def pull(self) -> None:
        for msg in self._sub.get_nowait(100_000):
            if isinstance(msg, Reading):
                if not msg.point.startswith("gateway."):
                    self.latest[msg.point] = msg
            elif isinstance(msg, Event | Alarm):
                self.events.append(msg)

    def unit(self, point: str) -> str:
        _, name = split_point(point)
        return self._units.get(point) or self._units.get(f"*.{name}", "")

    def render(self, title: str, footer: str) -> Group:
        loc = self._locale
        table = Table(title=title, expand=True)
        table.add_column(t("demo.col.device", loc))
        table.add_column(t("demo.col.point", loc))
        table.add_column(t("demo.col.value", loc), justify="right")
        table.add_column(t("demo.col.unit", loc))
        table.add_column(t("demo.col.age", loc), justify="right")
        now = self._clock.time_ns()
        for point in sorted(self.latest):
            r = self.latest[point]
            device = split_point(point)[0]
            if isinstance(r.value, float):
                value = f"{r.value:.3f}".rstrip("0").rstrip(".")
            else:
                value = str(r.value)
            age = f"{(now - r.ts) / 1e9:.0f} s"
            table.add_row(self._names.get(device, ""), point, value, self.unit(point), age)
        lines = [Text(t("demo.events", loc), style="bold")]
        for e in reversed(self.events):
            when = to_datetime(e.ts).astimezone(self._tz).strftime("%H:%M:%S")
            kind = e.type if isinstance(e, Event) else f"alarm.{e.state.value}"
            detail = dict(e.data) if e.data else ""
            lines.append(Text(f"{when}  {kind:<18} {e.source}  {detail}"))
        return Group(table, *lines, Text(footer, style="dim"))
