"""Access control over HTTP against a real gateway with a gate and two readers.

Card reads are put on the bus as a reader driver would (``card.presented``);
the real access service decides them and stores the passages, which the API
then lists. Credentials, CSV import/export and visitor passes go through the
API as each role; the event store is read directly to check what was (and
what was not) stored, and the audit trail for every change.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlalchemy import select

from gateway.access.credentials import CredentialStore
from gateway.api.audit import AuditRecord
from gateway.storage.tables import access_credentials, audit, events
from tests.fixtures.api import ApiHarness, api_gateway, site_document

pytestmark = pytest.mark.asyncio(loop_scope="module")

A = "/api/v1/access"
TZ = "Asia/Shanghai"
UID = "04A1B2C3D4"
HEADER = (
    "id,kind,holder,group,card,card_format,plate,valid_from,valid_until,uses_left,"
    "blacklisted,disabled,certifications,phone,unit,note"
)


def access_site(tmp: Any) -> dict[str, Any]:
    doc = site_document(tmp)
    devices = doc["devices"] + [
        {"id": "gate1", "kind": "gate", "name": "北门 North gate", "location": "北门"},
        {"id": "rdr_in", "kind": "card_reader", "name": "北门进"},
        {"id": "rdr_out", "kind": "card_reader", "name": "北门出"},
    ]
    access = {
        "areas": [{"id": "estate", "name": "小区"}],
        "doors": [
            {
                "id": "gate1",
                "area": "estate",
                "readers": [
                    {"device": "rdr_in", "direction": "in"},
                    {"device": "rdr_out", "direction": "out"},
                ],
                "relay": {"device": "rdr_in", "output": 0},
            }
        ],
        "groups": {"residents": {"doors": ["*"]}, "visitors": {"doors": ["gate1"]}},
    }
    return {"devices": devices, "access": access}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    tmp = tmp_path_factory.mktemp("access")
    async with api_gateway(tmp, **access_site(tmp)) as h:
        yield h


async def test_the_runtime_gives_the_api_the_access_service(api: ApiHarness) -> None:
    assert api.gw.access is not None
    assert api.ctx.access is api.gw.access, "Gateway._api_context() must pass access=self.access"


def creds(api: ApiHarness) -> CredentialStore:
    """The running service's credentials (what its decisions look up)."""
    assert api.gw.access is not None and api.gw.access.credentials is not None
    return api.gw.access.credentials


async def put(api: ApiHarness, cid: str, role: str = "supervisor", **body: Any) -> Any:
    c = await api.client(role)
    doc = {"kind": "resident", "holder": f"holder {cid}", "group": "residents", **body}
    return await c.put(f"{A}/credentials/{cid}", json=doc)


async def trail(api: ApiHarness, action: str) -> list[AuditRecord]:
    return await api.ctx.audit.query(action=action)


async def read_card(api: ApiHarness, reader: str, uid: str) -> dict[str, Any]:
    """A card read at ``reader``; the passage the service stored for it."""
    guard = await api.client("guard")
    before = (await guard.get(f"{A}/passages", params={"limit": 1})).json()["items"]
    last = before[0]["id"] if before else 0
    await api.event("card.presented", reader, {"uid": uid, "format": "raw"})
    async with asyncio.timeout(10):
        while True:
            items = (await guard.get(f"{A}/passages", params={"limit": 1})).json()["items"]
            if items and items[0]["id"] > last:
                return dict(items[0])
            await asyncio.sleep(0.02)


# -- roles -----------------------------------------------------------------------------------


async def test_roles_of_the_read_routes(api: ApiHarness) -> None:
    viewer, guard, sup = [await api.client(r) for r in ("viewer", "guard", "supervisor")]
    assert (await viewer.get(f"{A}/passages")).status_code == 403
    assert (await viewer.get(f"{A}/report")).status_code == 403
    assert (await guard.get(f"{A}/passages")).status_code == 200
    assert (await guard.get(f"{A}/presence")).status_code == 403
    assert (await guard.get(f"{A}/credentials")).status_code == 403
    assert (await guard.get(f"{A}/credentials/export")).status_code == 403
    assert (await sup.get(f"{A}/presence")).status_code == 200
    doors = await viewer.get(f"{A}/doors")
    assert doors.status_code == 200, doors.text
    (gate,) = doors.json()
    assert gate["id"] == "gate1" and gate["name"] == "北门 North gate" and gate["kind"] == "gate"
    assert [r["device"] for r in gate["readers"]] == ["rdr_in", "rdr_out"]
    assert gate["state"] == {"open": None, "held": False, "forced": False}  # supervised
    anonymous = await api.client(None)
    assert (await anonymous.get(f"{A}/doors")).status_code == 401


# -- credentials -----------------------------------------------------------------------------


