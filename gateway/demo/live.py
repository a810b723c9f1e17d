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

MAX_VALUES = 5  # numbers shown per device
MAX_FLAGS = 4  # flags that are on (running, alarm_output, ...) shown per device


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
        points = list(points)
        self._units = {p.point: p.unit for p in points if p.unit}
        self._rank = {p.point: i for i, p in enumerate(points)}  # declaration order
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

    def _order(self, point: str) -> tuple[str, int, str]:
        return (split_point(point)[0], self._rank.get(point, len(self._rank)), point)

    @staticmethod
    def _value(r: Reading) -> str:
        if isinstance(r.value, float):
            return f"{r.value:.2f}".rstrip("0").rstrip(".")
        return str(r.value)

    def unit(self, point: str) -> str:
        _, name = split_point(point)
        return self._units.get(point) or self._units.get(f"*.{name}", "")

    def render(self, title: str, footer: str) -> Group:
        """One row per device: its first numbers, then the flags that are on."""
        loc = self._locale
        table = Table(title=title, expand=True)
        table.add_column(t("demo.col.device", loc), no_wrap=True)
        table.add_column(t("demo.col.value", loc), ratio=1)
        table.add_column(t("demo.col.age", loc), justify="right")
        now = self._clock.time_ns()
        by_device: dict[str, list[Reading]] = {}
        for point in sorted(self.latest, key=self._order):
            by_device.setdefault(split_point(point)[0], []).append(self.latest[point])
        for device, readings in by_device.items():
            numbers = [r for r in readings if not isinstance(r.value, bool)][:MAX_VALUES]
            flags = [r for r in readings if r.value is True][:MAX_FLAGS]
            shown = Text()
            for r in numbers:
                shown.append(f"{split_point(r.point)[1]} {self._value(r)}{self.unit(r.point)}  ")
            for r in flags:
                shown.append(f"{split_point(r.point)[1]}  ", style="bold yellow")
            newest = max(r.ts for r in readings)
            name = self._names.get(device, "")
            label = f"{name} ({device})" if name else device
            table.add_row(label, shown, f"{(now - newest) / 1e9:.0f} s")
        lines = [Text(t("demo.events", loc), style="bold")]
        for e in reversed(self.events):
            when = to_datetime(e.ts).astimezone(self._tz).strftime("%H:%M:%S")
            kind = e.type if isinstance(e, Event) else f"alarm.{e.state.value}"
            detail = dict(e.data) if e.data else ""
            lines.append(Text(f"{when}  {kind:<18} {e.source}  {detail}"))
        return Group(table, *lines, Text(footer, style="dim"))
