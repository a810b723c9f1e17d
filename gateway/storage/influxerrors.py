"""What an InfluxDB-style server's HTTP answer to a write means, as a typed sink error.

Shared by the v1 (:mod:`gateway.storage.influxdb1`) and v2
(:mod:`gateway.storage.influxdb`) sinks:

* 400 (422 for v2) naming bad points (``unable to parse '<line>'``,
  ``partial write``, ``field type conflict``, ``invalid field name``, ``line N:``)
  -> :class:`PointsRejected`, with the indexes of the readings it names when
  they can be found (the writer bisects otherwise). Any other 400 is a
  request problem, not a point problem: :class:`SinkUnavailable`.
* 413 -> :class:`BatchTooLarge`.
* 401 / 403 -> :class:`SinkUnavailable` with a loud "check credentials".
* 429, 5xx, anything else -> :class:`SinkUnavailable` (``Retry-After`` kept).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from gateway.model import Reading
from gateway.storage.sink import (
    BatchTooLarge,
    PointsRejected,
    SeriesCatalog,
    SinkError,
    SinkUnavailable,
)

__all__ = ["bad_indexes", "error_for_status", "lp_type", "parse_retry_after"]

_POINT_ERRORS = (
    "unable to parse",
    "partial write",
    "field type conflict",
    "invalid field name",
    "errors encountered on line",
)
_FIELD_RX = re.compile(
    r'input field "((?:[^"\\]|\\.)*)" on measurement "((?:[^"\\]|\\.)*)"(?: is type (\w+))?'
)
_LINE_RX = re.compile(r"\bline (\d+):")
_PARSE = "unable to parse '"


def lp_type(value: object) -> str:
    """The InfluxDB type name of a value as the line formatter writes it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    return "float"


def _go_unquote(text: str) -> str:
    """Undo Go's %q quoting of a name (close enough to JSON for names)."""
    try:
        out = json.loads(f'"{text}"')
    except ValueError:
        return text.replace('\\"', '"').replace("\\\\", "\\")
    return out if isinstance(out, str) else text


def bad_indexes(
    message: str, lines: Sequence[str], readings: Sequence[Reading], catalog: SeriesCatalog
) -> list[int]:
    """Indexes of the readings an error message names (``lines[i]`` is reading i)."""
    bad: set[int] = set()
    if _PARSE in message:
        by_line: dict[str, list[int]] = {}
        for i, line in enumerate(lines):
            by_line.setdefault(line, []).append(i)
        pos = message.find(_PARSE)
        while pos >= 0:
            start = pos + len(_PARSE)
            end = message.find("': ", start)
            while end >= 0:  # a quote may sit inside the line: try each end in turn
                hit = by_line.get(message[start:end])
                if hit is not None:
                    bad.update(hit)
                    break
                end = message.find("': ", end + 1)
            pos = message.find(_PARSE, start)
    for m in _FIELD_RX.finditer(message):
        field, measurement, typ = _go_unquote(m[1]), _go_unquote(m[2]), m[3]
        for i, r in enumerate(readings):
            k = catalog.key(r.point)
            same_series = k.field == field and k.measurement == measurement
            if same_series and (typ is None or lp_type(r.value) == typ):
                bad.add(i)
    if "on line(s)" in message:  # InfluxDB 2.x / 3.x: "errors encountered on line(s): line 2: ..."
        for m in _LINE_RX.finditer(message):
            n = int(m[1]) - 1
            if 0 <= n < len(readings):
                bad.add(n)
    return sorted(bad)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds only; dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_for_status(
    status: int,
    message: str,
    *,
    server: str,
    retry_after: str | None = None,
    rejectable: Sequence[int] = (400,),
    lines: Sequence[str] = (),
    readings: Sequence[Reading] = (),
    catalog: SeriesCatalog | None = None,
) -> SinkError:
    """The sink error for a failed write answered with ``status`` and ``message``."""
    if status in rejectable and any(p in message for p in _POINT_ERRORS):
        bad = bad_indexes(message, lines, readings, catalog) if catalog is not None else []
        return PointsRejected(f"{server} rejected points: {message}", bad)
    if status == 413:
        return BatchTooLarge(f"{server}: request too large: {message}")
    if status in (401, 403):
        return SinkUnavailable(
            f"{server} refused the credentials (HTTP {status}): check the user name and "
            f"password / token in the site file and its environment variables: {message}"
        )
    return SinkUnavailable(
        f"{server} answered HTTP {status}: {message}", parse_retry_after(retry_after)
    )
