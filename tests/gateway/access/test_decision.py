"""The decider: one test per reason, the order of the checks, group door globs,
visitor passes expiring mid-day and single-use passes, restricted rooms.
Times are explicit (Asia/Shanghai wall clock); no I/O is involved."""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.access.cards import CardHasher, canonical_uid
from gateway.access.config import AccessConfig
from gateway.access.credentials import Credential, CredentialIndex
from gateway.access.decision import (
    ALARM_BLACKLISTED,
    ALARM_OUT_OF_SCHEDULE,
    ALARM_RESTRICTED,
    CardRead,
    Decider,
    Decision,
    Reason,
    mask_read,
)
from gateway.access.presence import Presence
from gateway.model import from_datetime
from gateway.rules.schedule import CalendarConfig

TZ = "Asia/Shanghai"
HASHER = CardHasher(b"decision-test-key-0123456789")
CALENDAR = CalendarConfig.model_validate(
    {"holidays": ["2026-10-01", "2026-10-02"], "workdays": ["2026-10-10"]}
)
CFG = AccessConfig.model_validate(
    {
        "areas": [{"id": "estate"}, {"id": "car_park"}, {"id": "power_room"}],
        "doors": [
            {"id": "gate_north", "area": "estate"},
            {"id": "gate_south", "area": "estate"},
            {"id": "car_in", "area": "car_park", "vehicle": True},
            {
                "id": "power_room_door",
                "area": "power_room",
                "from_area": "estate",
                "restricted": {"certification": "hv_electrician", "profile": "maintenance"},
            },
        ],
        "time_profiles": {
            "office": {"periods": [{"days": "workdays", "between": ["08:00", "18:00"]}]},
            "maintenance": {"periods": [{"between": ["08:00", "17:00"]}]},
        },
        "groups": {
            "residents": {"doors": ["gate_*"]},
            "staff": {"doors": ["*"], "profile": "office"},
            "electricians": {"doors": ["gate_*", "power_room_door"]},
            "vehicles": {"doors": ["car_*"]},
            "visitors": {"doors": ["gate_*"]},
        },
    }
)
DOORS = {d.id: d for d in CFG.doors}


def at(text: str) -> int:
    return from_datetime(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(TZ)))


NOON = at("2026-11-20 12:00")  # a Friday


def cred(id: str, group: str = "residents", card: str | None = None, **kw: Any) -> Credential:
    kind = kw.pop("kind", "resident")
    return CredentialIndex(HASHER).make(
        id=id, kind=kind, holder=f"住户 {id}", group=group, card=card or id_card(id), **kw
    )


def id_card(id: str) -> str:
    """A canonical card UID made from a credential id."""
    return canonical_uid(format(zlib.crc32(id.encode()) | 0x10000000, "08X"))


def setup(*creds: Credential) -> tuple[Decider, CredentialIndex, Presence]:
    index = CredentialIndex(HASHER, creds)
    presence = Presence()
    return Decider(CFG, CALENDAR, TZ, index, presence), index, presence


def read(
    decider: Decider,
    door: str,
    value: str,
    ts: int = NOON,
    *,
    cls: Any = "card",
    direction: Any = "in",
) -> Decision:
    return decider.decide(CardRead("r1", DOORS[door], direction, ts, cls, value, "wiegand26"))


def test_granted_moves_the_credential_and_masks_the_card() -> None:
    d, _, presence = setup(cred("R-1", card="BC614E"))
    dec = read(d, "gate_north", "BC614E")
    assert dec.granted and dec.reason is Reason.GRANTED
    assert dec.credential is not None and dec.credential.id == "R-1"
    assert dec.card_hash == HASHER.card("BC614E")
    assert dec.masked == "**614E"
    assert dec.alarms == () and dec.area_after == "estate" and dec.uses_left is None
    assert presence.area_of("R-1") == "estate"
    out = read(d, "gate_north", "BC614E", direction="out")
    assert out.granted and out.area_after == "outside"


