"""Visitor passes on a real SQLite store: the token is shown once and stored
only as its hash; the pass expires mid-day and counts its entries; the QR code
is a stable SVG."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlalchemy import select

from gateway.access.cards import CardHasher
from gateway.access.config import AccessConfig
from gateway.access.credentials import CredentialStore
from gateway.access.decision import CardRead, Decider, Reason
from gateway.access.presence import Presence
from gateway.access.visitors import VisitorPassError, issue_pass, qr_svg
from gateway.clock import ManualClock
from gateway.model import from_datetime
from gateway.rules.schedule import CalendarConfig
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import access_credentials

TZ = ZoneInfo("Asia/Shanghai")
HASHER = CardHasher(b"visitor-test-key-0123456789ab")
CFG = AccessConfig.model_validate(
    {
        "areas": [{"id": "estate"}],
        "doors": [{"id": "gate_north", "area": "estate"}, {"id": "gate_south", "area": "estate"}],
        "groups": {"visitors": {"doors": ["gate_*"]}, "residents": {"doors": ["*"]}},
        "visitors": {"qr_prefix": "GWV1:"},
    }
)
DOORS = {d.id: d for d in CFG.doors}


def at(text: str) -> int:
    return from_datetime(datetime.fromisoformat(text).replace(tzinfo=TZ))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 20, 8, 0, tzinfo=TZ))


@pytest_asyncio.fixture(loop_scope="function")
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    s = EventStore(f"sqlite+aiosqlite:///{tmp_path}/events.db")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def creds(store: EventStore, clock: ManualClock) -> CredentialStore:
    return CredentialStore(store, HASHER, clock)


def decide(creds: CredentialStore, door: str, token: str, ts: int, direction: str = "in") -> Reason:
    decider = Decider(CFG, CalendarConfig(), "Asia/Shanghai", creds, Presence())
    read = CardRead("qr1", DOORS[door], direction, ts, "qr", token, "qr")  # type: ignore[arg-type]
    return decider.decide(read).reason


async def test_token_is_returned_once_and_stored_only_as_its_hash(
    store: EventStore, creds: CredentialStore, clock: ManualClock
) -> None:
    cred, token = await issue_pass(creds, CFG, clock, holder="访客 王先生", host="3-1201", hours=4)
    assert re.fullmatch(r"GWV1:[A-Za-z0-9_-]{22}", token)
    assert cred.kind == "visitor" and cred.group == "visitors" and cred.uses_left is None
    assert re.fullmatch(r"V-20261120-[0-9a-f]{8}", cred.id)
    assert cred.card_hash == HASHER.hash("qr", token) and cred.card_uid is None
    assert cred.valid_from == clock.time_ns() == at("2026-11-20 08:00")
    assert cred.valid_until == at("2026-11-20 12:00")
    assert cred.data == {"host": "3-1201"}
    assert creds.lookup("qr", token) == cred
    async with store.begin() as conn:
        (row,) = (await conn.execute(select(access_credentials))).all()
    assert token not in repr(tuple(row)) and token[5:] not in repr(tuple(row))
    _, other = await issue_pass(creds, CFG, clock, holder="访客", host="3-1201")
    assert other != token


async def test_pass_expires_mid_day(creds: CredentialStore, clock: ManualClock) -> None:
    _, token = await issue_pass(creds, CFG, clock, holder="访客", host="5-0302", hours=4)
    assert decide(creds, "gate_north", token, at("2026-11-20 07:59")) is Reason.NOT_YET_VALID
    assert decide(creds, "gate_north", token, at("2026-11-20 11:59")) is Reason.GRANTED
    assert decide(creds, "gate_north", token, at("2026-11-20 12:01"), "out") is Reason.EXPIRED
    assert decide(creds, "gate_north", "GWV1:" + "x" * 22, at("2026-11-20 10:00")) is Reason.UNKNOWN


async def test_default_hours_and_single_use(
    store: EventStore, creds: CredentialStore, clock: ManualClock
) -> None:
    cred, token = await issue_pass(creds, CFG, clock, holder="快递", host="物业", uses=1)
    assert cred.valid_until == clock.time_ns() + 4 * 3600 * 10**9  # visitors.default_hours
    decider = Decider(CFG, CalendarConfig(), "Asia/Shanghai", creds, Presence())
    read = CardRead("qr1", DOORS["gate_north"], "in", at("2026-11-20 09:00"), "qr", token, "qr")
    first = decider.decide(read)
    assert first.granted and first.uses_left == 0
    async with store.begin(write=True) as conn:  # what the service does with it
        await creds.consume_in(conn, cred.id, 0)
    assert decider.decide(read).reason is Reason.USED_UP
    reloaded = CredentialStore(store, HASHER, clock)
    await reloaded.load()
    assert reloaded.lookup("qr", token) is not None
    assert reloaded.lookup("qr", token).uses_left == 0  # type: ignore[union-attr]


async def test_pass_for_some_doors(creds: CredentialStore, clock: ManualClock) -> None:
    _, token = await issue_pass(
        creds, CFG, clock, holder="装修工", host="3-1201", doors=["gate_north"]
    )
    assert decide(creds, "gate_north", token, at("2026-11-20 09:00")) is Reason.GRANTED
    assert decide(creds, "gate_south", token, at("2026-11-20 09:00")) is Reason.NO_PERMISSION


@pytest.mark.parametrize("kwargs", [{"hours": 0}, {"hours": 24 * 32}, {"uses": 0}, {"doors": [""]}])
async def test_bad_passes_are_refused(
    creds: CredentialStore, clock: ManualClock, kwargs: dict[str, object]
) -> None:
    with pytest.raises(VisitorPassError):
        await issue_pass(creds, CFG, clock, holder="访客", host="h", **kwargs)  # type: ignore[arg-type]
    assert len(creds) == 0


def test_qr_svg_is_a_stable_svg() -> None:
    token = "GWV1:AbCdEfGhIjKlMnOpQrStUv"
    svg = qr_svg(token)
    assert svg.lstrip().startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert qr_svg(token) == svg
    assert qr_svg("GWV1:AbCdEfGhIjKlMnOpQrStUw") != svg
