"""Config model of the alarm manager (the site file's ``alarms:`` block)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from gateway.driver import StrictModel

__all__ = [
    "AlarmsConfig",
    "ChatteringConfig",
    "FloodConfig",
    "ShelveConfig",
    "StoreRetryConfig",
]

_ROOM_PATTERN = r"^[A-Za-z0-9_-]+$"


class ChatteringConfig(StrictModel):
    count: int = Field(
        3,
        ge=2,
        description="An alarm chatters when it activates this many times within window_s.",
    )
    window_s: float = Field(60, gt=0, description="Sliding window of chattering detection, s.")


class FloodConfig(StrictModel):
    start_above: int = Field(
        10,
        ge=1,
        description=(
            "A control room is in flood when more than this many alarms were annunciated "
            "in it within window_s (EEMUA 191: more than 10 in 10 minutes)."
        ),
    )
    end_below: int = Field(
        5,
        ge=1,
        description="The flood ends when fewer than this many remain within window_s.",
    )
    window_s: float = Field(600, gt=0, description="Sliding window of flood detection, s.")

    @model_validator(mode="after")
    def _end_not_above_start(self) -> FloodConfig:
        if self.end_below > self.start_above:
            raise ValueError(
                f"end_below ({self.end_below}) must not be above start_above "
                f"({self.start_above}), or a flood could never end"
            )
        return self


class ShelveConfig(StrictModel):
    max_hours: float = Field(
        24,
        gt=0,
        le=24 * 31,
        description="Longest time an operator may shelve an alarm for, in hours.",
    )
    reason_required: bool = Field(
        True, description="Shelving needs a reason (ISA-18.2 asks for one; keep it on)."
    )


class StoreRetryConfig(StrictModel):
    initial_s: float = Field(
        0.5, gt=0, description="First wait before writing transitions again after a store outage."
    )
    max_s: float = Field(30, gt=0, description="Longest wait between two write attempts.")

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> StoreRetryConfig:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) is below initial_s ({self.initial_s})")
        return self


class AlarmsConfig(StrictModel):
    """ISA-18.2 alarm handling: control rooms, chattering, floods, shelving, latching."""

    control_rooms: list[str] = Field(
        default_factory=lambda: ["main"],
        min_length=1,
        description=(
            "Control rooms (letters, digits, '_' and '-'). Every rule names one "
            "(its control_room, default 'main'); floods are counted per control room."
        ),
    )
    chattering: ChatteringConfig = Field(
        default_factory=ChatteringConfig, description="Chattering detection."
    )
    flood: FloodConfig = Field(default_factory=FloodConfig, description="Flood detection.")
    shelve: ShelveConfig = Field(default_factory=ShelveConfig, description="Shelving limits.")
    stale_after_h: float = Field(
        24, gt=0, description="An alarm active longer than this is stale (EEMUA 191 figures)."
    )
    latch_critical: bool = Field(
        True,
        description=(
            "An alarm whose present priority is critical latches (needs acknowledge AND "
            "reset) even if its rule does not say so. Set false to let each rule decide."
        ),
    )
    store_retry: StoreRetryConfig = Field(
        default_factory=StoreRetryConfig,
        description="Backoff while the event store cannot be written (nothing is announced "
        "before it is stored).",
    )

    @field_validator("control_rooms")
    @classmethod
    def _rooms_valid(cls, rooms: list[str]) -> list[str]:
        for room in rooms:
            if not re.fullmatch(_ROOM_PATTERN, room):
                raise ValueError(f"control room {room!r}: use letters, digits, '_' and '-' only")
        twice = sorted({r for r in rooms if rooms.count(r) > 1})
        if twice:
            raise ValueError(f"control room(s) listed twice: {', '.join(twice)}")
        return rooms
