"""Access control as the API takes and gives it: passages, credentials,
presence, visitor passes, doors.

Card values are personal and clonable: a passage names its card only by the
masked form (``**614E``) the service stored; a credential's ``card_uid`` is
shown in full to supervisors and admins and masked for everyone else (a
guard sees the credential they blacklisted, not its UID); the keyed
``card_hash`` is not shown below supervisor either.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gateway.access.cards import canonical_plate
from gateway.access.config import AccessConfig
from gateway.access.credentials import Credential, CredentialError, CredentialIndex
from gateway.api.masking import can_see_card, mask_card, mask_data
from gateway.model import from_datetime, to_datetime

if TYPE_CHECKING:
    from gateway.access.passages import Passage
    from gateway.access.report import DailyReport

__all__ = [
    "CREDENTIAL_ID_PATTERN",
    "BlacklistIn",
    "CredentialIn",
    "CredentialOut",
    "CredentialPageOut",
    "DoorOut",
    "DoorStateOut",
    "ImportOut",
    "Kind",
    "PassageOut",
    "PassagePageOut",
    "PresenceOut",
    "ReaderOut",
    "ReportDoorOut",
    "ReportOut",
    "VisitorIn",
    "VisitorPassOut",
    "credential_from_body",
    "credential_out",
    "passage_out",
    "report_out",
]

Kind = Literal["resident", "staff", "vehicle", "visitor"]
CREDENTIAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_ID_HELP = "Letters, digits and . _ : - (up to 64), e.g. R-0001."


# -- passages --------------------------------------------------------------------------------


class PassageOut(BaseModel):
    id: int = Field(description="The passage log's id (ascending).")
    ts: datetime = Field(description="When the card, plate or code was read (UTC).")
    door: str
    reader: str = Field(description="The reader's device id.")
    direction: str = Field(description="'in' or 'out'.")
    granted: bool
    reason: str = Field(description="'granted', or why it was denied (unknown, expired ...).")
    credential_id: str | None = Field(description="The credential, when the value was known.")
    kind: str = Field(description="resident, staff, vehicle, visitor, or unknown.")
    holder: str | None = Field(None, description="Who holds the credential, when known.")
    card_masked: str = Field(description="The card as stored: its last characters (**614E).")
    card_hash: str | None = Field(
        None, description="Keyed hash of the value (supervisor and admin only; null otherwise)."
    )
    plate: str | None = Field(description="Licence plate, for vehicles.")
    mode: str = Field(description="'decide' (the gateway decided) or 'monitor' (a controller).")
    data: dict[str, Any] = Field(
        description="Details (area after, the controller's reason, format); cards masked by role."
    )


class PassagePageOut(BaseModel):
    items: list[PassageOut] = Field(description="Newest first.")
    next_before_id: int | None = Field(
        description="Pass as before_id for the next (older) page; null on the last page."
    )


def passage_out(p: Passage, role: str) -> PassageOut:
    data = mask_data(dict(p.data), role)
    holder = p.data.get("holder")
    assert p.id is not None  # read back from the store
    return PassageOut(
        id=p.id,
        ts=to_datetime(p.ts),
        door=p.door,
        reader=p.reader,
        direction=p.direction,
        granted=p.granted,
        reason=p.reason,
        credential_id=p.credential_id,
        kind=p.kind,
        holder=holder if isinstance(holder, str) else None,
        card_masked=p.card_masked,
        card_hash=p.card_hash if can_see_card(role) else None,
        plate=p.plate,
        mode=p.mode,
        data=data if isinstance(data, dict) else {},
    )


# -- credentials -----------------------------------------------------------------------------


class CredentialOut(BaseModel):
    id: str
    kind: Kind
    holder: str
    group: str = Field(description="Credential group (access.groups of the site file).")
    has_card: bool = Field(description="A card, QR code or PIN is set (its hash is stored).")
    card_uid: str | None = Field(
        description="The card's canonical UID: in full for supervisors and admins, masked "
        "(****614E) for others; null when none is kept (hash-only, QR, PIN)."
    )
    plate: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    uses_left: int | None = Field(description="Uses left of a counted pass; null: unlimited.")
    blacklisted: bool
    disabled: bool
    certifications: list[str]
    data: dict[str, Any] = Field(description="phone, unit, note, host (phones masked by role).")
    created: datetime | None
    updated: datetime | None


def credential_out(c: Credential, role: str) -> CredentialOut:
    uid = c.card_uid
    if uid and not can_see_card(role):
        uid = mask_card(uid)
    data = mask_data(dict(c.data), role)
    return CredentialOut(
        id=c.id,
        kind=c.kind,
        holder=c.holder,
        group=c.group,
        has_card=c.card_hash is not None,
        card_uid=uid,
        plate=c.plate,
        valid_from=to_datetime(c.valid_from) if c.valid_from is not None else None,
        valid_until=to_datetime(c.valid_until) if c.valid_until is not None else None,
        uses_left=c.uses_left,
        blacklisted=c.blacklisted,
        disabled=c.disabled,
        certifications=list(c.certifications),
        data=data if isinstance(data, dict) else {},
        created=to_datetime(c.created_ts) if c.created_ts else None,
        updated=to_datetime(c.updated_ts) if c.updated_ts else None,
    )


class CredentialPageOut(BaseModel):
    items: list[CredentialOut] = Field(description="By id.")
    next_offset: int | None = Field(
        description="Pass as offset for the next page; null on the last page."
    )


class CredentialIn(BaseModel):
    """A credential as a supervisor creates or replaces it (PUT: every field).

    The card value is hashed with the site's key on arrival; its UID is kept
    for the roles that manage cards. On a replace, ``card: null`` keeps the
    stored card, QR code or PIN (a visitor pass's QR code cannot be sent
    again: its token is not stored); ``card: ""`` removes it.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    holder: str = Field(min_length=1, max_length=128, description="Person or vehicle owner.")
    group: str = Field(min_length=1, max_length=64, description="A group of access.groups.")
    card: str | None = Field(
        None,
        max_length=64,
        description="Card UID (hex, 0x.., with : or - separators; decimal with "
        "card_format 'decimal'). Null keeps the stored one; empty removes it.",
    )
    card_format: Literal["hex", "decimal"] = Field("hex", description="How 'card' is written.")
    pin: str | None = Field(
        None,
        pattern=r"^[0-9]{4,12}$",
        description="A keypad PIN instead of a card (stored only as a hash).",
    )
    plate: str | None = Field(None, max_length=32, description="Licence plate (vehicles).")
    valid_from: AwareDatetime | None = Field(None, description="Not valid before (ISO, zone).")
    valid_until: AwareDatetime | None = Field(None, description="Not valid after (ISO, zone).")
    uses_left: int | None = Field(None, ge=0, le=1_000_000, description="Null: unlimited.")
    blacklisted: bool = False
    disabled: bool = False
    certifications: list[str] = Field(
        default_factory=list, max_length=32, description="e.g. hv_electrician (restricted rooms)."
    )
    phone: str | None = Field(None, max_length=32)
    unit: str | None = Field(None, max_length=64, description="Flat or company, e.g. 3-2-1201.")
    note: str | None = Field(None, max_length=500)
    host: str | None = Field(None, max_length=128, description="Visitors: whom they visit.")


class BlacklistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500, description="Why (kept in the audit trail).")


class ImportOut(BaseModel):
    created: int = Field(description="Credentials that did not exist before.")
    replaced: int = Field(description="Credentials replaced by the file's rows.")
    total: int = Field(description="Rows imported.")


def credential_from_body(
    body: CredentialIn,
    store: CredentialIndex,
    credential_id: str,
    old: Credential | None,
    cfg: AccessConfig,
) -> Credential:
    """The credential a PUT body describes: a card or PIN hashed on arrival; with
    neither (``card: null``), a replace keeps the stored card, QR or PIN hash.
    Raises :class:`CredentialError` (or :class:`CardValueError`)."""
    if cfg.groups and body.group not in cfg.groups:
        raise CredentialError(
            f"unknown group {body.group!r}; use one of {', '.join(sorted(cfg.groups))}"
        )
    data = {k: v for k, v in (("phone", body.phone), ("unit", body.unit), ("note", body.note)) if v}
    if body.host:
        data["host"] = body.host
    fields: dict[str, Any] = {
        "id": credential_id,
        "kind": body.kind,
        "holder": body.holder,
        "group": body.group,
        "valid_from": _ns(body.valid_from),
        "valid_until": _ns(body.valid_until),
        "uses_left": body.uses_left,
        "blacklisted": body.blacklisted,
        "disabled": body.disabled,
        "certifications": tuple(body.certifications),
        "data": data,
    }
    plate = canonical_plate(body.plate) if body.plate else None
    if old is None or body.card is not None or body.pin is not None:
        return store.make(
            card=body.card or None,
            card_decimal=body.card_format == "decimal",
            pin=body.pin,
            plate=plate,
            **fields,
        )
    # Keep the stored value (a QR pass's token cannot be sent again), unless it
    # was only the old plate's hash: then the new plate (if any) gives it.
    card_hash, card_uid = old.card_hash, old.card_uid
    if old.plate is not None and card_hash == store.hasher.hash("plate", old.plate):
        card_hash = store.hasher.hash("plate", plate) if plate else None
    fields["holder"] = body.holder.strip()
    return Credential(
        card_hash=card_hash, card_uid=card_uid, plate=plate, created_ts=old.created_ts, **fields
    )


