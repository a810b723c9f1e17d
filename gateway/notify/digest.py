"""Grouping messages per person during an alarm flood.

When a control room is in flood (ISA-18.2: more alarms than a person can
handle), one message per alarm per person buries the one that matters. The
escalator hands such messages to a :class:`DigestBuffer` instead of sending
them: the first message for a person opens a window of ``window_s``; when it
closes, everything gathered goes out as one digest (one link per alarm).
Messages of an alarm that got acknowledged meanwhile are dropped. Pure: no
clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gateway.model import Priority
from gateway.notify.message import Notification, new_id

__all__ = ["PRIORITY_RANK", "Digest", "DigestBuffer", "DigestItem"]

PRIORITY_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.MEDIUM: 2, Priority.LOW: 3}


@dataclass(frozen=True, slots=True)
class DigestItem:
    alarm_id: str
    notification: Notification
    chain: tuple[str, ...]


@dataclass(slots=True)
class Digest:
    """Everything one person gets in one window, oldest first."""

    person: str
    due_ns: int
    items: list[DigestItem] = field(default_factory=list)

    def top(self) -> DigestItem:
        """The most urgent item (the first of the highest priority)."""
        return min(self.items, key=lambda i: PRIORITY_RANK.get(i.notification.priority, 9))

    def notification(self, now_ns: int, *, timezone: str, site: str = "") -> Notification:
        """One ``digest`` notification of every item (each with its own ack link);
        its priority and channel chain are those of :meth:`top`."""
        top = self.top()
        return Notification(
            id=new_id(),
            kind="digest",
            recipient=top.notification.recipient,
            items=[
                {
                    **i.notification.alarm,
                    "ack_url": i.notification.ack_url,
                    "kind": i.notification.kind,
                }
                for i in self.items
            ],
            ts=now_ns,
            priority=top.notification.priority,
            timezone=timezone,
            site=site,
        )


class DigestBuffer:
    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError("the digest window must be positive")
        self.window_ns = round(window_s * 1e9)
        self._open: dict[str, Digest] = {}

    def __len__(self) -> int:
        return sum(len(d.items) for d in self._open.values())

    def add(self, person: str, item: DigestItem, now_ns: int) -> None:
        digest = self._open.get(person)
        if digest is None:
            digest = self._open[person] = Digest(person, now_ns + self.window_ns)
        digest.items.append(item)

    def discard(self, alarm_id: str, kinds: Iterable[str]) -> int:
        """Drop the items of ``alarm_id`` of these kinds (its escalation stopped)."""
        wanted = set(kinds)
        dropped = 0
        for person, digest in list(self._open.items()):
            keep = [
                i
                for i in digest.items
                if not (i.alarm_id == alarm_id and i.notification.kind in wanted)
            ]
            dropped += len(digest.items) - len(keep)
            digest.items = keep
            if not keep:
                del self._open[person]
        return dropped

    def next_due(self) -> int | None:
        return min((d.due_ns for d in self._open.values()), default=None)

    def pop_due(self, now_ns: int) -> list[Digest]:
        due = [d for d in self._open.values() if d.due_ns <= now_ns]
        for d in due:
            del self._open[d.person]
        return sorted(due, key=lambda d: (d.due_ns, d.person))

    def pending(self, person: str) -> Sequence[DigestItem]:
        digest = self._open.get(person)
        return tuple(digest.items) if digest else ()
