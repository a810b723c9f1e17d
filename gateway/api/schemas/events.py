"""Events as the API shows them: ISO UTC times, data masked by the caller's role."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from gateway.api.masking import mask_data
from gateway.model import Event, to_datetime

__all__ = ["EventOut", "EventPageOut", "event_out"]


class EventOut(BaseModel):
    id: int | None = Field(
        description="The event store's id (ascending); null for an event not stored yet."
    )
    ts: datetime = Field(description="When it happened (UTC).")
    type: str = Field(description="Dotted type: access.denied, alarm.acknowledged ...")
    source: str = Field(description="The device, point or service that saw it.")
    data: dict[str, Any] = Field(
        description="Details; card UIDs and phone numbers masked by the caller's role."
    )


class EventPageOut(BaseModel):
    items: list[EventOut] = Field(description="Newest first.")
    next_before_id: int | None = Field(
        description="Pass as before_id for the next (older) page; null on the last page."
    )


def event_out(event_id: int | None, event: Event, role: str) -> EventOut:
    data = mask_data(event.data, role)
    return EventOut(
        id=event_id,
        ts=to_datetime(event.ts),
        type=event.type,
        source=event.source,
        data=data if isinstance(data, dict) else {},
    )