def test_unknown() -> None:
    d, _, presence = setup()
    dec = read(d, "gate_north", "0A0B0C0D")
    assert (dec.granted, dec.reason, dec.credential) == (False, Reason.UNKNOWN, None)
    assert dec.card_hash == HASHER.card("0A0B0C0D") and dec.masked == "****0C0D"
    assert len(presence) == 0


def test_disabled() -> None:
    d, _, _ = setup(cred("R-1", disabled=True))
    assert read(d, "gate_north", id_card("R-1")).reason is Reason.DISABLED


def test_blacklisted_raises_an_alarm() -> None:
    d, _, _ = setup(cred("R-1", blacklisted=True))
    dec = read(d, "gate_north", id_card("R-1"))
    assert (dec.granted, dec.reason, dec.alarms) == (
        False,
        Reason.BLACKLISTED,
        (ALARM_BLACKLISTED,),
    )


def test_not_yet_valid_and_expired() -> None:
    d, _, _ = setup(cred("R-1", valid_from=at("2026-11-20 09:00"), valid_until=NOON))
    card = id_card("R-1")
    assert read(d, "gate_north", card, at("2026-11-20 08:59")).reason is Reason.NOT_YET_VALID
    assert read(d, "gate_north", card, at("2026-11-20 09:00")).granted
    assert read(d, "gate_north", card, NOON).reason is Reason.EXPIRED


def test_visitor_pass_expires_mid_day() -> None:
    index = CredentialIndex(HASHER)
    token = "GWV1:abcdefghijklmnopqrstuv"
    visitor = index.make(
        id="V-1",
        kind="visitor",
        holder="访客 王",
        group="visitors",
        qr=token,
        valid_from=at("2026-11-20 08:00"),
        valid_until=NOON,
    )
    d, _, _ = setup(visitor)
    ok = read(d, "gate_north", token, at("2026-11-20 11:59"), cls="qr")
    assert ok.granted and ok.card_hash == HASHER.hash("qr", token)
    assert "abcdef" not in ok.masked
    late = read(d, "gate_north", token, at("2026-11-20 12:01"), cls="qr", direction="out")
    assert (late.granted, late.reason) == (False, Reason.EXPIRED)


def test_single_use_pass_is_consumed_once_then_used_up() -> None:
    d, index, _ = setup(cred("V-2", group="visitors", kind="visitor", uses_left=1))
    card = id_card("V-2")
    first = read(d, "gate_north", card)
    assert first.granted and first.uses_left == 0
    assert index.get("V-2") is not None and index.get("V-2").uses_left == 0  # type: ignore[union-attr]
    again = read(d, "gate_south", card)
    assert (again.granted, again.reason, again.uses_left) == (False, Reason.USED_UP, None)
    leaving = read(d, "gate_north", card, direction="out")  # a used pass still lets one out
    assert leaving.granted and leaving.uses_left is None


def test_no_permission_follows_group_door_globs() -> None:
    d, _, _ = setup(
        cred("R-1"),
        cred("C-1", group="vehicles", kind="vehicle"),
        cred("X-1", group="not_configured"),
    )
    assert read(d, "gate_south", id_card("R-1")).granted  # gate_*
    assert read(d, "car_in", id_card("R-1")).reason is Reason.NO_PERMISSION
    assert read(d, "power_room_door", id_card("R-1")).reason is Reason.NO_PERMISSION
    assert read(d, "car_in", id_card("C-1")).granted  # car_*
    assert read(d, "gate_north", id_card("C-1")).reason is Reason.NO_PERMISSION
    assert read(d, "gate_north", id_card("X-1")).reason is Reason.NO_PERMISSION
    assert d.may_pass("staff", "anything") and not d.may_pass("visitors", "car_in")


def test_visitor_pass_limited_to_some_doors() -> None:
    d, _, _ = setup(
        cred("V-3", group="visitors", kind="visitor", data={"host": "3-1201", "doors": ["gate_n*"]})
    )
    assert read(d, "gate_north", id_card("V-3")).granted
    assert read(d, "gate_south", id_card("V-3")).reason is Reason.NO_PERMISSION


