"""The live stream against a real gateway: uvicorn, the real alarm manager,
and the `websockets` client library as the other end."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.datastructures import Headers
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from gateway.api.live.render import Renderer
from gateway.api.routes.live import same_origin
from gateway.api.schemas.alarms import AlarmOut
from gateway.api.schemas.devices import PointOut
from gateway.model import Event, Quality, Reading, to_datetime
from tests.fixtures.api import ApiHarness, api_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOT = "tx1.winding_temp_a"
HOT_ALARM = f"tx1-hot@{HOT}"
# The alarm engine's flood and chattering detection out of reach: these tests
# raise and clear one alarm many times in a minute and want each transition.
ALARMS = {
    "chattering": {"count": 1_000_000, "window_s": 60},
    "flood": {"start_above": 1_000_000_000, "end_below": 1, "window_s": 600},
}
Msg = dict[str, Any]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with api_gateway(tmp_path_factory.mktemp("live"), alarms=ALARMS) as h:
        yield h


def ws_url(h: ApiHarness) -> str:
    return h.url.replace("http://", "ws://") + "/api/v1/live"


class Stream:
    """One client: every message it received, in order."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.got: list[Msg] = []

    async def next(self, timeout: float = 10.0) -> Msg:
        msg: Msg = json.loads(await asyncio.wait_for(self.conn.recv(), timeout))
        self.got.append(msg)
        return msg

    async def until(self, pred: Callable[[Msg], bool], timeout: float = 10.0) -> Msg:
        """Read until a message matches ``pred`` (everything read is kept in ``got``)."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.next(timeout)
                if pred(msg):
                    return msg

    async def send(self, doc: Msg) -> None:
        await self.conn.send(json.dumps(doc))

    def seqd(self) -> list[Msg]:
        return [m for m in self.got if "seq" in m and m["type"] in ("alarm", "event")]

    async def close(self) -> None:
        await self.conn.close()


async def open_stream(
    h: ApiHarness,
    role: str = "viewer",
    points: list[str] | None = None,
    resume: Msg | None = None,
    **kwargs: Any,
) -> Stream:
    headers = {"Authorization": f"Bearer {await h.token(role)}"}
    conn = await connect(ws_url(h), additional_headers=headers, **kwargs)
    s = Stream(conn)
    await s.send({"type": "hello", "resume": resume, "points": points or []})
    return s


RAISED = ("activated", "reactivated")  # the first activation, and the next ones


def alarm_of(msg: Msg, alarm_id: str, *transitions: str) -> bool:
    return (
        msg["type"] == "alarm"
        and msg["alarm"]["id"] == alarm_id
        and (not transitions or msg["transition"] in transitions)
    )


def raised(msg: Msg) -> bool:
    return alarm_of(msg, HOT_ALARM, *RAISED)


async def raise_hot(h: ApiHarness) -> None:
    await h.reading(HOT, 120.0)


async def clear_hot(h: ApiHarness) -> None:
    await h.reading(HOT, 50.0)


async def closed_with(conn: ClientConnection) -> int | None:
    """Read until the server closes; its close code."""
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(10):
            while True:
                await conn.recv()
    return info.value.rcvd.code if info.value.rcvd else None


# -- the stream -------------------------------------------------------------------


async def test_welcome_and_snapshot_then_an_alarm_raised_by_a_reading(api: ApiHarness) -> None:
    s = await open_stream(api)
    welcome = await s.next()
    assert welcome == {
        "type": "welcome",
        "epoch": api.ctx.hub.epoch,
        "seq": welcome["seq"],
        "resumed": False,
    }
    snapshot = await s.next()
    assert snapshot["type"] == "snapshot" and snapshot["seq"] == welcome["seq"]
    ids = [AlarmOut.model_validate(a).id for a in snapshot["alarms"]]
    assert ids == [r.id for r in api.ctx.alerting.manager.records()]

    await raise_hot(api)
    msg = await s.until(raised)
    assert msg["seq"] > welcome["seq"]
    alarm = AlarmOut.model_validate(msg["alarm"])
    assert alarm.state == "unacknowledged" and alarm.value == 120.0 and alarm.active
    assert alarm.device_name == "1# 变压器" and alarm.location == "B1 配电房"
    assert msg["user"] == "" and msg["note"] == ""
    await clear_hot(api)
    await s.until(lambda m: alarm_of(m, HOT_ALARM, "cleared"))
    seqs = [m["seq"] for m in s.seqd()]
    assert seqs == list(range(welcome["seq"] + 1, seqs[-1] + 1))  # consecutive, none lost
    await s.close()


async def test_readings_of_subscribed_points_arrive_and_no_others(api: ApiHarness) -> None:
    s = await open_stream(api, points=["tx1.*"])
    await s.until(lambda m: m["type"] == "snapshot")
    await api.reading("pump1.pressure", 0.5)
    await api.reading("tx1.load_pct", 55.0)
    await api.reading("tx1.winding_temp_a", 61.5)

    def points_seen() -> dict[str, PointOut]:
        return {
            p.point: p
            for m in s.got
            if m["type"] == "readings"
            for p in (PointOut.model_validate(x) for x in m["readings"])
        }

    await s.until(lambda m: m["type"] == "readings" and points_seen().get(HOT) is not None)
    while points_seen()[HOT].value != 61.5 or "tx1.load_pct" not in points_seen():
        await s.until(lambda m: m["type"] == "readings")
    seen = points_seen()
    assert set(seen) <= {"tx1.winding_temp_a", "tx1.load_pct"}
    load = seen["tx1.load_pct"]
    assert (load.device, load.name, load.unit, load.value) == ("tx1", "load_pct", "%", 55.0)
    assert load.quality == "good" and load.ts is not None and load.age_s is not None

    await s.send({"type": "subscribe", "points": ["pump1.*"]})
    await api.reading("pump1.pressure", 0.7)
    await s.until(
        lambda m: (
            m["type"] == "readings"
            and any(r["point"] == "pump1.pressure" and r["value"] == 0.7 for r in m["readings"])
        )
    )
    await s.close()


async def test_resume_after_a_reconnect_replays_exactly_the_missed_messages(
    api: ApiHarness,
) -> None:
    witness = await open_stream(api)  # connected throughout
    await witness.until(lambda m: m["type"] == "snapshot")
    s = await open_stream(api)
    welcome = await s.next()
    await raise_hot(api)
    last = await s.until(raised)
    await s.close()

    await clear_hot(api)  # two transitions while it is away
    await raise_hot(api)
    await witness.until(lambda m: alarm_of(m, HOT_ALARM, "cleared"))
    end = await witness.until(raised)

    again = await open_stream(api, resume={"epoch": welcome["epoch"], "seq": last["seq"]})
    hello = await again.next()
    assert hello["type"] == "welcome" and hello["resumed"] is True
    while not again.seqd() or again.seqd()[-1]["seq"] < end["seq"]:
        msg = await again.next()
        assert msg["type"] != "snapshot"
    missed = [m for m in witness.seqd() if last["seq"] < m["seq"] <= end["seq"]]
    assert [m for m in again.seqd() if m["seq"] <= end["seq"]] == missed
    transitions = [m["transition"] for m in missed if alarm_of(m, HOT_ALARM)]
    assert transitions == ["cleared", "reactivated"]
    await clear_hot(api)
    for st in (witness, again):
        await st.close()


async def test_an_unknown_epoch_or_seq_gets_a_fresh_snapshot(api: ApiHarness) -> None:
    for resume in (
        {"epoch": "0000000000000000", "seq": 1},
        {"epoch": api.ctx.hub.epoch, "seq": 10**9},
    ):
        s = await open_stream(api, resume=resume)
        welcome = await s.next()
        assert welcome["resumed"] is False
        assert (await s.next())["type"] == "snapshot"
        await s.close()


async def test_event_data_is_masked_by_role(api: ApiHarness) -> None:
    viewer, admin = await open_stream(api, "viewer"), await open_stream(api, "admin")
    for s in (viewer, admin):
        await s.until(lambda m: m["type"] == "snapshot")
    await api.event("access.granted", "gate1", {"card": "04A1B2C3D4A1B2", "phone": "13800000001"})

    def granted(m: Msg) -> bool:
        return bool(m["type"] == "event" and m["event"]["type"] == "access.granted")

    seen_by_viewer = (await viewer.until(granted))["event"]
    seen_by_admin = (await admin.until(granted))["event"]
    assert seen_by_viewer["data"] == {"card": "****A1B2", "phone": "138****0001"}
    assert seen_by_admin["data"] == {"card": "04A1B2C3D4A1B2", "phone": "13800000001"}
    assert seen_by_viewer["id"] is None and seen_by_viewer["source"] == "gate1"
    for s in (viewer, admin):
        await s.close()


async def test_ping_pong_and_bad_messages_get_an_error_not_a_disconnect(
    api: ApiHarness,
) -> None:
    s = await open_stream(api)
    await s.until(lambda m: m["type"] == "snapshot")
    await s.send({"type": "ping"})
    assert await s.until(lambda m: m["type"] in ("pong", "error")) == {"type": "pong"}
    await s.conn.send("{oops")
    err = await s.until(lambda m: m["type"] in ("pong", "error"))
    assert err["type"] == "error" and "not JSON" in err["detail"]
    await s.send({"type": "subscribe", "points": "tx1.*"})
    err = await s.until(lambda m: m["type"] in ("pong", "error"))
    assert "subscribe.points" in err["detail"]
    await s.conn.send(b"\x00binary")
    err = await s.until(lambda m: m["type"] in ("pong", "error"))
    assert "text frames" in err["detail"]
    await s.send({"type": "hello"})
    err = await s.until(lambda m: m["type"] in ("pong", "error"))
    assert "already" in err["detail"]
    await s.send({"type": "ping"})  # still connected and answering
    assert await s.until(lambda m: m["type"] in ("pong", "error")) == {"type": "pong"}
    await s.close()


async def test_a_first_message_that_is_not_hello_closes_4400(api: ApiHarness) -> None:
    headers = {"Authorization": f"Bearer {await api.token('viewer')}"}
    for first in ('{"type":"ping"}', "hello?"):
        async with connect(ws_url(api), additional_headers=headers) as conn:
            await conn.send(first)
            assert await closed_with(conn) == 4400


async def test_readings_are_rendered_as_the_rest_api_renders_points(api: ApiHarness) -> None:
    renderer = Renderer(api.ctx)
    now = api.now()
    cases = [
        Reading("tx1.load_pct", 55.5, now - 1_500_000_000),
        Reading("tx1.winding_temp_a", 7, 1_795_255_317_000_000_000, Quality.UNCERTAIN),
        Reading("pump1.running", True, now),
        Reading("pump1.pressure", float("nan"), now, Quality.BAD),
        Reading("fire1.alarm", 'fault "E2" 故障', now),
        Reading("x9.unknown_point", -1e20, now),
        Reading("x9.inf", float("-inf"), 0),
    ]
    doc = json.loads(renderer.readings({r.point: r for r in cases}, now))
    assert doc["type"] == "readings"
    expected = []
    for r in cases:
        meta = renderer.point_meta(r.point)
        value = None if isinstance(r.value, float) and not math.isfinite(r.value) else r.value
        out = PointOut(
            point=r.point,
            device=meta.device,
            name=meta.name,
            unit=meta.unit,
            description=meta.description,
            value=value,
            quality=r.quality.value,
            ts=to_datetime(r.ts),
            age_s=round((now - r.ts) / 1e9, 3),
        )
        expected.append(json.loads(out.model_dump_json()))
    assert doc["readings"] == expected
    assert expected[0]["unit"] == "%" and expected[5]["device"] == "x9"


async def test_a_message_that_cannot_be_rendered_is_skipped_not_fatal(api: ApiHarness) -> None:
    renderer = Renderer(api.ctx)
    bad = Event("odd.event", "drv", api.now(), {"blob": object()})
    assert json.loads(renderer.message(7, bad, "admin")) == {
        "type": "error",
        "detail": "this message could not be rendered",
        "seq": 7,
    }
    ok = json.loads(renderer.message(8, Event("door.forced", "gate1", api.now()), "admin"))
    assert ok["type"] == "event" and ok["seq"] == 8


async def test_a_client_that_never_says_hello_is_closed_4408(
    api: ApiHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.api.live.session as session

    monkeypatch.setattr(session, "HELLO_TIMEOUT_S", 0.2)
    headers = {"Authorization": f"Bearer {await api.token('viewer')}"}
    async with connect(ws_url(api), additional_headers=headers) as conn:
        assert await closed_with(conn) == 4408


# -- authentication ----------------------------------------------------------------


async def test_no_or_bad_credentials_close_4401(api: ApiHarness) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer gw_not-a-real-token"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Cookie": "gw_session=forged", "Origin": api.url},
    ):
        async with connect(ws_url(api), additional_headers=headers) as conn:
            assert await closed_with(conn) == 4401, headers


async def _login(api: ApiHarness, username: str, role: str) -> str:
    password = await api.user(username, role)
    async with httpx.AsyncClient(base_url=api.url) as c:
        r = await c.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        cookie = r.cookies.get("gw_session")
    assert cookie
    return cookie


async def test_a_session_cookie_works_only_from_the_same_origin(api: ApiHarness) -> None:
    cookie = await _login(api, "live-guard", "guard")
    headers = {"Cookie": f"gw_session={cookie}"}
    async with connect(ws_url(api), additional_headers=headers, origin=Origin(api.url)) as conn:
        s = Stream(conn)
        await s.send({"type": "hello"})
        assert (await s.next())["type"] == "welcome"
    for origin in ("http://evil.example", "http://127.0.0.1:1", "null", None):
        extra = dict(headers, **({"Origin": origin} if origin else {}))
        async with connect(ws_url(api), additional_headers=extra) as conn:
            assert await closed_with(conn) == 4403, origin


async def test_same_origin_compares_the_origin_with_the_host() -> None:
    def check(origin: str, host: str, scheme: str = "http") -> bool:
        return same_origin(Headers({"origin": origin, "host": host}), scheme)

    assert check("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert check("https://gw.example", "GW.example:443", "https")
    assert check("http://gw.example:80", "gw.example")
    assert not check("http://gw.example.evil", "gw.example")
    assert not check("http://gw.example:8081", "gw.example:8080")
    assert not check("null", "gw.example")
    assert not check("", "gw.example")
    assert not check("ftp://gw.example", "gw.example")


async def test_a_revoked_token_loses_its_stream(
    api: ApiHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.api.live.session as session

    monkeypatch.setattr(session, "REAUTH_INTERVAL_S", 0.2)
    token, info = await api.ctx.auth.tokens.create("live-revoked", "viewer", "tests")
    conn = await connect(ws_url(api), additional_headers={"Authorization": f"Bearer {token}"})
    s = Stream(conn)
    await s.send({"type": "hello"})
    await s.until(lambda m: m["type"] == "snapshot")
    assert await api.ctx.auth.tokens.revoke(info.id)
    assert await closed_with(conn) == 4401


# -- a slow client -------------------------------------------------------------------


def _tiny_socket(url: str) -> socket.socket:
    """A client socket with a small receive buffer, so that a client that does
    not read makes the server's writes back up quickly."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


