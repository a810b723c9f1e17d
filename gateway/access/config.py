"""The ``access:`` block of the site file: areas, doors, time profiles, groups.

A door (or pedestrian gate, or vehicle barrier) is a device of the site
(``devices:``, kind ``door``, ``gate`` or ``barrier``). Its readers are
devices too (kind ``card_reader``), each bound to the door with the direction
it controls. Reading ``in`` moves a credential from ``from_area`` (default
``outside``) into ``area``; ``out`` moves it back. Anti-passback is set per
area.

Two modes per door: ``decide`` (the gateway grants or denies, then pulses the
relay through a bus command) and ``monitor`` (a controller decides and
reports ``card.decision``; the gateway records and supervises).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.driver import StrictModel
from gateway.rules.schedule import ScheduleConfig

__all__ = [
    "OUTSIDE",
    "AccessConfig",
    "AreaConfig",
    "DateRange",
    "DoorConfig",
    "GroupConfig",
    "InputConfig",
    "ReaderBinding",
    "RelayConfig",
    "RestrictedConfig",
    "TimeProfileConfig",
    "VisitorConfig",
]

OUTSIDE = "outside"
_ID = r"^[A-Za-z0-9_-]+$"


class ReaderBinding(StrictModel):
    device: str = Field(description="The reader's device id (the source of its card events).")
    direction: Literal["in", "out"] = Field(
        description="'in': entering the door's area; 'out': leaving it."
    )
    reader_no: int | None = Field(
        None,
        ge=0,
        description="Only card events with this reader number (one OSDP device with two heads).",
    )


class RelayConfig(StrictModel):
    """What opens the door: a ``pulse`` command to a reader or controller output,
    or a write to a writable Modbus coil (``point``)."""

    device: str = Field(
        description="Device that owns the relay (a reader, controller or DO module)."
    )
    output: int = Field(0, ge=0, description="Output number on that device ('pulse' command).")
    point: str | None = Field(
        None,
        description="A writable point ('dio1.do_1') written true instead of a 'pulse' "
        "command; its write.pulse_s releases it.",
    )
    seconds: float = Field(3.0, gt=0, le=60, description="How long the strike stays released.")


class InputConfig(StrictModel):
    """A door contact, exit button or passage counter: a point (a DI module
    channel) or the driver's events (``door.contact`` etc. from ``device``)."""

    point: str | None = Field(
        None, description="Point whose value gives the state, e.g. 'dio1.di_3'."
    )
    active_value: bool = Field(
        True, description="The point value that means open / pressed (false for NC contacts)."
    )
    device: str | None = Field(
        None, description="Source of the events instead of a point (default: the door id)."
    )


class RestrictedConfig(StrictModel):
    """A restricted room (power room): who may enter, and when, beyond the group's rights."""

    certification: str | None = Field(
        None, description="Certification a credential must hold, e.g. 'hv_electrician'."
    )
    profile: str | None = Field(
        None, description="Time profile outside which an entry is out of hours (and denied)."
    )


class DoorConfig(StrictModel):
    id: str = Field(description="Device id of the door, gate or barrier (kind door/gate/barrier).")
    mode: Literal["decide", "monitor"] = Field(
        "decide", description="'decide': the gateway decides; 'monitor': a controller does."
    )
    readers: list[ReaderBinding] = Field(
        default_factory=list, description="Readers of this door and the direction each controls."
    )
    area: str = Field(description="The area a passage 'in' leads into.", pattern=_ID)
    from_area: str = Field(OUTSIDE, description="The area a passage 'out' leads into.", pattern=_ID)
    relay: RelayConfig | None = Field(None, description="What opens it (decide mode).")
    feedback: bool = Field(True, description="Green/red LED and buzzer on the reader.")
    contact: InputConfig | None = Field(
        None, description="Door contact: forced open and held open are supervised with it."
    )
    exit_button: InputConfig | None = Field(
        None, description="Request-to-exit button: opening after it is not forced."
    )
    held_open_s: float = Field(30.0, gt=0, description="Held-open alarm after this many seconds.")
    prealarm_s: float | None = Field(
        20.0, gt=0, description="Held-open pre-alarm after this many seconds (null: none)."
    )
    passages: InputConfig | None = Field(
        None,
        description="Passage counter (a gate's beam; 'gate.passage' events or a counter "
        "point): more passages than grants is tailgating.",
    )
    tailgate_window_s: float = Field(
        10.0, gt=0, description="Passages within this long after a grant belong to it."
    )
    vehicle: bool = Field(
        False, description="A vehicle barrier: plates and vehicle cards; loop sensors."
    )
    restricted: RestrictedConfig | None = Field(
        None, description="A restricted room: certification and hours checked on entry."
    )

    @model_validator(mode="after")
    def _consistent(self) -> DoorConfig:
        if self.prealarm_s is not None and self.prealarm_s >= self.held_open_s:
            raise ValueError(
                f"prealarm_s ({self.prealarm_s}) must be shorter than held_open_s "
                f"({self.held_open_s})"
            )
        if self.area == self.from_area:
            raise ValueError(f"area and from_area are both {self.area!r}")
        return self