async def test_create_replace_and_the_card_is_hashed(api: ApiHarness) -> None:
    r = await put(api, "R-0001", card="04:a1:b2:c3:d4", phone="13800000009", unit="3-2-1201")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["card_uid"] == UID and body["has_card"] and body["data"]["unit"] == "3-2-1201"
    async with api.ctx.store.begin() as conn:
        query = select(access_credentials).where(access_credentials.c.id == "R-0001")
        row = (await conn.execute(query)).one()
    assert row.card_hash == creds(api).hasher.card(UID)
    # A replace without a card keeps the card; the holder changes.
    r = await put(api, "R-0001", holder="张三")
    assert r.status_code == 200, r.text
    assert r.json()["holder"] == "张三" and r.json()["card_uid"] == UID
    sup = await api.client("supervisor")
    got = await sup.get(f"{A}/credentials/R-0001")
    assert got.status_code == 200 and got.json()["holder"] == "张三"
    assert [a.outcome for a in await trail(api, "credential.put")][:2] == ["ok", "ok"]
    assert all(UID not in str(a.detail) for a in await trail(api, "credential.*"))


async def test_credential_errors(api: ApiHarness) -> None:
    await put(api, "R-0002", card="0A0B0C0D")
    dup = await put(api, "R-0003", card="0a:0b:0c:0d")
    assert dup.status_code == 409 and "R-0002" in dup.json()["detail"]
    assert (await put(api, "R-0003", card="not hex")).status_code == 422
    assert (await put(api, "R-0003", card="0E0E", group="nobody")).status_code == 422
    assert (await put(api, "R-0003", kind="alien", card="0E0E")).status_code == 422
    sup = await api.client("supervisor")
    assert (await sup.get(f"{A}/credentials/R-9999")).status_code == 404
    assert (await sup.delete(f"{A}/credentials/R-9999")).status_code == 404
    assert (await sup.get(f"{A}/credentials/bad%20id")).status_code == 422
    guard = await api.client("guard")
    refused = await guard.put(
        f"{A}/credentials/R-0003",
        json={"kind": "resident", "holder": "x", "group": "residents", "card": "0E0E"},
    )
    assert refused.status_code == 403
    puts = await trail(api, "credential.put")
    assert (puts[0].outcome, puts[0].role) == ("denied", "guard")
    failed = [a for a in puts if a.outcome == "failed" and a.target == "R-0003"]
    assert len(failed) == 3  # duplicate, bad card, unknown group (a bad kind fails validation)
    assert "R-0002" in failed[-1].detail["reason"]


async def test_blacklist_masking_and_delete(api: ApiHarness) -> None:
    await put(api, "R-0010", card="DEADBEEF01")
    guard, sup = await api.client("guard"), await api.client("supervisor")
    r = await guard.post(f"{A}/credentials/R-0010/blacklist", json={"reason": "lost card"})
    assert r.status_code == 200, r.text
    assert r.json()["blacklisted"] and r.json()["card_uid"] == "****EF01"  # guard: masked
    held = creds(api).get("R-0010")
    assert held is not None and held.blacklisted  # the decisions see it at once
    assert (await guard.post(f"{A}/credentials/R-0010/unblacklist")).status_code == 403
    r = await sup.post(f"{A}/credentials/R-0010/unblacklist")
    assert r.status_code == 200 and not r.json()["blacklisted"]
    assert r.json()["card_uid"] == "DEADBEEF01"
    assert (await sup.post(f"{A}/credentials/R-9999/blacklist")).status_code == 404
    assert (await sup.delete(f"{A}/credentials/R-0010")).status_code == 204
    assert (await sup.get(f"{A}/credentials/R-0010")).status_code == 404
    black = await trail(api, "credential.blacklist")
    assert [(a.target, a.outcome) for a in black] == [("R-9999", "failed"), ("R-0010", "ok")]
    assert black[1].detail == {"note": "lost card"} and black[1].role == "guard"
    unblack = await trail(api, "credential.unblacklist")
    assert [a.outcome for a in unblack] == ["ok", "denied"]
    assert [a.outcome for a in await trail(api, "credential.delete")][:2] == ["ok", "failed"]


async def test_list_filters_and_pages(api: ApiHarness) -> None:
    for i in range(5):
        await put(api, f"S-{i:03d}", kind="staff", card=f"5500{i:02X}", unit="物业")
    sup = await api.client("supervisor")
    seen: list[str] = []
    params: dict[str, Any] = {"kind": "staff", "limit": 2}
    while True:
        page = (await sup.get(f"{A}/credentials", params=params)).json()
        seen += [c["id"] for c in page["items"]]
        if page["next_offset"] is None:
            break
        params["offset"] = page["next_offset"]
    assert seen == [f"S-{i:03d}" for i in range(5)]
    found = (await sup.get(f"{A}/credentials", params={"text": "s-003"})).json()["items"]
    assert [c["id"] for c in found] == ["S-003"]