def _ns(dt: datetime | None) -> int | None:
    """UTC ns, clamped to what the store holds (int64)."""
    if dt is None:
        return None
    return max(-(2**63), min(2**63 - 1, from_datetime(dt)))


# -- visitors --------------------------------------------------------------------------------


class VisitorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holder: str = Field(min_length=1, max_length=128, description="The visitor's name.")
    host: str = Field(min_length=1, max_length=128, description="Whom they visit (name, unit).")
    hours: float | None = Field(
        None, ge=0.05, le=24 * 31, description="Valid for this long (default: the site's)."
    )
    uses: int | None = Field(
        None, ge=1, le=1000, description="Passages allowed (null: any within the hours)."
    )


class VisitorPassOut(BaseModel):
    """The pass just issued. ``token`` (the QR code's text) and ``qr_svg`` are
    given in this answer only: the gateway keeps a keyed hash of the token,
    never the token, so there is no later ``/visitors/{id}/qr.svg``; print
    or send the code now, or issue a new pass."""

    credential: CredentialOut
    token: str = Field(description="The QR code's text, shown once.")
    qr_svg: str = Field(description="The QR code as an SVG document, shown once.")


# -- presence, doors, report -----------------------------------------------------------------


class PresenceOut(BaseModel):
    credential_id: str
    holder: str | None = Field(description="Null when the credential was deleted since.")
    kind: str | None
    area: str = Field(description="The area it entered last.")
    door: str = Field(description="Through this door.")
    since: datetime


class ReaderOut(BaseModel):
    device: str
    direction: Literal["in", "out"]


class DoorStateOut(BaseModel):
    open: bool | None = Field(description="The contact's state; null when unknown or none.")
    held: bool = Field(description="Held open past its pre-alarm or alarm time, until closed.")
    forced: bool = Field(description="Forced open (no grant, no exit request), until closed.")


class DoorOut(BaseModel):
    id: str
    name: str
    location: str
    kind: str = Field(description="door, gate or barrier (the device's kind).")
    mode: Literal["decide", "monitor"]
    area: str
    from_area: str
    vehicle: bool
    readers: list[ReaderOut]
    state: DoorStateOut | None = Field(description="Live state; null when not supervised.")


class ReportDoorOut(BaseModel):
    door: str
    entries: int
    exits: int
    denied: int


class ReportOut(BaseModel):
    day: str = Field(description="The day (site time zone), YYYY-MM-DD.")
    timezone: str
    entries: int
    exits: int
    denied: int
    doors: list[ReportDoorOut] = Field(description="Per door, by id.")
    denials: dict[str, int] = Field(description="Denials per reason.")
    vehicles_inside: dict[str, int] = Field(description="Vehicles inside now, per area.")
    people_inside: dict[str, int] = Field(description="People inside now, per area.")


def report_out(r: DailyReport) -> ReportOut:
    return ReportOut(
        day=r.day.isoformat(),
        timezone=r.timezone,
        entries=r.entries,
        exits=r.exits,
        denied=sum(r.denials.values()),
        doors=[
            ReportDoorOut(door=d.door, entries=d.entries, exits=d.exits, denied=d.denied)
            for d in sorted(r.doors, key=lambda d: d.door)
        ],
        denials=dict(r.denials),
        vehicles_inside=dict(r.vehicles_inside),
        people_inside=dict(r.people_inside),
    )
