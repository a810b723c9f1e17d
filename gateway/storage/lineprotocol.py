"""Readings as InfluxDB line protocol, fast.

One line per reading: ``measurement,tags field=value timestamp`` where the
measurement is the device kind, the tags are the sorted series tags of
:class:`~gateway.storage.sink.SeriesCatalog` (site, device, kind and the
device's own tags), the field is the point name and the timestamp is in ns.
The escaped ``measurement,tags field=`` prefix is computed once per point.

Values:

* ``int`` and ``float`` are both written as floats (no ``i`` suffix), so a
  point that reports ``1`` one moment and ``1.5`` the next never causes a
  field-type conflict. Integers beyond 2**53 lose precision.
* ``bool`` is ``true`` / ``false``; ``str`` is quoted, with ``\\`` and ``"``
  escaped.
* A newline (carriage return) inside a string value is written as the two
  characters ``\\n`` (``\\r``), and stored as those two characters:
  VictoriaMetrics splits a body at every raw newline, even inside quotes, so a
  raw one would break the line in two.

Rejected readings (not written, returned with a reason so that the caller
can quarantine them): NaN and infinities, integers too large for a float,
timestamps outside InfluxDB's range, and names that line protocol cannot
carry. Names are escaped per the spec (measurement: comma and space; tag
keys, tag values and field keys: comma, equals sign and space). A backslash
in a name is written as is; InfluxDB 1.x and VictoriaMetrics disagree on
``\\\\`` in names and neither can read a backslash before a delimiter or at the
end, so a name with a backslash before ``\\``, ``,``, ``=``, a space or at its
end is rejected, as is one holding a newline, an empty measurement or field,
a measurement starting with ``#`` (a comment line) and the reserved keys
``time``, ``_field`` and ``_measurement``. Tags with an empty key or value
are left out (InfluxDB refuses them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.model import Reading
from gateway.storage.sink import PointsRejected, SeriesCatalog

__all__ = [
    "Encoded",
    "LineFormatter",
    "LineProtocolError",
    "PreparedLines",
    "Reject",
    "escape_key",
    "escape_measurement",
    "escape_string",
    "format_value",
]

MIN_TS = -9_223_372_036_854_775_806  # InfluxDB's MinNanoTime
MAX_TS = 9_223_372_036_854_775_806  # InfluxDB's MaxNanoTime
_RESERVED_KEYS = frozenset({"time", "_field", "_measurement"})
_BAD_BACKSLASH = re.compile(r"\\(?:[\\,= ]|$)")
_INF = math.inf


class LineProtocolError(ValueError):
    """A reading cannot be written as line protocol (the message says why)."""


@dataclass(frozen=True, slots=True)
class Reject:
    index: int  # position of the reading in the batch
    reason: str


@dataclass(frozen=True, slots=True)
class Encoded:
    """A formatted batch: ``lines[i]`` is the i-th accepted reading."""

    lines: list[str]
    index: list[int]  # index[i]: position in the batch of the reading on line i
    rejects: list[Reject]

    @property
    def body(self) -> bytes:
        return "\n".join(self.lines).encode()


def _check_name(what: str, name: str) -> None:
    if "\n" in name or "\r" in name:
        raise LineProtocolError(f"{what} {name!r} holds a newline")
    if _BAD_BACKSLASH.search(name):
        raise LineProtocolError(
            f"{what} {name!r} has a backslash before a delimiter, another backslash "
            "or at its end, which line protocol cannot carry"
        )


def escape_measurement(name: str) -> str:
    _check_name("measurement", name)
    if not name:
        raise LineProtocolError("empty measurement")
    if name.startswith("#"):
        raise LineProtocolError(f"measurement {name!r} starts with '#' (a comment line)")
    return name.replace(",", "\\,").replace(" ", "\\ ")


def escape_key(what: str, name: str) -> str:
    """Escape a tag key, tag value or field key."""
    _check_name(what, name)
    return name.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def escape_string(value: str) -> str:
    """A string field value, quotes included."""
    if "\\" in value or '"' in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return f'"{value}"'


def format_value(value: object) -> str:
    """The line-protocol text of a field value, or :class:`LineProtocolError`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value or value == _INF or value == -_INF:
            raise LineProtocolError(f"{value!r} cannot be stored")
        return repr(float(value))
    if isinstance(value, int):
        try:
            return repr(float(value))
        except OverflowError:
            raise LineProtocolError(f"integer {value} is too large to store as a float") from None
    if isinstance(value, str):
        return escape_string(value)
    raise LineProtocolError(f"unsupported value type {type(value).__name__}")


