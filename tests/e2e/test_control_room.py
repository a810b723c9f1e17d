"""The control-room page in a real browser against a real gateway.

Debian's Chromium (headless, driven by Playwright through ``executable_path``)
opens the page the gateway serves; the gateway polls the simulated estate over
Modbus. A transformer overheats in the simulator and the alarm row appears on
the board over the live stream, without a reload; the operator acknowledges it
with a note through the page's dialog, the row's state changes, and the audit
log (read through the page's own session) holds who did it. More faults bring
a critical alarm (announced), a flood banner and a trend chart. A guard on a
phone sees the board in Chinese, loses an acknowledgement race in words (409),
shelves and unshelves; a viewer sees no buttons and masked phone numbers; a
wrong password is refused in words; a dropped live link resumes from its last
sequence number without a snapshot. Screenshots of the board (1920x1080) and
of the phone view are saved as build artifacts.

Waits on the page are on its state (``expect``), never sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from drivers.modbus.estate import Estate
from gateway.api.auth.passwords import Passwords
from gateway.config.loader import load_site
from gateway.registry import load_registry
from gateway.runtime import Gateway
from tests.e2e.browser import BROWSER_MARKS, chromium
from tests.fixtures.api import FAST_HASHER, ONCALL, QUIET_NOTIFY

REPO = Path(__file__).resolve().parents[2]
I18N = REPO / "gateway" / "i18n"

with contextlib.suppress(ImportError):  # BROWSER_MARKS skip these tests without it
    from playwright.async_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        WebSocketRoute,
        expect,
    )

pytestmark = [
    pytest.mark.slow,
    *BROWSER_MARKS,
    pytest.mark.asyncio(loop_scope="module"),
]

WINDING = "tx1-winding_alarm@tx1.winding_temp_max"
TRIP = "tx2-winding_trip@tx2.winding_temp_max"  # critical
PUMP = "pump3-drive_fault@pump3.fault_code"
PASSWORD = "control-room-e2e"
LIVE_S = 30_000  # ms: the driver polls the simulator for real
EN: dict[str, str] = json.loads((I18N / "web.en.json").read_text(encoding="utf-8"))
ZH: dict[str, str] = json.loads((I18N / "web.zh-CN.json").read_text(encoding="utf-8"))


def artifacts_dir() -> Path:
    path = Path(os.environ.get("ARTIFACTS_DIR") or REPO / "var" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


async def until(check: Callable[[], Any], within: float = 30.0, what: str = "") -> Any:
    """Poll in-process gateway state (not the page) until ``check()`` is truthy."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Site:
    gw: Gateway
    estate: Estate
    url: str


def site_file(tmp: Path, estate: Estate) -> Path:
    doc: dict[str, Any] = {
        "version": 1,
        "site": {
            "id": f"room-{uuid.uuid4().hex[:8]}",
            "name": "阳光花园 Sunshine Garden",
            "timezone": "Asia/Shanghai",
            "locale": "zh-CN",
        },
        "data_dir": str(tmp / "var"),
        "api": {"port": 0},
        **yaml.safe_load(estate.site_fragment()),
        "storage": {"timeseries": {"flush_interval_s": 0.2, "default_heartbeat_s": None}},
        # A small flood threshold, so the board's flood banner shows with a few alarms.
        "alarms": {"flood": {"start_above": 3, "end_below": 1}},
        "notify": QUIET_NOTIFY,
        "oncall": ONCALL,
    }
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    async with Estate() as estate:
        path = site_file(tmp_path_factory.mktemp("control-room"), estate)
        gw = Gateway(load_site(path), load_registry(), metrics_interval=3600)
        stop = asyncio.Event()
        runner = asyncio.create_task(gw.run(stop))
        try:
            await until(
                lambda: (
                    runner.done() or (gw.api is not None and gw.api_ctx is not None and gw.api.port)
                ),
                what="the gateway's HTTP API",
            )
            if runner.done():
                runner.result()  # raises the start error
            assert gw.api is not None and gw.api_ctx is not None
            users = gw.api_ctx.auth.users
            users.passwords = Passwords(FAST_HASHER)  # cheap hashing for tests
            await users.create_user("admin", PASSWORD, "admin", display_name="值班长", locale="en")
            await users.create_user("guard", PASSWORD, "guard", display_name="王保安")
            await users.create_user("viewer", PASSWORD, "viewer", display_name="访客")
            yield Site(gw, estate, gw.api.url)
        finally:
            stop.set()
            await runner


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


