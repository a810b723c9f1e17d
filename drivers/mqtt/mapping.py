"""Topic matching and name templates, compiled once.

A topic filter (``site/+/sensors/#``) is split into levels; ``+`` matches
one level, ``#`` the rest (including nothing). Templates name devices,
points and event sources from topic levels: ``"{1}"`` is topic level 1,
counting from 0, so in ``tele/pm1/SENSOR`` level 0 is ``tele`` and level 1
is ``pm1``. A template may mix text and levels (``"meter_{2}"``) and may
only refer to levels that are ``+`` in the subscription's filter, which is
checked when the config is loaded.

:class:`Router` finds the subscriptions a topic belongs to and renders
their names once per topic (cached), so a message costs one dict lookup
before its payload is decoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "ID_PATTERN",
    "Route",
    "Router",
    "Template",
    "TopicFilter",
    "validate_topic_name",
]

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
_PLACEHOLDER = re.compile(r"\{(\d+)\}")

S = TypeVar("S")


class TopicFilter:
    """A validated MQTT subscription filter. Raises :class:`ValueError` if bad."""

    __slots__ = ("_levels", "_multi", "plus_levels", "text")

    def __init__(self, text: str) -> None:
        if not text:
            raise ValueError("topic filter is empty")
        if "\x00" in text:
            raise ValueError("topic filter contains a NUL character")
        levels = text.split("/")
        for i, level in enumerate(levels):
            if ("+" in level or "#" in level) and len(level) > 1:
                raise ValueError(
                    f"topic filter {text!r}: '+' and '#' must fill a whole level "
                    f"(level {i} is {level!r})"
                )
            if level == "#" and i != len(levels) - 1:
                raise ValueError(f"topic filter {text!r}: '#' must be the last level")
        self.text = text
        self._multi = levels[-1] == "#"
        self._levels = tuple(levels[:-1] if self._multi else levels)
        self.plus_levels = frozenset(i for i, level in enumerate(levels) if level == "+")

    def __repr__(self) -> str:
        return f"TopicFilter({self.text!r})"

    def match(self, levels: Sequence[str]) -> bool:
        """Whether a topic, split on '/', matches this filter."""
        mine = self._levels
        n = len(mine)
        if len(levels) < n or (len(levels) > n and not self._multi):
            return False
        if levels and levels[0].startswith("$") and (mine[0] == "+" if n else self._multi):
            return False  # a wildcard never matches a $SYS-style level 0
        for want, got in zip(mine, levels, strict=False):
            if want != got and want != "+":
                return False
        return True


class Template:
    """A name built from literal text and topic levels: ``"meter_{2}"``."""

    __slots__ = ("_parts", "levels", "literal", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        parts: list[str | int] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            if m.start() > pos:
                parts.append(text[pos : m.start()])
            parts.append(int(m.group(1)))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        for p in parts:
            if isinstance(p, str) and ("{" in p or "}" in p):
                raise ValueError(
                    f"template {text!r}: braces are only for topic levels, like '{{1}}'"
                )
        self._parts = tuple(parts)
        self.levels = frozenset(p for p in parts if isinstance(p, int))
        self.literal = text if not self.levels else None

    def __repr__(self) -> str:
        return f"Template({self.text!r})"

    def check(self, topic: TopicFilter, what: str) -> None:
        """Raise :class:`ValueError` unless every level is a '+' level of ``topic``."""
        bad = sorted(self.levels - topic.plus_levels)
        if bad:
            plus = ", ".join(f"{{{i}}}" for i in sorted(topic.plus_levels)) or "none"
            raise ValueError(
                f"{what} {self.text!r} refers to topic level {bad[0]}, which is not a '+' "
                f"level of {topic.text!r} (levels count from 0; usable here: {plus})"
            )
        if self.literal is not None and not ID_PATTERN.match(self.literal):
            raise ValueError(f"{what} {self.text!r} may hold only letters, digits, '_' and '-'")
        for p in self._parts:
            if isinstance(p, str) and not ID_PATTERN.match(p):
                raise ValueError(
                    f"{what} {self.text!r}: the text around levels may hold only letters, "
                    "digits, '_' and '-'"
                )

    def render(self, levels: Sequence[str]) -> str:
        """The name for one topic; raises :class:`ValueError` if it is not a valid id."""
        if self.literal is not None:
            return self.literal
        parts = self._parts
        if len(parts) == 1:
            name = levels[parts[0]]  # type: ignore[index]
        else:
            name = "".join(p if isinstance(p, str) else levels[p] for p in parts)
        if not ID_PATTERN.match(name):
            raise ValueError(
                f"{self.text!r} gives {name!r}, which is not a valid name "
                "(letters, digits, '_' and '-' only)"
            )
        return name


def validate_topic_name(text: str, what: str = "topic") -> str:
    """A topic to publish to (no wildcards, no empty levels)."""
    if not text or "+" in text or "#" in text or "\x00" in text:
        raise ValueError(f"{what} {text!r} must be non-empty, without '+', '#' or NUL")
    if text.startswith("/") or text.endswith("/") or "//" in text:
        raise ValueError(f"{what} {text!r} must not have empty levels")
    return text


@dataclass(frozen=True, slots=True)
class Route(Generic[S]):
    """One subscription that a topic matched, with its names rendered."""

    sub: S
    levels: tuple[str, ...]
    device: str
    points: tuple[str, ...]  # 'device.point', one per value mapping, in order
    source: str  # the event source ("" if the subscription maps no event)
    last_level: str


class Router(Generic[S]):
    """Topic -> routes, with a bounded cache of rendered routes per topic.

    ``entries`` pairs each subscription object with its filter and the
    templates of its device, its points and its event source (or None).
    A topic whose names cannot be rendered yields the error text instead.
    """

    def __init__(
        self,
        entries: Iterable[tuple[S, TopicFilter, Template, Sequence[Template], Template | None]],
        cache_size: int = 50_000,
    ) -> None:
        self._entries = tuple(entries)
        self._cache: dict[str, tuple[tuple[Route[S], ...], tuple[tuple[S, str], ...]]] = {}
        self._cache_size = cache_size

    @property
    def subjects(self) -> tuple[S, ...]:
        """The subscription objects, in the order given."""
        return tuple(e[0] for e in self._entries)

    def routes(self, topic: str) -> tuple[tuple[Route[S], ...], tuple[tuple[S, str], ...]]:
        """(matching routes, [(subscription, why its names failed)]) for ``topic``."""
        hit = self._cache.get(topic)
        if hit is not None:
            return hit
        levels = tuple(topic.split("/"))
        ok: list[Route[S]] = []
        bad: list[tuple[S, str]] = []
        for sub, flt, device, points, source in self._entries:
            if not flt.match(levels):
                continue
            try:
                dev = device.render(levels)
                ok.append(
                    Route(
                        sub,
                        levels,
                        dev,
                        tuple(f"{dev}.{p.render(levels)}" for p in points),
                        source.render(levels) if source is not None else "",
                        levels[-1],
                    )
                )
            except ValueError as e:
                bad.append((sub, str(e)))
        result = (tuple(ok), tuple(bad))
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # a flood of distinct topics: start over
        self._cache[topic] = result
        return result
