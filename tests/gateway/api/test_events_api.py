"""The event log over HTTP against a real gateway: events published on the bus,
stored by the recorder, read back newest first in pages, filtered by type
(exact and 'prefix.*'), source and time, and masked by the caller's role."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from tests.fixtures.api import ApiHarness, api_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

E = "/api/v1/events"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with api_gateway(tmp_path_factory.mktemp("events")) as h:
        yield h


async def publish_stored(api: ApiHarness, *events: tuple[str, str, dict[str, Any]]) -> list[int]:
    """Publish events on the bus, wait until the recorder has stored them; their ids."""
    for type_, source, data in events:
        await api.event(type_, source, data)
    sources = {s for _, s, _ in events}
    async with asyncio.timeout(15):
        while True:
            rows = [r for s in sources for r in await api.ctx.store.query(source=s, limit=10_000)]
            if len(rows) >= len(events):
                return sorted(r.id for r in rows)
            await asyncio.sleep(0.02)


async def test_pages_newest_first_with_before_id(api: ApiHarness) -> None:
    ids = await publish_stored(api, *[("test.page", "pager", {"n": i}) for i in range(7)])
    viewer = await api.client("viewer")
    seen: list[int] = []
    pages = 0
    params: dict[str, Any] = {"source": "pager", "limit": 3}
    while True:
        r = await viewer.get(E, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        seen += [e["id"] for e in page["items"]]
        if page["next_before_id"] is None:
            break
        assert page["next_before_id"] == page["items"][-1]["id"]
        params["before_id"] = page["next_before_id"]
    assert seen == list(reversed(ids)) and pages == 3
    first = (await viewer.get(E, params={"source": "pager", "limit": 1})).json()["items"][0]
    assert first["type"] == "test.page" and first["data"] == {"n": 6}
    assert first["ts"].endswith("Z")
    exact = await viewer.get(E, params={"source": "pager", "limit": 7})
    assert exact.json()["next_before_id"] is None  # no empty last page


async def test_type_filters_exact_prefix_and_time(api: ApiHarness) -> None:
    before = datetime.now(UTC)
    ids = await publish_stored(
        api,
        ("zone.enter", "pfx", {}),
        ("zone.leave", "pfx", {}),
        ("zonex.other", "pfx", {}),
        ("door.forced", "pfx", {}),
    )
    viewer = await api.client("viewer")

    async def types(**params: Any) -> list[str]:
        r = await viewer.get(E, params={"source": "pfx", **params})
        assert r.status_code == 200, r.text
        return [e["type"] for e in r.json()["items"]]

    assert await types(type="zone.*") == ["zone.leave", "zone.enter"]
    assert await types(type=["zone.enter", "door.*"]) == ["door.forced", "zone.enter"]
    assert await types(type="zone") == []  # exact: no such type
    assert await types(type="*") == ["door.forced", "zonex.other", "zone.leave", "zone.enter"]
    assert await types(type="zone%") == []  # no SQL wildcards
    assert await types(since=before.isoformat()) == await types()
    assert await types(until=before.isoformat()) == []
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert await types(since=later) == []
    assert await types(before_id=ids[1]) == ["zone.enter"]


async def test_card_uids_and_phones_are_masked_by_role(api: ApiHarness) -> None:
    data = {
        "card_uid": "04A1B2C3D4",
        "door": "east gate",
        "person": {"name": "王保安", "phone": "+8613800000003"},
        "reads": [{"uid": "DEADBEEF"}, {"credential": {"type": "card", "number": 12345678}}],
    }
    await publish_stored(api, ("access.blacklisted", "reader-mask", data))
    seen: dict[str, dict[str, Any]] = {}
    for role in ("viewer", "guard", "engineer", "supervisor", "admin"):
        c = await api.client(role)
        (item,) = (await c.get(E, params={"source": "reader-mask"})).json()["items"]
        seen[role] = item["data"]
    assert seen["viewer"] == {
        "card_uid": "****C3D4",
        "door": "east gate",
        "person": {"name": "王保安", "phone": "+86138****0003"},
        "reads": [{"uid": "****BEEF"}, {"credential": {"type": "****", "number": "****5678"}}],
    }
    for role in ("guard", "engineer"):
        assert seen[role]["card_uid"] == "****C3D4"
        assert seen[role]["person"]["phone"] == "+8613800000003"
        assert seen[role]["reads"][0] == {"uid": "****BEEF"}
    assert seen["supervisor"] == data and seen["admin"] == data
    # the store keeps the full data: masking is only on the way out
    (stored,) = await api.ctx.store.query(source="reader-mask")
    assert stored.event.data == data


async def test_bad_queries_and_anonymous(api: ApiHarness) -> None:
    viewer, anon = await api.client("viewer"), await api.client(None)
    r = await anon.get(E)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    for params in (
        {"limit": 0},
        {"limit": 501},
        {"limit": "many"},
        {"before_id": 0},
        {"since": "2026-01-01T00:00:00"},  # no zone: ambiguous
        {"until": "yesterday"},
    ):
        assert (await viewer.get(E, params=params)).status_code == 422, params
    ok = await viewer.get(E, params={"limit": 500, "since": "2026-01-01T00:00:00+08:00"})
    assert ok.status_code == 200
