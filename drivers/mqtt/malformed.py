"""Bad messages, reported without noise.

The first bad message of a topic is logged at WARNING, later ones at DEBUG,
and a one-line summary (WARNING) per period says how many more came. Each
topic gets at most one ``mqtt.malformed`` event per ``event_interval_s`` of
the injected clock, so a sensor gone mad cannot flood the bus.
"""

from __future__ import annotations

import logging
from collections import Counter

from drivers.mqtt.payload import excerpt
from gateway.clock import Clock
from gateway.model import Event

__all__ = ["MALFORMED_EVENT", "MalformedReporter"]

MALFORMED_EVENT = "mqtt.malformed"


class MalformedReporter:
    def __init__(
        self,
        source: str,
        clock: Clock,
        log: logging.Logger,
        *,
        event_interval_s: float = 60.0,
        max_topics: int = 10_000,
    ) -> None:
        self.source = source
        self.clock = clock
        self.log = log
        self.event_interval_s = event_interval_s
        self.max_topics = max_topics
        self.total = 0
        self.events = 0
        self._warned: set[str] = set()
        self._last_event: dict[str, float] = {}  # topic -> monotonic time of its last event
        self._window: Counter[str] = Counter()  # since the last summary, by topic

    def note(self, topic: str, subscription: str, reason: str, payload: bytes) -> Event | None:
        """Record one bad message; returns the event to emit, if one is due."""
        self.total += 1
        self._window[topic] += 1
        if topic not in self._warned and len(self._warned) < self.max_topics:
            self._warned.add(topic)
            self.log.warning(
                "malformed message on %s (subscription %s): %s; payload %r "
                "(further ones on this topic are logged at DEBUG)",
                topic,
                subscription,
                reason,
                excerpt(payload),
            )
        else:
            self.log.debug("malformed message on %s: %s", topic, reason)
        now = self.clock.monotonic()
        last = self._last_event.get(topic)
        if last is not None and now - last < self.event_interval_s:
            return None
        if last is None and len(self._last_event) >= self.max_topics:
            self._prune(now)
            if len(self._last_event) >= self.max_topics:
                return None  # a flood of distinct bad topics: the summary tells
        self._last_event[topic] = now
        self.events += 1
        return Event(
            MALFORMED_EVENT,
            self.source,
            self.clock.time_ns(),
            {
                "topic": topic,
                "subscription": subscription,
                "reason": reason,
                "payload": excerpt(payload),
            },
        )

    def summary(self) -> str | None:
        """Log (and return) one line about the bad messages since the last call."""
        if not self._window:
            return None
        n = sum(self._window.values())
        top = ", ".join(f"{t} ({c})" for t, c in self._window.most_common(3))
        line = (
            f"{n} malformed message(s) on {len(self._window)} topic(s) since the last "
            f"summary; most on {top}; {self.total} in all"
        )
        self.log.warning("%s", line)
        self._window.clear()
        return line

    def _prune(self, now: float) -> None:
        old = [t for t, at in self._last_event.items() if now - at >= self.event_interval_s]
        for t in old:
            del self._last_event[t]