async def test_a_slow_client_gets_every_transition_and_coalesced_readings(
    api: ApiHarness,
) -> None:
    points = [f"tx1.load_{i}" for i in range(50)]
    fast = await open_stream(api, points=["*"])
    slow = await open_stream(api, points=["*"], sock=_tiny_socket(api.url), max_queue=1)
    welcome = await slow.next()
    await slow.until(lambda m: m["type"] == "snapshot")  # then it stops reading
    start = welcome["seq"]
    last: dict[str, float] = {}
    for i in range(2_000):
        point = points[i % 50]
        last[point] = float(i)
        await api.reading(point, float(i))
        if i % 100 == 99:
            await (raise_hot(api) if i % 200 == 99 else clear_hot(api))
            await asyncio.sleep(0.01)
    # The fast client gets all 20 while the slow one reads nothing.
    for _ in range(20):
        await fast.until(lambda m: alarm_of(m, HOT_ALARM))

    got: list[Msg] = []
    while len([m for m in got if alarm_of(m, HOT_ALARM)]) < 20:
        got.append(await slow.next())
    while any(v != last[p] for p, v in _latest_values(slow.got).items() if p in last) or not set(
        points
    ) <= set(_latest_values(slow.got)):
        await slow.until(lambda m: m["type"] == "readings")
    assert not any(m["type"] == "snapshot" for m in got)
    transitions = [m["transition"] for m in got if alarm_of(m, HOT_ALARM)]
    assert transitions == ["reactivated", "cleared"] * 10
    seqs = [m["seq"] for m in slow.seqd()]
    assert seqs == list(range(start + 1, seqs[-1] + 1))  # nothing seq'd lost
    entries = sum(len(m["readings"]) for m in slow.got if m["type"] == "readings")
    assert entries < 2_000  # coalesced: the latest per point, not every reading
    for s in (fast, slow):
        await s.close()


def _latest_values(msgs: list[Msg]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in msgs:
        if m["type"] == "readings":
            for r in m["readings"]:
                out[r["point"]] = r["value"]
    return out


# -- stopping ------------------------------------------------------------------------


async def test_a_stopping_gateway_closes_the_stream_with_1001(tmp_path: Path) -> None:
    async with api_gateway(tmp_path) as h:
        s = await open_stream(h)
        await s.until(lambda m: m["type"] == "snapshot")
        reader = asyncio.create_task(closed_with(s.conn))
    # The gateway has stopped (leaving the block stops it).
    assert await reader == 1001