# -- CSV -------------------------------------------------------------------------------------


async def test_csv_import_bad_lines_then_good_and_export(api: ApiHarness) -> None:
    sup, admin, guard = [await api.client(r) for r in ("supervisor", "admin", "guard")]
    headers = {"Content-Type": "text/csv"}
    bad = "\n".join(
        [
            HEADER,
            "C-001,resident,李四,residents,11223344,hex,,,,,false,false,,,,",
            "C-002,alien,王五,residents,11223355,hex,,,,,false,false,,,,",
            "C-003,resident,赵六,residents,zzzz,hex,,,,,false,false,,,,",
        ]
    )
    r = await sup.post(f"{A}/credentials/import", content=bad.encode(), headers=headers)
    assert r.status_code == 422, r.text
    lines = sorted({d["loc"][1] for d in r.json()["detail"]})
    assert lines == [3, 4]
    assert {d["loc"][2] for d in r.json()["detail"]} == {"kind", "card"}
    assert creds(api).get("C-001") is None  # nothing applied
    assert (await sup.get(f"{A}/credentials/C-001")).status_code == 404
    wrong = await sup.post(f"{A}/credentials/import", json={"a": 1})
    assert wrong.status_code == 415
    good = "\n".join(
        [
            HEADER,
            "C-001,resident,李四,residents,11223344,hex,,,,,false,false,,13800000011,1-1-101,",
            "C-002,vehicle,王五,residents,,hex,沪A12345,,,,false,false,,,,",
        ]
    )
    r = await sup.post(f"{A}/credentials/import", content=good.encode(), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 2, "replaced": 0, "total": 2}
    r = await sup.post(f"{A}/credentials/import", content=good.encode(), headers=headers)
    assert r.json() == {"created": 0, "replaced": 2, "total": 2}
    assert (await guard.post(f"{A}/credentials/import", content=good.encode())).status_code == 403

    plain = await sup.get(f"{A}/credentials/export")
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/csv")
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(plain.text))}
    assert rows["C-001"]["holder"] == "李四" and "11223344" not in plain.text
    assert (await sup.get(f"{A}/credentials/export", params={"with_uid": True})).status_code == 403
    full = await admin.get(f"{A}/credentials/export", params={"with_uid": True})
    assert full.status_code == 200 and "11223344" in full.text
    imports = await trail(api, "credential.import")
    assert [a.outcome for a in imports] == ["denied", "ok", "ok", "failed", "failed"]
    assert imports[-1].detail["lines"] == [3, 4]
    exports = await trail(api, "credential.export")
    assert [(a.role, a.outcome, a.detail["with_uid"]) for a in exports] == [
        ("admin", "ok", True),
        ("supervisor", "denied", True),
        ("supervisor", "ok", False),
    ]


# -- visitor passes --------------------------------------------------------------------------


async def test_visitor_pass_token_once_and_not_stored(api: ApiHarness) -> None:
    guard = await api.client("guard")
    r = await guard.post(f"{A}/visitors", json={"holder": "访客甲", "host": "3-2-1201", "hours": 2})
    assert r.status_code == 201, r.text
    answer = r.json()
    token = answer["token"]
    prefix = api.ctx.site.config.access.visitors.qr_prefix
    assert token.startswith(prefix) and len(token) >= len(prefix) + 20
    assert answer["qr_svg"].lstrip().startswith(("<?xml", "<svg"))
    cred = answer["credential"]
    assert cred["kind"] == "visitor" and cred["group"] == "visitors" and cred["has_card"]
    assert cred["card_uid"] is None
    # Nowhere in the store: not in the credential, not in the audit trail, not in events.
    async with api.ctx.store.begin() as conn:
        for table in (access_credentials, audit, events):
            for row in (await conn.execute(select(table))).all():
                assert token not in str(tuple(row)), f"token stored in {table.name}"
    stored = creds(api).get(cred["id"])
    assert stored is not None and stored.card_hash == creds(api).hasher.hash("qr", token)
    (rec,) = await trail(api, "visitor.issue")
    assert rec.target == cred["id"] and rec.detail["host"] == "3-2-1201"
    viewer = await api.client("viewer")
    assert (
        await viewer.post(f"{A}/visitors", json={"holder": "x", "host": "y"})
    ).status_code == 403
    bad = await guard.post(f"{A}/visitors", json={"holder": "", "host": "y"})
    assert bad.status_code == 422
    # The QR code at a reader is the pass.
    passage = await read_qr(api, token)
    assert passage["granted"] and passage["credential_id"] == cred["id"]
    assert token not in str(passage)