async def open_page(
    browser: Browser, url: str, **context: Any
) -> tuple[BrowserContext, Page, list[str]]:
    """A fresh browser context (no cookies, no stored language) on the page;
    the list collects uncaught script errors and CSP refusals, which must stay empty."""
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def csp(msg: ConsoleMessage) -> None:
        # The page keeps to the server's Content-Security-Policy (no inline code or style).
        if "Content Security Policy" in msg.text:
            errors.append(msg.text)

    page.on("console", csp)
    await page.goto(url)
    return ctx, page, errors


async def login(page: Page, username: str, password: str = PASSWORD) -> None:
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("board")).to_be_visible()
    # The live stream is up: what happens from now on arrives without a reload.
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")


def alarm_row(page: Page, alarm_id: str) -> Any:
    return page.locator(f'[data-testid="alarm-row"][data-alarm-id="{alarm_id}"]')


async def test_alarm_appears_live_and_is_acknowledged(site: Site, browser: Browser) -> None:
    ctx, page, errors = await open_page(browser, site.url, viewport={"width": 1920, "height": 1080})
    try:
        await login(page, "admin")
        # The admin's own locale (en) wins over the site's default (zh-CN).
        await expect(page.get_by_test_id("board-title")).to_have_text(EN["web.board.title"])
        row = alarm_row(page, WINDING)
        await expect(row).to_have_count(0)
        await page.evaluate("window.__sameDocument = true")

        # The transformer overheats in the simulator: the row appears live.
        site.estate.overheat("tx1", 140.0)
        await expect(row).to_be_visible(timeout=LIVE_S)
        assert await page.evaluate("window.__sameDocument === true"), "the page reloaded"
        state = row.get_by_test_id("alarm-state")
        await expect(state).to_have_attribute("data-state", "unacknowledged")
        await expect(row).to_have_attribute("data-priority", "high")
        await expect(page.get_by_test_id("count-high")).to_contain_text("1")

        # Acknowledge with a note through the dialog.
        await row.get_by_test_id("alarm-acknowledge").click()
        dialog = page.get_by_test_id("action-dialog")
        await expect(dialog).to_be_visible()
        await page.get_by_test_id("action-note").fill("到场处理 e2e")
        await page.get_by_test_id("action-confirm").click()
        await expect(dialog).to_be_hidden()
        await expect(state).to_have_attribute("data-state", "acknowledged")
        await expect(state).to_contain_text(EN["web.state.acknowledged"])
        await expect(row.get_by_test_id("alarm-acknowledge")).to_have_count(0)

        assert site.gw.alerting is not None
        record = site.gw.alerting.manager.get(WINDING)
        assert record is not None and record.acked

        # The audit log, read through the page's own session cookie.
        audit = await page.evaluate(
            """async () => {
                const r = await fetch('/api/v1/audit?action=alarm.acknowledge');
                return {status: r.status, body: await r.json()};
            }"""
        )
        assert audit["status"] == 200, audit
        mine = [a for a in audit["body"]["items"] if a["target"] == WINDING]
        assert len(mine) == 1, audit
        entry = mine[0]
        assert entry["username"] == "admin"
        assert entry["action"] == "alarm.acknowledge"
        assert entry["outcome"] == "ok"
        assert entry["auth"] == "session"

        # Nothing critical so far; then a second transformer passes its trip
        # level and a pump's drive trips: the critical alarm is announced
        # (tone, flash) and sorts to the top.
        body = page.locator("body")
        await expect(body).to_have_attribute("data-critical-alerts", "0")
        site.estate.overheat("tx2", 160.0)
        site.estate.trip_pump("pump3")
        await expect(alarm_row(page, TRIP)).to_be_visible(timeout=LIVE_S)
        await expect(alarm_row(page, PUMP)).to_be_visible(timeout=LIVE_S)
        await expect(body).to_have_attribute("data-critical-alerts", "1")
        # More than three alarms in the window: the control room is in a flood.
        flood = page.get_by_test_id("flood-banner")
        await expect(flood).to_be_visible()
        await expect(flood).to_contain_text("main")
        first = page.get_by_test_id("alarm-row").first
        await expect(first).to_have_attribute("data-priority", "critical")
        await expect(page.get_by_test_id("event-row").first).to_be_visible()
        # The site overview marks the device; its point opens the trend chart.
        card = page.locator('[data-testid="device-card"][data-device="tx2"]')
        await expect(card).to_have_class(re.compile(r"\balarm-critical\b"))
        await card.locator('[data-point="tx2.winding_temp_max"]').click()
        await expect(page.get_by_test_id("trend-title")).to_contain_text("winding_temp_max")
        await expect(page.locator('[data-testid="trend-chart"] svg')).to_be_visible()
        await expect(page.locator(".topbar.flash")).to_have_count(0)  # the flash is over

        path = artifacts_dir() / "control-room-board.png"
        await page.screenshot(path=str(path))
        print(f"screenshot: {path}")
        assert errors == []
    finally:
        await ctx.close()


