"""The contract between the time-series writer and a sink.

The writer owns buffering, the outbox and retries; a sink only sends one
batch and says, with a typed error, what went wrong:

* :class:`SinkUnavailable` - try the same batch again later (down, 5xx, 429);
  ``retry_after`` is the server's hint, if it gave one.
* :class:`BatchTooLarge` - the server refused the size (413): split and resend.
* :class:`PointsRejected` - the server refused the content as malformed (400).
  ``bad`` holds the indexes of the offending points when the server named
  them; the writer bisects otherwise, quarantines the culprits and sends the
  rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.model import Reading

__all__ = [
    "BatchTooLarge",
    "PointsRejected",
    "SeriesCatalog",
    "SeriesKey",
    "Sink",
    "SinkError",
    "SinkUnavailable",
]


class SinkError(Exception):
    """Base of every sink failure."""


class SinkUnavailable(SinkError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BatchTooLarge(SinkError):
    pass


class PointsRejected(SinkError):
    def __init__(self, message: str, bad: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.bad = tuple(bad)


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Where one point is stored: measurement = device kind, field = point name."""

    measurement: str
    tags: tuple[tuple[str, str], ...]  # sorted by key
    field: str


class SeriesCatalog:
    """Maps point names to series keys, from the site's devices (cached)."""

    def __init__(
        self,
        site: str,
        device_kinds: dict[str, str],
        device_tags: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.site = site
        self._kinds = device_kinds
        self._tags = device_tags or {}
        self._cache: dict[str, SeriesKey] = {}

    def key(self, point: str) -> SeriesKey:
        k = self._cache.get(point)
        if k is None:
            device, _, name = point.partition(".")
            kind = self._kinds.get(device, "other")
            tags = {**self._tags.get(device, {}), "site": self.site, "device": device, "kind": kind}
            k = SeriesKey(kind, tuple(sorted(tags.items())), name)
            self._cache[point] = k
        return k


class Sink(Protocol):
    name: str

    async def start(self) -> None:
        """Open connections, create the database if configured. May raise SinkUnavailable."""

    async def write(self, readings: Sequence[Reading]) -> None:
        """Store ``readings`` (in order) or raise a :class:`SinkError`."""

    async def close(self) -> None: ...