async def test_a_qr_read_leaves_no_token_in_the_store(api: ApiHarness) -> None:
    """The reader's own event (card.presented, value = the token) must not keep
    the token either: it is the pass, as good as the visitor's phone."""
    guard = await api.client("guard")
    r = await guard.post(f"{A}/visitors", json={"holder": "访客乙", "host": "门卫", "uses": 1})
    token = r.json()["token"]
    assert (await read_qr(api, token))["granted"]
    await api.event("test.marker", "visitor-test")  # stored after the reader's event
    async with asyncio.timeout(10):
        while True:
            if await api.ctx.store.query(["test.marker"], source="visitor-test", limit=1):
                break
            await asyncio.sleep(0.02)
    async with api.ctx.store.begin() as conn:
        for table in (access_credentials, events):
            for row in (await conn.execute(select(table))).all():
                assert token not in str(tuple(row)), f"token stored in {table.name}"


async def read_qr(api: ApiHarness, token: str) -> dict[str, Any]:
    guard = await api.client("guard")
    last = (await guard.get(f"{A}/passages", params={"limit": 1})).json()["items"]
    last_id = last[0]["id"] if last else 0
    await api.event("card.presented", "rdr_in", {"value": token, "format": "qr"})
    async with asyncio.timeout(10):
        while True:
            items = (await guard.get(f"{A}/passages", params={"limit": 1})).json()["items"]
            if items and items[0]["id"] > last_id:
                return dict(items[0])
            await asyncio.sleep(0.02)


# -- passages, presence, report --------------------------------------------------------------


async def test_passages_masked_filtered_paged(api: ApiHarness) -> None:
    await put(api, "R-0100", card="0BC614E0")
    granted = await read_card(api, "rdr_in", "0BC614E0")
    assert granted["granted"] and granted["credential_id"] == "R-0100"
    assert granted["direction"] == "in" and granted["door"] == "gate1"
    assert granted["card_masked"].endswith("14E0") and "0BC614E0" not in str(granted)
    assert granted["card_hash"] is None  # guard: no hash either
    denied = await read_card(api, "rdr_in", "FFEEDDCC")
    assert not denied["granted"] and denied["reason"] == "unknown"
    assert denied["credential_id"] is None and "FFEEDDCC" not in str(denied)
    await read_card(api, "rdr_out", "0BC614E0")

    guard, sup = await api.client("guard"), await api.client("supervisor")
    only_denied = (await guard.get(f"{A}/passages", params={"granted": False})).json()["items"]
    assert only_denied and all(not p["granted"] for p in only_denied)
    mine = (await guard.get(f"{A}/passages", params={"credential": "R-0100"})).json()["items"]
    assert [p["direction"] for p in mine] == ["out", "in"]
    by_reason = (await guard.get(f"{A}/passages", params={"reason": "unknown"})).json()
    assert {p["reason"] for p in by_reason["items"]} == {"unknown"}
    assert (await sup.get(f"{A}/passages", params={"limit": 1})).json()["items"][0]["card_hash"]

    seen: list[int] = []
    params: dict[str, Any] = {"door": "gate1", "limit": 2}
    while True:
        page = (await guard.get(f"{A}/passages", params=params)).json()
        seen += [p["id"] for p in page["items"]]
        if page["next_before_id"] is None:
            break
        params["before_id"] = page["next_before_id"]
    assert len(seen) >= 3 and seen == sorted(seen, reverse=True)
    future = datetime(2100, 1, 1, tzinfo=UTC).isoformat()
    assert (await guard.get(f"{A}/passages", params={"since": future})).json()["items"] == []


async def test_presence_and_report(api: ApiHarness) -> None:
    await put(api, "R-0200", card="22446688")
    await read_card(api, "rdr_in", "22446688")
    sup, guard = await api.client("supervisor"), await api.client("guard")
    inside = (await sup.get(f"{A}/presence", params={"area": "estate"})).json()
    me = [p for p in inside if p["credential_id"] == "R-0200"]
    assert me and me[0]["holder"] == "holder R-0200" and me[0]["door"] == "gate1"
    today = datetime.now(ZoneInfo(TZ)).date().isoformat()
    r = await guard.get(f"{A}/report", params={"day": today})
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["day"] == today and rep["timezone"] == TZ
    (gate,) = [d for d in rep["doors"] if d["door"] == "gate1"]
    assert gate["entries"] >= 1 and rep["entries"] >= 1
    assert rep["people_inside"].get("estate", 0) >= 1
    assert (await guard.get(f"{A}/report", params={"day": "2024-13-01"})).status_code == 422
    empty = (await guard.get(f"{A}/report", params={"day": "2001-01-01"})).json()
    assert empty["entries"] == 0 and empty["denials"] == {}