class LineFormatter:
    """Formats readings of one site; caches the escaped prefix of each point."""

    def __init__(self, catalog: SeriesCatalog) -> None:
        self.catalog = catalog
        self._prefix: dict[str, str] = {}
        self._bad: dict[str, str] = {}  # point -> why its name cannot be written

    def prefix(self, point: str) -> str:
        """``measurement,tags field=`` for ``point`` (cached), or LineProtocolError."""
        p = self._prefix.get(point)
        if p is not None:
            return p
        bad = self._bad.get(point)
        if bad is not None:
            raise LineProtocolError(bad)
        try:
            p = self._build_prefix(point)
        except LineProtocolError as e:
            self._bad[point] = f"point {point!r}: {e}"
            raise LineProtocolError(self._bad[point]) from None
        self._prefix[point] = p
        return p

    def _build_prefix(self, point: str) -> str:
        key = self.catalog.key(point)
        parts = [escape_measurement(key.measurement)]
        for k, v in key.tags:
            if not k or not v:
                continue
            if k in _RESERVED_KEYS:
                raise LineProtocolError(f"tag key {k!r} is reserved")
            parts.append(f"{escape_key('tag key', k)}={escape_key('tag value', v)}")
        if not key.field:
            raise LineProtocolError("empty field name")
        if key.field in _RESERVED_KEYS:
            raise LineProtocolError(f"field name {key.field!r} is reserved")
        return f"{','.join(parts)} {escape_key('field', key.field)}="

    def line(self, reading: Reading) -> str:
        """One line (no newline), or :class:`LineProtocolError`."""
        ts = reading.ts
        if not isinstance(ts, int) or isinstance(ts, bool):
            raise LineProtocolError(f"timestamp {ts!r} is not an integer of ns")
        if not MIN_TS <= ts <= MAX_TS:
            raise LineProtocolError(f"timestamp {ts} is outside InfluxDB's range")
        return f"{self.prefix(reading.point)}{format_value(reading.value)} {ts}"

    def format(self, readings: Sequence[Reading]) -> Encoded:
        """Format a batch; unwritable readings come back in ``rejects``."""
        lines: list[str] = []
        index: list[int] = []
        rejects: list[Reject] = []
        prefixes = self._prefix
        append = lines.append
        for i, r in enumerate(readings):
            # Fast path for the common valid cases; everything else goes through line().
            p = prefixes.get(r.point)
            v = r.value
            ts = r.ts
            if p is not None and type(ts) is int and MIN_TS <= ts <= MAX_TS:
                if type(v) is float and v - v == 0.0:  # finite
                    append(f"{p}{v!r} {ts}")
                    index.append(i)
                    continue
                if type(v) is str:
                    append(f"{p}{escape_string(v)} {ts}")
                    index.append(i)
                    continue
            try:
                append(self.line(r))
            except LineProtocolError as e:
                rejects.append(Reject(i, str(e)))
                continue
            index.append(i)
        return Encoded(lines, index, rejects)


class PreparedLines:
    """Line protocol for an InfluxDB sink's next write, formatted ahead of time.

    The writer calls :meth:`prepare` while the previous request waits on the
    server; :meth:`take` returns the body for the batch being written (formatting
    it now if it was not prepared) or raises :class:`PointsRejected` naming the
    readings that cannot be written as line protocol, so none of them is sent.
    """

    def __init__(self, catalog: SeriesCatalog) -> None:
        self.formatter = LineFormatter(catalog)
        self._ahead: tuple[Sequence[Reading], Encoded] | None = None

    def prepare(self, readings: Sequence[Reading]) -> None:
        self._ahead = (readings, self.formatter.format(readings))

    def take(self, readings: Sequence[Reading]) -> Encoded:
        ahead, self._ahead = self._ahead, None
        enc = ahead[1] if ahead is not None and ahead[0] is readings else None
        if enc is None:
            enc = self.formatter.format(readings)
        if enc.rejects:
            first = enc.rejects[0]
            raise PointsRejected(
                f"{len(enc.rejects)} reading(s) cannot be written as line protocol, "
                f"first #{first.index}: {first.reason}",
                [r.index for r in enc.rejects],
            )
        return enc
