"""The acknowledgement page through httpx against a FastAPI app: GET shows,
POST acknowledges; zh-CN and en; 410 / 403 / 409 on bad links; and one tap
end to end: a WeCom robot message to a local receiver, its link, the alarm
acknowledged, the escalation stopped."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from gateway.clock import ManualClock
from gateway.model import Alarm, AlarmState, Priority, from_datetime
from gateway.notify.ack_router import AckRejected, ack_router
from gateway.notify.acklink import AckLinks
from gateway.notify.channels.base import build_channel
from gateway.notify.config import WeComChannelConfig
from gateway.notify.dispatcher import Dispatcher
from gateway.notify.escalation import Escalator
from gateway.notify.oncall_config import OnCallConfig
from gateway.notify.roster import Roster
from gateway.storage.eventstore import EventStore, EventStoreUnavailable
from tests.fixtures import receivers
from tests.fixtures.receivers import Receiver

receiver = receivers.receiver

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 2, 9, 0, tzinfo=SH)
ALARM = "tx1-winding_h@tx1.winding_temp_a"
BASE = "http://gw.test"
CONFIG = OnCallConfig.model_validate(
    {
        "people": {
            "zhang": {
                "name": "张伟",
                "wecom_userid": "zhangwei",
                "certifications": ["hv_electrician"],
            },
            "chen": {"name": "Chen Jie", "locale": "en", "email": "chen@example.cn"},
        },
        "teams": {"electrical": {"members": ["zhang"]}, "management": {"members": ["chen"]}},
        "default_channels": ["wecom"],
        "public_url": BASE,
    }
)
VIEW: dict[str, Any] = {
    "id": ALARM,
    "rule": "tx1-winding_h",
    "description": "1#变压器绕组温度高 <b>",
    "priority": "high",
    "category": "electrical",
    "state": "unacknowledged",
    "device": "tx1",
    "device_name": "1#变压器",
    "location": "B1配电房",
    "value": 128.4,
    "limit": 120,
    "unit": "°C",
    "level": "H",
    "ts": from_datetime(START),
}


@dataclass
class Site:
    store: EventStore
    clock: ManualClock
    links: AckLinks
    client: httpx.AsyncClient
    views: dict[str, Mapping[str, Any]] = field(default_factory=lambda: {ALARM: VIEW})
    acks: list[tuple[str, str, str, str]] = field(default_factory=list)
    fail_with: Exception | None = None
    then: Callable[[str, str], Awaitable[None]] | None = None  # what the alarm manager does

    async def acknowledge(self, alarm_id: str, person: str, note: str, origin: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.acks.append((alarm_id, person, note, origin))
        if self.then is not None:
            await self.then(alarm_id, person)

    async def lookup(self, alarm_id: str) -> Mapping[str, Any] | None:
        return self.views.get(alarm_id)

    async def link(self, person: str = "zhang") -> str:
        return await self.links.issue(ALARM, person)


@pytest_asyncio.fixture(loop_scope="function")
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    store = EventStore(f"sqlite+aiosqlite:///{tmp_path}/gw.db")
    await store.open()
    clock = ManualClock(START)
    links = AckLinks(store, b"k" * 32, clock, public_url=BASE, ttl_s=3600)
    app = FastAPI()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        s = Site(store, clock, links, client)
        app.include_router(ack_router(links, s.acknowledge, roster=Roster(CONFIG), lookup=s.lookup))
        yield s
    await store.close()


async def test_get_shows_the_alarm_and_does_not_acknowledge(site: Site) -> None:
    url = await site.link()
    for _ in range(3):  # chat apps prefetch links; none of this acknowledges
        page = await site.client.get(url)
        assert page.status_code == 200
    assert site.acks == []
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    html = page.text
    assert '<html lang="zh-CN">' in html
    for text in (
        "确认报警",
        "张伟，您好",
        "1#变压器（B1配电房）",
        "128.4 °C ≥ 120 °C (H)",
        "2026-03-02 09:00",
    ):
        assert text in html, text
    assert "1#变压器绕组温度高 &lt;b&gt;" in html  # escaped
    assert '<form method="post"' in html and "<button" in html
    assert "有效期至 2026-03-02 10:00" in html
    await site.links.inspect(url.rsplit("/", 1)[1])  # still unused


async def test_post_acknowledges_once(site: Site) -> None:
    url = await site.link()
    done = await site.client.post(url, data={"note": "已到现场"})
    assert done.status_code == 200
    assert "已确认" in done.text and "谢谢，张伟" in done.text
    ((alarm_id, person, note, origin),) = site.acks
    assert (alarm_id, person, note) == (ALARM, "zhang", "已到现场")
    assert origin.startswith("link 127.0.0.1")

    again = await site.client.post(url)
    assert again.status_code == 409
    assert "链接已使用" in again.text and "2026-03-02 09:00" in again.text
    assert (await site.client.get(url)).status_code == 409
    assert len(site.acks) == 1


async def test_pages_in_english(site: Site) -> None:
    url = await site.link("chen")  # chen reads English
    page = await site.client.get(url)
    assert '<html lang="en">' in page.text
    assert "For Chen Jie" in page.text and "B1配电房" in page.text and ">Acknowledge<" in page.text
    done = await site.client.post(url)
    assert "Thank you, Chen Jie" in done.text
    assert site.acks[0][2] == "acknowledged with the link in a message"  # default note
    # ?lang= overrides the person's language.
    zh = await site.client.get(await site.link("zhang"), params={"lang": "en"})
    assert "Acknowledge alarm" in zh.text
    assert 'action="?lang=en"' in zh.text


async def test_expired_link_is_410(site: Site) -> None:
    url = await site.link()
    await site.clock.advance(3600)
    for response in (await site.client.get(url), await site.client.post(url)):
        assert response.status_code == 410
        assert "链接已过期" in response.text and "2026-03-02 10:00" in response.text
    assert site.acks == []


async def test_tampered_link_is_403(site: Site) -> None:
    url = await site.link()
    base, token = url.rsplit("/", 1)
    payload, signature = token.split(".")
    other = (await site.link("chen")).rsplit("/", 1)[1].split(".")[0]
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for bad in (f"{other}.{signature}", f"{payload}.{flipped}", "garbage"):
        for response in (
            await site.client.get(f"{base}/{bad}"),
            await site.client.post(f"{base}/{bad}"),
        ):
            assert response.status_code == 403
            assert "链接无效" in response.text
    assert site.acks == []
    english = await site.client.get(f"{base}/garbage", params={"lang": "en"})
    assert "Invalid link" in english.text


async def test_refused_and_failed_acknowledgements(site: Site) -> None:
    url = await site.link()
    site.fail_with = EventStoreUnavailable("database is locked")
    busy = await site.client.post(url)
    assert busy.status_code == 503 and "请稍后重试" in busy.text
    site.fail_with = None
    assert (await site.client.post(url)).status_code == 200  # the link was given back

    url = await site.link()
    site.fail_with = AckRejected("报警已被李娜确认")
    refused = await site.client.post(url)
    assert refused.status_code == 409
    assert "报警未能确认：报警已被李娜确认" in refused.text


async def test_gone_or_already_acknowledged_alarm_has_no_button(site: Site) -> None:
    url = await site.link()
    site.views[ALARM] = {**VIEW, "state": "acknowledged"}
    page = await site.client.get(url)
    assert "此报警已被确认" in page.text and "<button" not in page.text
    del site.views[ALARM]
    page = await site.client.get(url)
    assert page.status_code == 200
    assert "此报警已不存在" in page.text and "<button" not in page.text


async def test_one_tap_from_a_wecom_message_stops_the_escalation(
    site: Site, receiver: Receiver
) -> None:
    wecom = build_channel(
        "wecom",
        WeComChannelConfig(type="wecom", key=receiver.wecom_key, url=receiver.wecom_url),
        clock=site.clock,
    )
    dispatcher = Dispatcher({"wecom": wecom}, site.store, site.clock)

    def describe(a: Alarm) -> Mapping[str, Any]:
        return {**VIEW, "state": a.state.value}

    escalator = Escalator(
        site.store, Roster(CONFIG), CONFIG, dispatcher, site.links, site.clock, describe
    )

    async def acknowledged(alarm_id: str, person: str) -> None:
        # The alarm manager stores the transition, then publishes it to the escalator.
        rule, source = alarm_id.split("@")
        acked = Alarm(
            alarm_id, rule, source, AlarmState.ACKNOWLEDGED, Priority.HIGH,
            site.clock.time_ns(), transition="acknowledged", category="electrical",
            route="electrical", user=person,
        )  # fmt: skip
        await escalator.on_alarm(acked)

    site.then = acknowledged
    activated = Alarm(
        ALARM, "tx1-winding_h", "tx1.winding_temp_a", AlarmState.UNACKNOWLEDGED, Priority.HIGH,
        site.clock.time_ns(), transition="activated", category="electrical", route="electrical",
    )  # fmt: skip
    await escalator.on_alarm(activated)
    await dispatcher.drain()
    (message,) = receiver.requests_to("/wecom/send")
    content = message.json["markdown"]["content"]
    assert "1#变压器绕组温度高" in content and "<@zhangwei>" in content
    (url,) = re.findall(r"\((http://gw\.test/ack/[^)]+)\)", content)

    await site.clock.advance(60)
    assert (await site.client.get(url)).status_code == 200
    assert site.acks == []
    assert (await site.client.post(url)).status_code == 200
    assert [a[:2] for a in site.acks] == [(ALARM, "zhang")]
    assert escalator.running == ()

    await site.clock.advance(30 * 60)
    await escalator.tick()
    await dispatcher.drain()
    assert len(receiver.requests_to("/wecom/send")) == 1  # nobody else was called
    stopped = await site.store.query(types=["notify.escalation_stopped"])
    assert [(e.event.data["by"], e.event.data["reason"]) for e in stopped] == [
        ("zhang", "acknowledged")
    ]
    await dispatcher.close()


@pytest.mark.parametrize("locale", ["fr"])
def test_router_refuses_an_unknown_default_locale(locale: str, tmp_path: Path) -> None:
    store = EventStore(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    links = AckLinks(store, b"k" * 32, ManualClock(START))

    async def ack(*_: str) -> None:
        return None

    with pytest.raises(ValueError, match="unknown locale"):
        ack_router(links, ack, roster=Roster(CONFIG), default_locale=locale)
