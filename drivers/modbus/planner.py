"""Request planner: coalesce the points of one Modbus device into few reads.

Pure computation, no I/O and no pymodbus. The driver hands in the points of
one device (one unit id) and the device's limits (from its ``workarounds:``
block) and gets back a plan: a tuple of :class:`Request`, each naming the
table, the start address, the count, the poll interval, and the points it
serves with their offset inside the response.

Rules:

- Points are grouped by ``(interval, table)``. A point is read at its own
  interval and only there: a slow point is never served by a fast request,
  even when it lies inside the fast request's span. The driver then needs
  no per-point throttling (a point's interval is both its read and publish
  rate); the price is at most one extra request per slow group per slow
  interval, which is negligible.
- Inside a group, points are sorted by address and packed greedily: the
  next point joins the current request when the unused registers (bits)
  between them are at most ``max_gap_registers`` (``max_gap_bits``) and the
  request stays within ``max_registers`` (``max_bits``); otherwise a new
  request starts. Overlapping points and points sharing a register (bits of
  one status word) join at no cost. A point is never split across requests,
  and each point is served by exactly one request.
- ``read_coils_from_zero``: some devices only answer coil reads starting at
  address 0, so each coil group becomes one request from 0 to the end of
  its highest coil (it must fit in ``max_bits``).
- Protocol limits: 125 registers per holding/input read, 2000 bits per
  coil/discrete read, addresses 0..65535. A device may set lower limits.

:func:`describe` renders a plan as text for ``gateway check`` and the README.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ADDRESS_SPACE",
    "PROTOCOL_MAX_BITS",
    "PROTOCOL_MAX_REGISTERS",
    "AddressRangeError",
    "InvalidLimitsError",
    "InvalidPointError",
    "Plan",
    "PlanError",
    "PlanLimits",
    "PlanPoint",
    "PointTooWideError",
    "Request",
    "Served",
    "Table",
    "build_plan",
    "describe",
]

PROTOCOL_MAX_REGISTERS = 125  # function codes 3 and 4
PROTOCOL_MAX_BITS = 2000  # function codes 1 and 2
ADDRESS_SPACE = 65536  # addresses 0..65535


class PlanError(ValueError):
    """Base class: the points or limits cannot be planned."""


class InvalidLimitsError(PlanError):
    """A limit (max registers, max bits, max gap) is out of range."""


class InvalidPointError(PlanError):
    """A point cannot be read as given (bad count, interval or duplicate name)."""


class AddressRangeError(InvalidPointError):
    """A point's address or span falls outside what can be read."""


class PointTooWideError(InvalidPointError):
    """A point needs more registers (bits) than one request may carry."""


class Table(StrEnum):
    """The four Modbus data tables."""

    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE = "discrete"

    @property
    def is_bit(self) -> bool:
        """True for coils and discrete inputs (counted in bits)."""
        return self in (Table.COIL, Table.DISCRETE)

    @property
    def unit(self) -> str:
        """Unit of ``count`` in this table, for messages and :func:`describe`."""
        return "bits" if self.is_bit else "regs"


_TABLE_ORDER = {table: i for i, table in enumerate(Table)}


@dataclass(frozen=True, slots=True)
class PlanPoint:
    """One point of a device as the planner sees it.

    ``count`` is in registers for holding/input (1 for 16-bit types and bits
    of a register, 2 for 32-bit, 4 for 64-bit, N for strings) and in bits for
    coils/discrete inputs. ``interval`` is the poll interval in seconds.
    Validated by :func:`build_plan`, not here.
    """

    name: str
    table: Table
    address: int
    count: int = 1
    interval: float = 1.0

    @property
    def end(self) -> int:
        """First address after the point."""
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """Per-device limits; defaults are the protocol limits and a small gap."""

    max_registers: int = PROTOCOL_MAX_REGISTERS
    max_bits: int = PROTOCOL_MAX_BITS
    max_gap_registers: int = 8
    max_gap_bits: int = 16
    read_coils_from_zero: bool = False

    def __post_init__(self) -> None:
        checks = (
            ("max_registers", self.max_registers, 1, PROTOCOL_MAX_REGISTERS),
            ("max_bits", self.max_bits, 1, PROTOCOL_MAX_BITS),
            ("max_gap_registers", self.max_gap_registers, 0, PROTOCOL_MAX_REGISTERS),
            ("max_gap_bits", self.max_gap_bits, 0, PROTOCOL_MAX_BITS),
        )
        for field, value, low, high in checks:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidLimitsError(
                    f"{field} must be an integer from {low} to {high}, got {value!r}"
                )

    def max_count(self, table: Table) -> int:
        """Largest request for ``table``."""
        return self.max_bits if table.is_bit else self.max_registers

    def max_gap(self, table: Table) -> int:
        """Largest run of unused addresses read across in ``table``."""
        return self.max_gap_bits if table.is_bit else self.max_gap_registers


@dataclass(frozen=True, slots=True)
class Served:
    """A point served by a request: its value starts at ``offset`` in the response."""

    name: str
    offset: int
    count: int