async def test_guard_on_a_phone_sees_the_board_in_chinese(site: Site, browser: Browser) -> None:
    # On its own too, this test has these alarms to show (the faults hold).
    site.estate.overheat("tx1", 140.0)
    site.estate.overheat("tx2", 160.0)
    site.estate.trip_pump("pump3")
    ctx, page, errors = await open_page(
        browser,
        site.url,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        await login(page, "guard")
        # No locale of his own: the site's default, zh-CN.
        await expect(page.get_by_test_id("board-title")).to_have_text(ZH["web.board.title"])
        await expect(page.get_by_test_id("tab-board")).to_contain_text(ZH["web.tab.board"])
        row = alarm_row(page, WINDING)
        await expect(row).to_be_visible(timeout=LIVE_S)
        either = f"{ZH['web.state.acknowledged']}|{ZH['web.state.unacknowledged']}"
        await expect(row.get_by_test_id("alarm-state")).to_contain_text(re.compile(either))
        assert site.gw.alerting is not None
        if site.gw.alerting.manager.flood("main").active:  # after the first test
            # Known from GET /alarms this time, not from a live event.
            await expect(page.get_by_test_id("flood-banner")).to_be_visible()
        # A guard may comment but not reset (engineer and above).
        await expect(row.get_by_test_id("alarm-comment")).to_be_visible()
        await expect(row.get_by_test_id("alarm-reset")).to_have_count(0)
        # One panel at a time on a phone: the site overview sits behind its tab.
        await expect(page.get_by_test_id("overview")).to_be_hidden()
        path = artifacts_dir() / "control-room-phone.png"
        await page.screenshot(path=str(path))
        print(f"screenshot: {path}")

        # Two operators at once: while the guard writes his note, someone else
        # acknowledges the alarm; the server's refusal (409) shows in the dialog.
        trip = alarm_row(page, TRIP)
        await expect(trip).to_be_visible(timeout=LIVE_S)
        await trip.get_by_test_id("alarm-acknowledge").click()
        await page.get_by_test_id("action-note").fill("我来处理")
        me = await (await page.request.get(f"{site.url}/api/v1/auth/me")).json()
        other = await page.request.post(
            f"{site.url}/api/v1/alarms/{TRIP}/acknowledge",
            data={"note": "已到场"},
            headers={"X-CSRF-Token": me["csrf_token"]},
        )
        assert other.status == 200, await other.text()
        await page.get_by_test_id("action-confirm").click()
        error = page.get_by_test_id("action-error")
        await expect(error).to_be_visible()
        await expect(error).to_contain_text(ZH["web.error.409"])
        await page.get_by_test_id("action-cancel").click()
        await expect(page.get_by_test_id("action-dialog")).to_be_hidden()
        await expect(trip.get_by_test_id("alarm-state")).to_have_attribute(
            "data-state", "acknowledged"
        )

        # Shelve with a reason and an expiry (the reason is required), then unshelve.
        pump = alarm_row(page, PUMP)
        await expect(pump).to_be_visible(timeout=LIVE_S)
        await pump.get_by_test_id("alarm-shelve").click()
        await page.get_by_test_id("action-confirm").click()
        await expect(error).to_have_text(ZH["web.dialog.required"])
        await page.get_by_test_id("shelve-reason").fill("水泵检修")
        await page.get_by_test_id("shelve-duration").select_option("30")
        await page.get_by_test_id("action-confirm").click()
        pump_state = pump.get_by_test_id("alarm-state")
        await expect(pump_state).to_have_attribute("data-state", "shelved")
        await pump.get_by_test_id("alarm-unshelve").click()
        await page.get_by_test_id("action-confirm").click()
        await expect(pump_state).not_to_have_attribute("data-state", "shelved")
        await expect(pump.get_by_test_id("alarm-shelve")).to_be_visible()

        await page.get_by_test_id("tab-oncall").click()
        await expect(page.get_by_test_id("oncall-team")).to_have_count(2)
        await expect(page.get_by_test_id("oncall")).to_contain_text("+8613800000001")  # unmasked
        await page.get_by_test_id("tab-overview").click()
        await expect(page.get_by_test_id("overview")).to_be_visible()
        await expect(page.get_by_test_id("board")).to_be_hidden()

        # The language switch, remembered across a reload.
        await page.get_by_test_id("lang-switch").select_option("en")
        await expect(page.get_by_test_id("board-title")).to_have_text(EN["web.board.title"])
        await page.reload()
        await expect(page.get_by_test_id("board-title")).to_have_text(EN["web.board.title"])
        assert errors == []
    finally:
        await ctx.close()


async def test_viewer_has_no_buttons_and_a_wrong_password_is_refused(
    site: Site, browser: Browser
) -> None:
    site.estate.overheat("tx1", 140.0)
    ctx, page, errors = await open_page(browser, site.url, viewport={"width": 1920, "height": 1080})
    try:
        await page.get_by_test_id("login-username").fill("viewer")
        await page.get_by_test_id("login-password").fill("not the password")
        await page.get_by_test_id("login-submit").click()
        error = page.get_by_test_id("login-error")
        await expect(error).to_be_visible()
        await expect(error).to_have_text(ZH["web.login.failed"])
        await expect(page.get_by_test_id("board")).to_be_hidden()

        await login(page, "viewer")
        row = alarm_row(page, WINDING)
        await expect(row).to_be_visible(timeout=LIVE_S)
        await expect(row.locator("button")).to_have_count(0)
        # The viewer sees phone numbers masked.
        await expect(page.get_by_test_id("oncall")).to_contain_text("138****0001")
        # The event log's type filter asks the server for one family only.
        await page.get_by_test_id("events-filter").select_option("device.*")
        await expect(page.locator('[data-testid="event-row"].ev-device').first).to_be_visible()
        await expect(page.locator('[data-testid="event-row"]:not(.ev-device)')).to_have_count(0)

        await page.get_by_test_id("logout").click()
        await expect(page.get_by_test_id("login-form")).to_be_visible()
        await page.reload()  # the session is gone on the server too
        await expect(page.get_by_test_id("login-form")).to_be_visible()
        assert errors == []
    finally:
        await ctx.close()


class LiveLink:
    """Stands between the page and /api/v1/live (Playwright's WebSocket routing),
    so a test can drop the link and hold the page's reconnection while the
    gateway moves on. Records what the page sends and what the server answers."""

    def __init__(self) -> None:
        self.routes: list[WebSocketRoute] = []
        self.servers: list[WebSocketRoute] = []
        self.sent: list[list[dict[str, Any]]] = []  # per connection, page -> server
        self.received: list[list[dict[str, Any]]] = []  # per connection, server -> page
        self.hold = False  # connect new links only when release() is called

    def handler(self, route: WebSocketRoute) -> None:
        n = len(self.routes)
        self.routes.append(route)
        self.sent.append([])
        self.received.append([])

        def from_page(message: str | bytes) -> None:
            self.sent[n].append(json.loads(message))
            if len(self.servers) > n:
                self.servers[n].send(message)

        route.on_message(from_page)
        if not self.hold:
            self.connect(n)

    def connect(self, n: int) -> None:
        server = self.routes[n].connect_to_server()
        self.servers.append(server)

        def from_server(message: str | bytes) -> None:
            self.received[n].append(json.loads(message))
            self.routes[n].send(message)

        server.on_message(from_server)
        for msg in self.sent[n]:  # what the page said while the link was held
            server.send(json.dumps(msg))

    def release(self) -> None:
        self.hold = False
        self.connect(len(self.routes) - 1)


async def test_live_stream_resumes_after_a_drop(site: Site, browser: Browser) -> None:
    site.estate.overheat("tx1", 140.0)
    link = LiveLink()
    ctx, page, errors = await open_page(browser, site.url, viewport={"width": 1920, "height": 1080})
    try:
        await page.route_web_socket(re.compile(r"/api/v1/live$"), link.handler)
        await page.reload()  # the first link goes through the route too
        await login(page, "admin")
        row = alarm_row(page, WINDING)
        await expect(row).to_be_visible(timeout=LIVE_S)
        await until(lambda: any(m["type"] == "snapshot" for m in link.received[0]), what="snapshot")
        hello = link.sent[0][0]
        assert hello["type"] == "hello" and hello["resume"] is None and hello["points"] == ["*"]
        welcome = link.received[0][0]
        assert welcome["type"] == "welcome" and welcome["resumed"] is False

        # The link drops; the page reconnects (held here) while the alarm is shelved.
        link.hold = True
        await link.routes[0].close(code=4000, reason="test: the network went away")
        await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "down")
        await until(lambda: len(link.sent) == 2 and link.sent[1], what="the page's second hello")
        me = await (await page.request.get(f"{site.url}/api/v1/auth/me")).json()
        shelved = await page.request.post(
            f"{site.url}/api/v1/alarms/{WINDING}/shelve",
            data={"reason": "e2e: sensor check", "duration_min": 30},
            headers={"X-CSRF-Token": me["csrf_token"]},
        )
        assert shelved.status == 200, await shelved.text()
        state = row.get_by_test_id("alarm-state")
        await expect(state).not_to_have_attribute("data-state", "shelved")  # not heard yet

        # It resumes from the last seq it saw; the missed transition is replayed.
        again = link.sent[1][0]
        seqs = [m["seq"] for m in link.received[0] if isinstance(m.get("seq"), int)]
        assert again["resume"] == {"epoch": welcome["epoch"], "seq": max(seqs)}
        link.release()
        await expect(state).to_have_attribute("data-state", "shelved")
        await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
        types = [m["type"] for m in link.received[1]]
        assert types[0] == "welcome" and link.received[1][0]["resumed"] is True
        assert "snapshot" not in types
        assert errors == []
    finally:
        await ctx.close()