def test_out_of_schedule_raises_an_alarm() -> None:
    d, _, _ = setup(cred("S-1", group="staff", kind="staff"))
    card = id_card("S-1")
    late = read(d, "gate_north", card, at("2026-11-20 20:00"))
    assert (late.reason, late.alarms) == (Reason.OUT_OF_SCHEDULE, (ALARM_OUT_OF_SCHEDULE,))
    assert read(d, "gate_north", card, at("2026-11-20 10:00")).granted
    assert read(d, "gate_north", card, at("2026-10-01 10:00")).reason is Reason.OUT_OF_SCHEDULE
    assert read(d, "gate_south", card, at("2026-10-10 10:00")).granted  # make-up Saturday


def test_restricted_room_needs_the_certification() -> None:
    d, _, _ = setup(cred("E-1", group="electricians", kind="staff"))
    dec = read(d, "power_room_door", id_card("E-1"), at("2026-11-20 10:00"))
    assert (dec.granted, dec.reason, dec.alarms) == (
        False,
        Reason.UNCERTIFIED,
        (ALARM_RESTRICTED,),
    )


def test_restricted_room_out_of_its_hours() -> None:
    d, _, _ = setup(
        cred("E-2", group="electricians", kind="staff", certifications=["hv_electrician"])
    )
    card = id_card("E-2")
    night = read(d, "power_room_door", card, at("2026-11-20 20:00"))
    assert (night.reason, night.alarms) == (Reason.OUT_OF_HOURS, (ALARM_RESTRICTED,))
    day = read(d, "power_room_door", card, at("2026-11-20 10:00"))
    assert day.granted and day.area_after == "power_room"
    # leaving is not restricted, even out of hours
    assert read(d, "power_room_door", card, at("2026-11-20 20:00"), direction="out").granted


def test_checks_run_in_the_documented_order() -> None:
    expired: dict[str, Any] = {
        "valid_from": at("2026-01-01 00:00"),
        "valid_until": at("2026-02-01 00:00"),
    }
    d, _, _ = setup(
        cred("A", disabled=True, blacklisted=True, **expired),
        cred("B", blacklisted=True, **expired),
        cred("C", group="vehicles", **expired),
        cred("D", group="staff", uses_left=0),
        cred("E", group="vehicles", uses_left=1),
    )
    night = at("2026-11-20 22:00")
    assert read(d, "gate_north", id_card("A"), night).reason is Reason.DISABLED
    assert read(d, "gate_north", id_card("B"), night).reason is Reason.BLACKLISTED
    assert read(d, "gate_north", id_card("C"), night).reason is Reason.EXPIRED
    assert read(d, "gate_north", id_card("D"), night).reason is Reason.USED_UP
    assert read(d, "gate_north", id_card("E"), night).reason is Reason.NO_PERMISSION


def test_plates_and_cards_of_one_vehicle() -> None:
    index = CredentialIndex(HASHER)
    tagged = index.make(
        id="C-2",
        kind="vehicle",
        holder="李四",
        group="vehicles",
        card="00C0FFEE",
        plate="沪A·12345",
    )
    plate_only = index.make(
        id="C-3", kind="vehicle", holder="王五", group="vehicles", plate="粤B 88888"
    )
    d, _, _ = setup(tagged, plate_only)
    by_plate = read(d, "car_in", "沪A12345", cls="plate")
    assert by_plate.granted and by_plate.credential == tagged
    assert by_plate.masked == "沪A***45" and by_plate.card_hash == HASHER.plate("沪A12345")
    assert read(d, "car_in", "C0FFEE", direction="out").granted
    assert read(d, "car_in", "粤B88888", cls="plate").credential == plate_only


@pytest.mark.parametrize(
    ("cls", "value", "masked"),
    [("card", "BC614E", "**614E"), ("plate", "沪A12345", "沪A***45"), ("pin", "123456", "******")],
)
def test_mask_read(cls: Any, value: str, masked: str) -> None:
    assert mask_read(cls, value) == masked