@dataclass(frozen=True, slots=True)
class Request:
    """One read: ``count`` registers (bits) of ``table`` from ``start``."""

    table: Table
    start: int
    count: int
    interval: float
    points: tuple[Served, ...]

    @property
    def end(self) -> int:
        """First address after the request."""
        return self.start + self.count


Plan = tuple[Request, ...]


def build_plan(points: Iterable[PlanPoint], limits: PlanLimits | None = None) -> Plan:
    """Plan the reads for the points of one device.

    Raises a :class:`PlanError` subclass naming the point and the field on
    the first bad point. Requests are ordered by interval, table, start.
    """
    limits = limits or PlanLimits()
    groups: dict[tuple[float, Table], list[PlanPoint]] = {}
    seen: set[str] = set()
    for point in points:
        _validate(point, limits)
        if point.name in seen:
            raise InvalidPointError(f"point {point.name!r} is listed twice; names must be unique")
        seen.add(point.name)
        groups.setdefault((float(point.interval), point.table), []).append(point)

    requests: list[Request] = []
    for (interval, table), members in sorted(
        groups.items(), key=lambda kv: (kv[0][0], _TABLE_ORDER[kv[0][1]])
    ):
        members.sort(key=lambda p: (p.address, p.end))  # stable: ties keep input order
        if table is Table.COIL and limits.read_coils_from_zero:
            runs = [members]
            start_at_zero = True
        else:
            runs = _pack(members, limits.max_count(table), limits.max_gap(table))
            start_at_zero = False
        for run in runs:
            start = 0 if start_at_zero else run[0].address
            end = max(p.end for p in run)
            served = tuple(Served(p.name, p.address - start, p.count) for p in run)
            requests.append(Request(table, start, end - start, interval, served))
    return tuple(requests)


def _pack(members: Sequence[PlanPoint], max_count: int, max_gap: int) -> list[list[PlanPoint]]:
    """Greedy packing of address-sorted points into runs within the limits."""
    runs: list[list[PlanPoint]] = []
    current: list[PlanPoint] = []
    start = end = 0
    for point in members:
        if current:
            gap = point.address - end
            if gap <= max_gap and max(end, point.end) - start <= max_count:
                current.append(point)
                end = max(end, point.end)
                continue
            runs.append(current)
        current = [point]
        start, end = point.address, point.end
    if current:
        runs.append(current)
    return runs


def _validate(point: PlanPoint, limits: PlanLimits) -> None:
    where = f"point {point.name!r} ({point.table} {point.address})"
    if not isinstance(point.table, Table):
        raise InvalidPointError(
            f"point {point.name!r}: table must be one of "
            f"{', '.join(t.value for t in Table)}, got {point.table!r}"
        )
    if not isinstance(point.count, int) or point.count < 1:
        raise InvalidPointError(f"{where}: count must be a positive integer, got {point.count!r}")
    if not isinstance(point.interval, int | float) or not (
        math.isfinite(point.interval) and point.interval > 0
    ):
        raise InvalidPointError(
            f"{where}: interval must be a positive number of seconds, got {point.interval!r}"
        )
    if not isinstance(point.address, int) or not 0 <= point.address < ADDRESS_SPACE:
        raise AddressRangeError(
            f"point {point.name!r}: address must be from 0 to {ADDRESS_SPACE - 1} "
            f"(0-based), got {point.address!r}"
        )
    if point.end > ADDRESS_SPACE:
        raise AddressRangeError(
            f"{where}: {point.count} {point.table.unit} from address {point.address} run past "
            f"the last address {ADDRESS_SPACE - 1}"
        )
    limit = limits.max_count(point.table)
    if point.count > limit:
        raise PointTooWideError(
            f"{where}: needs {point.count} {point.table.unit} but one request carries at most "
            f"{limit}; shorten the point (e.g. a string) or split it into several points"
        )
    if point.table is Table.COIL and limits.read_coils_from_zero and point.end > limit:
        raise AddressRangeError(
            f"{where}: with read_coils_from_zero a coil read starts at 0 and carries at most "
            f"{limit} bits, so coils at {limit} and above cannot be read"
        )


def _fmt_interval(seconds: float) -> str:
    return f"{seconds:g} s"


def describe(plan: Sequence[Request], width: int = 100) -> str:
    """Render a plan as readable text, one request per paragraph.

    ``holding 0-41 (42 regs) every 1 s: tx1.winding_temp_a@0, ...``: the span
    is inclusive, ``@n`` is the point's offset in the response.
    """
    registers = sum(r.count for r in plan if not r.table.is_bit)
    bits = sum(r.count for r in plan if r.table.is_bit)
    lines = [f"{len(plan)} requests ({registers} registers, {bits} bits)"]
    for request in plan:
        head = (
            f"{request.table} {request.start}-{request.end - 1} "
            f"({request.count} {request.table.unit}) every {_fmt_interval(request.interval)}: "
        )
        body = ", ".join(f"{s.name}@{s.offset}" for s in request.points)
        lines.extend(
            textwrap.wrap(
                head + body,
                width=width,
                subsequent_indent="    ",
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines)
