"""Signed acknowledgement links on a real event store: valid, expired, tampered,
replayed, signed with another secret; the secret file."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select

from gateway.clock import ManualClock
from gateway.notify.acklink import (
    ENV_SECRET,
    SECRET_FILE,
    AckLinks,
    AckSecretError,
    LinkExpired,
    LinkInvalid,
    LinkUsed,
    load_secret,
)
from gateway.notify.oncall_config import OnCallConfig
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import ack_tokens
from tests.gateway.storage.test_eventstore import Backend, _pg_schema

SECRET = b"s" * 32
ALARM = "tx1-winding_hh@tx1.winding_temp_a"


@pytest_asyncio.fixture(loop_scope="function", params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    if request.param == "sqlite":
        backends: AsyncIterator[Backend] | None = None
        s = EventStore(f"sqlite+aiosqlite:///{tmp_path}/gw.db")
    else:
        backends = _pg_schema()
        backend = await backends.__anext__()
        s = backend.store()
    await s.open()
    try:
        yield s
    finally:
        await s.close()
        if backends is not None:
            await backends.aclose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 0, 0, tzinfo=UTC))


def links_of(store: EventStore, clock: ManualClock, secret: bytes = SECRET) -> AckLinks:
    return AckLinks(store, secret, clock, public_url="https://gw.example.cn/", ttl_s=3600)


def token_of(url: str) -> str:
    prefix = "https://gw.example.cn/ack/"
    assert url.startswith(prefix)
    return url[len(prefix) :]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_valid_link_redeems_once_and_records_who(
    store: EventStore, clock: ManualClock
) -> None:
    links = links_of(store, clock)
    token = token_of(await links.issue(ALARM, "zhang"))
    claims = await links.inspect(token)  # what the GET page does: nothing is used
    assert (claims.alarm_id, claims.person) == (ALARM, "zhang")
    assert claims.expires_ts == clock.time_ns() + 3600 * 10**9
    await clock.advance(30)
    assert await links.redeem(token, "link 10.0.0.7") == (ALARM, "zhang")
    async with store.begin() as conn:
        row = (await conn.execute(select(ack_tokens))).one()
    assert row.used_ts == clock.time_ns()
    assert row.used_from == "link 10.0.0.7"
    assert row.expires_ts - row.issued_ts == 3600 * 10**9

    # Replayed: the second use is refused with when and from where the first came.
    with pytest.raises(LinkUsed) as used:
        await links.redeem(token, "link 10.0.0.8")
    assert used.value.used_ts == row.used_ts and used.value.used_from == "link 10.0.0.7"
    assert used.value.claims is not None and used.value.claims.person == "zhang"
    with pytest.raises(LinkUsed):
        await links.inspect(token)


async def test_two_taps_at_once_acknowledge_once(store: EventStore, clock: ManualClock) -> None:
    links = links_of(store, clock)
    token = token_of(await links.issue(ALARM, "zhang"))
    results = await asyncio.gather(
        *(links.redeem(token, f"tap {i}") for i in range(4)), return_exceptions=True
    )
    assert sum(r == (ALARM, "zhang") for r in results) == 1
    assert sum(isinstance(r, LinkUsed) for r in results) == 3


async def test_expired_link(store: EventStore, clock: ManualClock) -> None:
    links = links_of(store, clock)
    token = token_of(await links.issue(ALARM, "li"))
    await clock.advance(3599)
    await links.inspect(token)
    await clock.advance(1)
    with pytest.raises(LinkExpired) as expired:
        await links.redeem(token, "x")
    assert expired.value.claims is not None and expired.value.claims.person == "li"
    with pytest.raises(LinkExpired):
        links.verify(token)
    async with store.begin() as conn:  # not used by the refused attempt
        assert (await conn.execute(select(ack_tokens.c.used_ts))).scalar_one() is None
    assert await links.purge(clock.time_ns() + 1) == 1


async def test_tampered_links_are_refused(store: EventStore, clock: ManualClock) -> None:
    links = links_of(store, clock)
    token = token_of(await links.issue(ALARM, "li"))
    payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    forged_body = dict(body, p="boss")  # someone else's name, same signature
    forged = b64(json.dumps(forged_body).encode()) + "." + signature
    longer = dict(body, e=body["e"] + 86400)  # a longer life
    extended = b64(json.dumps(longer).encode()) + "." + signature
    flipped = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    for bad in (
        forged,
        extended,
        flipped,
        payload + "." + signature[:-2],
        payload,
        "",
        "a.b.c",
        "%%%.###",
        token + "x",
        "x" * 5000,
    ):
        with pytest.raises(LinkInvalid):
            await links.redeem(bad, "x")
        with pytest.raises(LinkInvalid):
            await links.inspect(bad)
    # The genuine link still works afterwards.
    assert await links.redeem(token, "x") == (ALARM, "li")


async def test_signed_payload_that_is_not_ours_is_invalid(
    store: EventStore, clock: ManualClock
) -> None:
    links = links_of(store, clock)
    for body in (b"not json", b"[1,2]", json.dumps({"a": ALARM, "p": "li", "n": "x"}).encode()):
        payload = b64(body)
        token = f"{payload}.{links._sign(payload)}"  # correctly signed, garbled inside
        with pytest.raises(LinkInvalid, match="garbled"):
            links.verify(token)
    # Correctly signed but never stored (a wiped database): unknown.
    minted = links.mint(ALARM, "li", clock.time_ns())
    with pytest.raises(LinkInvalid, match="not issued"):
        await links.redeem(minted.token, "x")


async def test_wrong_secret(store: EventStore, clock: ManualClock) -> None:
    token = token_of(await links_of(store, clock).issue(ALARM, "li"))
    other = links_of(store, clock, secret=b"t" * 32)
    with pytest.raises(LinkInvalid, match="signature"):
        await other.redeem(token, "x")
    with pytest.raises(AckSecretError):
        links_of(store, clock, secret=b"short")


async def test_links_from_the_oncall_config(store: EventStore, clock: ManualClock) -> None:
    config = OnCallConfig(public_url="https://gw.example.cn/estate-a/", ack_link_ttl_h=2)
    links = AckLinks.from_config(store, config, SECRET, clock)
    url = await links.issue(ALARM, "li")
    assert url.startswith("https://gw.example.cn/estate-a/ack/")
    claims = links.verify(url.rsplit("/", 1)[1])
    assert claims.expires_ts == clock.time_ns() + 2 * 3600 * 10**9


async def test_release_makes_a_link_usable_again(store: EventStore, clock: ManualClock) -> None:
    links = links_of(store, clock)
    token = token_of(await links.issue(ALARM, "li"))
    await links.redeem(token, "x")
    await links.release(token)
    assert await links.redeem(token, "y") == (ALARM, "li")


def test_secret_from_env_or_generated_file(tmp_path: Path) -> None:
    env = {ENV_SECRET: "0123456789abcdef0123456789abcdef"}
    assert load_secret(tmp_path, env) == env[ENV_SECRET].encode()
    with pytest.raises(AckSecretError, match="at least 32"):
        load_secret(tmp_path, {ENV_SECRET: "short"})

    data_dir = tmp_path / "var"
    first = load_secret(data_dir, {})
    path = data_dir / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64
    assert load_secret(data_dir, {}) == first  # stable across restarts

    path.write_text("tiny")
    with pytest.raises(AckSecretError, match="delete it"):
        load_secret(data_dir, {})