class AreaConfig(StrictModel):
    id: str = Field(description="Area id, e.g. 'estate', 'car_park', 'power_room'.", pattern=_ID)
    name: str = Field("", description="Display name.")
    anti_passback: Literal["off", "soft", "hard"] = Field(
        "off",
        description="'hard': deny a second entry (or an exit without an entry); 'soft': "
        "allow it and raise an alarm; 'off': do not check.",
    )
    no_card_no_exit: bool = Field(
        False,
        description="Vehicles: an exit needs a matching entry, even when anti_passback is off "
        "(hard: denied; soft or off: allowed with an alarm).",
    )


class DateRange(StrictModel):
    start: date = Field(description="First day (inclusive).")
    end: date = Field(description="Last day (inclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class TimeProfileConfig(StrictModel):
    """When a group may pass, in the site's time zone: any of ``periods``,
    within ``dates`` (if given); on a holiday of the site calendar only when
    ``holidays`` is 'periods'."""

    periods: list[ScheduleConfig] = Field(
        min_length=1,
        description="Windows such as {days: workdays, between: ['07:00', '19:00']}; "
        "between may cross midnight.",
    )
    dates: list[DateRange] = Field(
        default_factory=list, description="Only within these date ranges (empty: any date)."
    )
    holidays: Literal["periods", "closed"] = Field(
        "periods",
        description="'closed': no access on the calendar's holidays; "
        "'periods': the periods decide.",
    )


class GroupConfig(StrictModel):
    doors: list[str] = Field(
        min_length=1, description="Doors this group may pass (globs allowed: 'gate_*', '*')."
    )
    profile: str = Field("always", description="Time profile ('always' is built in).")


class VisitorConfig(StrictModel):
    group: str = Field("visitors", description="Group visitor passes belong to.")
    default_hours: float = Field(4.0, gt=0, le=24 * 31, description="Default validity.")
    qr_prefix: str = Field(
        "GWV1:", description="Prefix of the text in a visitor's QR code (the reader sends it)."
    )


class AccessConfig(StrictModel):
    enabled: bool = Field(True, description="Set to false to keep the block but not run it.")
    areas: list[AreaConfig] = Field(
        default_factory=list, description="Areas; 'outside' exists without being listed."
    )
    doors: list[DoorConfig] = Field(default_factory=list, description="Doors, gates, barriers.")
    time_profiles: dict[str, TimeProfileConfig] = Field(
        default_factory=dict, description="Named time profiles ('always' is built in)."
    )
    groups: dict[str, GroupConfig] = Field(
        default_factory=dict, description="Credential groups and the doors they may pass."
    )
    visitors: VisitorConfig = Field(
        default_factory=VisitorConfig, description="Visitor passes (QR codes)."
    )
    reload_s: float = Field(
        10.0,
        gt=0,
        description="How often to look for credentials changed by another process "
        "('gateway access import') and load them.",
    )
    decision_batch: int = Field(
        256, ge=1, le=10_000, description="Card reads decided and stored per transaction."
    )

    @field_validator("time_profiles")
    @classmethod
    def _no_builtin(cls, v: dict[str, TimeProfileConfig]) -> dict[str, TimeProfileConfig]:
        if "always" in v:
            raise ValueError("'always' is built in; give your profile another name")
        return v

    @model_validator(mode="after")
    def _references(self) -> AccessConfig:
        areas = {a.id for a in self.areas} | {OUTSIDE}
        profiles = set(self.time_profiles) | {"always"}
        seen: set[str] = set()
        readers: dict[tuple[str, int | None], str] = {}
        for door in self.doors:
            if door.id in seen:
                raise ValueError(f"door {door.id!r} is listed twice")
            seen.add(door.id)
            for a in (door.area, door.from_area):
                if a not in areas:
                    raise ValueError(
                        f"door {door.id!r}: unknown area {a!r}; add it to access.areas"
                    )
            if (
                door.restricted
                and door.restricted.profile
                and door.restricted.profile not in profiles
            ):
                raise ValueError(
                    f"door {door.id!r}: unknown time profile {door.restricted.profile!r}"
                )
            if door.mode == "decide" and door.readers and door.relay is None:
                raise ValueError(f"door {door.id!r} decides (mode: decide) but has no relay")
            for r in door.readers:
                key = (r.device, r.reader_no)
                if key in readers:
                    raise ValueError(
                        f"reader {r.device!r} is bound to both {readers[key]!r} and {door.id!r}"
                    )
                readers[key] = door.id
        for name, group in self.groups.items():
            if group.profile not in profiles:
                raise ValueError(f"group {name!r}: unknown time profile {group.profile!r}")
        if self.visitors.group not in self.groups and self.groups:
            raise ValueError(f"visitors.group {self.visitors.group!r} is not in access.groups")
        return self
