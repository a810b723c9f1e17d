"""Grant or deny one card read: the checks, in order, with no I/O.

:meth:`Decider.decide` runs on every card, plate and QR read of a door in
``decide`` mode, so it only looks things up in memory: the credential index,
the presence table, a per-(group, door) permission cache filled on first use,
and time profiles cached per minute. The order of the checks is the contract
(the first that fails is the reason): unknown, disabled, blacklisted, not yet
valid / expired, used up, no permission, out of schedule, restricted room
(uncertified, out of hours), anti-passback, vehicle exit with no entry.

A grant moves the credential in memory at once (presence, and the remaining
uses of a counted pass), so the next read in the same batch sees it before
the service has written the batch; the :class:`Decision` carries what the
service must store (``area_after``, ``uses_left``).

Rules of the road that are not obvious: restricted rooms and used-up passes
are checked on entry only (nobody is kept inside a power room, and a
single-use visitor can still leave); a use of a counted pass is an entry.
Anti-passback is checked on both sides of a door: entering an area that has
it while already recorded inside, or leaving it while not recorded inside.
A vehicle leaving an area with ``no_card_no_exit`` without a recorded entry is
``no_entry`` instead (denied when the area's anti-passback is hard).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from gateway.access.cards import ValueClass, mask_value
from gateway.access.config import AccessConfig, AreaConfig, DoorConfig
from gateway.access.credentials import Credential, CredentialIndex
from gateway.access.presence import Presence
from gateway.access.profiles import TimeProfiles
from gateway.rules.schedule import CalendarConfig

__all__ = [
    "ALARM_ANTIPASSBACK",
    "ALARM_BLACKLISTED",
    "ALARM_NO_ENTRY",
    "ALARM_OUT_OF_SCHEDULE",
    "ALARM_RESTRICTED",
    "CardRead",
    "Decider",
    "Decision",
    "Reason",
    "mask_read",
]

ALARM_BLACKLISTED = "access.blacklisted"
ALARM_OUT_OF_SCHEDULE = "access.out_of_schedule"
ALARM_RESTRICTED = "access.restricted"
ALARM_ANTIPASSBACK = "access.antipassback"
ALARM_NO_ENTRY = "access.no_entry"


class Reason(enum.StrEnum):
    GRANTED = "granted"
    UNKNOWN = "unknown"
    BLACKLISTED = "blacklisted"
    DISABLED = "disabled"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    USED_UP = "used_up"
    NO_PERMISSION = "no_permission"
    OUT_OF_SCHEDULE = "out_of_schedule"
    ANTIPASSBACK = "antipassback"
    NO_ENTRY = "no_entry"  # vehicle exit without entry (no card, no exit)
    UNCERTIFIED = "uncertified"
    OUT_OF_HOURS = "out_of_hours"  # restricted rooms
    READ_ERROR = "read_error"
    CONTROLLER = "controller"  # monitor mode: the controller's own reason in data


@dataclass(frozen=True, slots=True)
class CardRead:
    reader: str  # reader device id
    door: DoorConfig
    direction: Literal["in", "out"]
    ts: int  # UTC ns
    cls: ValueClass  # "card", "plate", "qr", "pin"
    value: str  # canonical (uid hex / plate / token / digits)
    fmt: str  # the event's format ("wiegand26", "qr", "plate" ...)


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    reason: Reason
    credential: Credential | None
    card_hash: str | None
    masked: str  # mask_value(value) ("**614E"); plates: "沪A***45"
    alarms: tuple[str, ...] = ()  # supervision event types to emit with the passage
    area_after: str | None = None  # presence to store when granted (None: unchanged)
    uses_left: int | None = None  # new uses_left when a counted pass was consumed


def mask_read(cls: ValueClass, value: str) -> str:
    """What a passage shows of a value: a card's last 4 hex digits, a plate's
    first 2 and last 2 characters, nothing of a PIN."""
    if cls == "pin":
        return "*" * len(value)
    if cls == "plate" and len(value) > 4:
        return value[:2] + "*" * (len(value) - 4) + value[-2:]
    return mask_value(value)


_NO_AREA = AreaConfig(id="outside")  # areas not listed (outside): no anti-passback


class Decider:
    """The access decision for doors in ``decide`` mode (synchronous, no I/O)."""

    def __init__(
        self,
        cfg: AccessConfig,
        calendar: CalendarConfig,
        timezone: str,
        credentials: CredentialIndex,
        presence: Presence,
    ) -> None:
        self._cfg = cfg
        self._index = credentials
        self._presence = presence
        self.profiles = TimeProfiles(cfg.time_profiles, timezone, calendar)
        self._areas = {a.id: a for a in cfg.areas}
        self._may_pass: dict[tuple[str, str], bool] = {}

    def may_pass(self, group: str, door: str) -> bool:
        """Whether ``group`` lists ``door`` (globs; computed once per pair)."""
        key = (group, door)
        allowed = self._may_pass.get(key)
        if allowed is None:
            g = self._cfg.groups.get(group)
            allowed = g is not None and any(fnmatchcase(door, p) for p in g.doors)
            self._may_pass[key] = allowed
        return allowed

    def decide(
        self, read: CardRead, found: tuple[str, Credential | None] | None = None
    ) -> Decision:
        """``found``: the value's hash and credential, when the caller already
        looked them up (the HMAC is the costliest step of a decision)."""
        if found is None:
            card_hash = self._index.hash_of(read.cls, read.value)
            cred = self._index.by_hash(card_hash)
        else:
            card_hash, cred = found
        masked = mask_read(read.cls, read.value)
        if cred is None:
            return Decision(False, Reason.UNKNOWN, None, card_hash, masked)
        reason, alarm = self._refusal(cred, read)
        if reason is not None:
            alarms = (alarm,) if alarm else ()
            return Decision(False, reason, cred, card_hash, masked, alarms)
        return self._passage(cred, read, card_hash, masked)

    def _refusal(self, cred: Credential, read: CardRead) -> tuple[Reason | None, str]:
        """The first check before anti-passback that fails, and its alarm."""
        if cred.disabled:
            return Reason.DISABLED, ""
        if cred.blacklisted:
            return Reason.BLACKLISTED, ALARM_BLACKLISTED
        ts = read.ts
        if cred.valid_from is not None and ts < cred.valid_from:
            return Reason.NOT_YET_VALID, ""
        if cred.valid_until is not None and ts >= cred.valid_until:
            return Reason.EXPIRED, ""
        entering = read.direction == "in"
        if entering and cred.uses_left is not None and cred.uses_left <= 0:
            return Reason.USED_UP, ""
        door = read.door
        if not self.may_pass(cred.group, door.id) or not _pass_doors_allow(cred, door.id):
            return Reason.NO_PERMISSION, ""
        if not self.profiles.allows(self._cfg.groups[cred.group].profile, ts):
            return Reason.OUT_OF_SCHEDULE, ALARM_OUT_OF_SCHEDULE
        room = door.restricted
        if room is not None and entering:
            if room.certification and room.certification not in cred.certifications:
                return Reason.UNCERTIFIED, ALARM_RESTRICTED
            if room.profile and not self.profiles.allows(room.profile, ts):
                return Reason.OUT_OF_HOURS, ALARM_RESTRICTED
        return None, ""

    def _passage(self, cred: Credential, read: CardRead, card_hash: str, masked: str) -> Decision:
        """Anti-passback and vehicle no-entry; then the grant and its effects."""
        door = read.door
        entering = read.direction == "in"
        target, source = (door.area, door.from_area) if entering else (door.from_area, door.area)
        into = self._areas.get(target, _NO_AREA)
        leaving = self._areas.get(source, _NO_AREA)
        here = self._presence.area_of(cred.id)
        no_entry = (
            not entering
            and leaving.no_card_no_exit
            and here != source
            and (door.vehicle or cred.kind == "vehicle")
        )
        alarms: tuple[str, ...] = ()
        mode = "off"
        if into.anti_passback != "off" and here == target:
            mode = into.anti_passback
        elif leaving.anti_passback != "off" and here != source and not no_entry:
            mode = leaving.anti_passback
        if mode == "hard":
            alarms = (ALARM_ANTIPASSBACK,)
            return Decision(False, Reason.ANTIPASSBACK, cred, card_hash, masked, alarms)
        if mode == "soft":
            alarms = (ALARM_ANTIPASSBACK,)
        if no_entry:
            alarms = (*alarms, ALARM_NO_ENTRY)
            if leaving.anti_passback == "hard":
                return Decision(False, Reason.NO_ENTRY, cred, card_hash, masked, alarms)
        uses_left = None
        if entering and cred.uses_left is not None:
            uses_left = cred.uses_left - 1
            self._index.set_uses_left(cred.id, uses_left)
        self._presence.set(cred.id, target, door.id, read.ts)
        return Decision(True, Reason.GRANTED, cred, card_hash, masked, alarms, target, uses_left)


def _pass_doors_allow(cred: Credential, door: str) -> bool:
    """A visitor pass issued for some doors only (``data["doors"]``, globs)."""
    doors = cred.data.get("doors") if cred.data else None
    return not doors or any(fnmatchcase(door, p) for p in doors)
