"""What one apply, action or tick produced: rows to write, events to store and
alarms to announce, in order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.alarms.record import AlarmRecord, jsonable
from gateway.model import Alarm, Event

__all__ = ["Batch"]


@dataclass
class Batch:
    rows: dict[str, AlarmRecord | None] = field(default_factory=dict)  # None: delete the row
    events: list[Event] = field(default_factory=list)  # stored with the rows
    alarms: list[Alarm] = field(default_factory=list)  # announced after the store
    notices: list[Event] = field(default_factory=list)  # non-alarm events also announced

    @property
    def empty(self) -> bool:
        return not (self.rows or self.events)

    def announce(
        self,
        rec: AlarmRecord,
        transition: str,
        ts: int,
        *,
        user: str,
        note: str,
        origin: str,
        annunciate: bool,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """One transition: an ``alarm.<transition>`` event (with who, when and
        note) and the :class:`~gateway.model.Alarm` that announces it."""
        state = rec.state
        data = rec.view()
        if extra:
            data.update(jsonable(extra))
        data.update(transition=transition, annunciate=annunciate, origin=origin)
        self.alarms.append(
            Alarm(
                id=rec.id,
                rule=rec.rule,
                source=rec.source,
                state=state,
                priority=rec.priority,
                ts=ts,
                message=rec.description,
                data=data,
                transition=transition,
                category=rec.category,
                route=rec.route,
                device=rec.device,
                user=user,
                note=note,
            )
        )
        stored = {
            "id": rec.id,
            "rule": rec.rule,
            "state": state.value,
            "priority": rec.priority.value,
            "category": rec.category,
            "route": rec.route,
            "device": rec.device,
            "user": jsonable(user),
            "note": jsonable(note),
            **data,
        }
        self.events.append(Event(f"alarm.{transition}", rec.source, ts, stored))

    def notice(self, type_: str, source: str, ts: int, **data: Any) -> None:
        """An event that is not an alarm transition (flood, maintenance): stored
        with the batch and handed to ``publish_event``."""
        event = Event(type_, source, ts, jsonable(data))
        self.events.append(event)
        self.notices.append(event)
