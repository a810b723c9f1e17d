"""Expanding a rule's point patterns against the site's points, once, at start.

The site's points are concrete (``tx1.winding_temp_a``) or, for drivers that
learn them at run time (an MQTT ``+`` subscription), globs themselves
(``*.temperature``). A rule pattern is expanded against the concrete points;
when it may also match run-time points it stays *dynamic*: the engine matches
it once against each new point name it sees, then remembers the answer.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable

from gateway.rules.errors import UnknownPointError

__all__ = ["PointIndex", "is_glob"]

_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(pattern)


class PointIndex:
    """The site's known points, for expanding rule patterns."""

    def __init__(self, known_points: Iterable[str]) -> None:
        concrete: set[str] = set()
        wildcards: set[str] = set()
        for p in known_points:
            (wildcards if is_glob(p) else concrete).add(p)
        self.concrete = sorted(concrete)
        self._concrete = frozenset(concrete)
        self.wildcards = sorted(wildcards)

    def expand(self, rule: str, pattern: str, field: str = "points") -> tuple[list[str], bool]:
        """``(concrete points matched, dynamic)``; raises :class:`UnknownPointError`
        naming ``rule`` and ``pattern`` when the pattern can match no point at all."""
        if not is_glob(pattern):
            if pattern in self._concrete or self._learned(pattern):
                return [pattern], False
            raise UnknownPointError(
                rule,
                f"no driver produces point {pattern!r}{self._hint(pattern)}",
                field=field,
                pattern=pattern,
            )
        matches = fnmatch.filter(self.concrete, pattern)
        dynamic = any(_overlap(pattern, w) for w in self.wildcards)
        if not matches and not dynamic:
            raise UnknownPointError(
                rule,
                f"pattern {pattern!r} matches no point of the site{self._hint(pattern)}",
                field=field,
                pattern=pattern,
            )
        return matches, dynamic

    def _learned(self, point: str) -> bool:
        """A driver announces points of this shape that it learns at run time."""
        return any(fnmatch.fnmatchcase(point, w) for w in self.wildcards)

    def _hint(self, pattern: str) -> str:
        close = difflib.get_close_matches(pattern, self.concrete, n=1)
        return f"; did you mean {close[0]!r}?" if close else ""


def _overlap(a: str, b: str) -> bool:
    """Whether two globs may match a common name: one matches the other's text
    (cheap; covers the usual ``sensor*.temp`` against ``*.temp``)."""
    return fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a)
