"""The gateway's own figures, as readings of the device ``gateway`` and a status file.

Every ``interval`` seconds: bus queue depths, high-water marks, coalesced and
blocked counts per subscription, time-series writer counters and outbox
backlog are published as readings (so they reach the historian like any
point) and written with the health snapshot to ``<data_dir>/status.json``,
which ``gateway status`` reads.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.bus import Bus
from gateway.clock import Clock
from gateway.health import Health
from gateway.model import Reading

__all__ = ["MetricsReporter", "read_status"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


class MetricsReporter:
    def __init__(
        self,
        bus: Bus,
        health: Health,
        clock: Clock,
        status_path: Path,
        extra: Callable[[], dict[str, float | int | bool | str]],
        interval: float = 10.0,
    ) -> None:
        self._bus, self._health, self._clock = bus, health, clock
        self._path = status_path
        self._extra = extra
        self._interval = interval

    def figures(self) -> dict[str, float | int | bool | str]:
        out: dict[str, float | int | bool | str] = {}
        for s in self._bus.stats():
            key = _UNSAFE.sub("_", s.name)
            out[f"bus_{key}_depth"] = s.depth
            out[f"bus_{key}_high_water"] = s.high_water
            out[f"bus_{key}_coalesced"] = s.coalesced
            out[f"bus_{key}_blocked"] = s.blocked_publishes
        out.update(self._extra())
        return out

    async def report_once(self) -> None:
        now = self._clock.time_ns()
        figures = self.figures()
        for name, value in figures.items():
            await self._bus.publish(Reading(f"gateway.{name}", value, now))
        status: dict[str, Any] = {"ts": now, "figures": figures, **self._health.snapshot()}
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status, indent=1, ensure_ascii=False))
        os.replace(tmp, self._path)

    async def run(self) -> None:
        while True:
            await self.report_once()
            await self._clock.sleep(self._interval)


def read_status(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
