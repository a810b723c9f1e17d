"""The access panel in a real browser against a real gateway with a gate.

A guard logs in (Debian's Chromium, headless, through Playwright), opens the
access panel, issues a visitor pass and sees its QR code as an image (a
data: URL the page's CSP allows); a resident's card read put on the bus, as
a reader driver would, is decided by the access service and appears in the
panel's live passages without a reload. No CSP refusals, no script errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.browser import BROWSER_MARKS, chromium
from tests.fixtures.api import ApiHarness, api_gateway, site_document

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "access-page-e2e"
ZH: dict[str, str] = json.loads(
    (REPO / "gateway" / "i18n" / "accessapi.zh-CN.json").read_text(encoding="utf-8")
)

with contextlib.suppress(ImportError):  # BROWSER_MARKS skip these tests without it
    from playwright.async_api import Browser, ConsoleMessage, expect

pytestmark = [
    pytest.mark.slow,
    *BROWSER_MARKS,
    pytest.mark.asyncio(loop_scope="module"),
]


def access_overrides(tmp: Path) -> dict[str, Any]:
    devices = site_document(tmp)["devices"] + [
        {"id": "gate1", "kind": "gate", "name": "北门"},
        {"id": "rdr_in", "kind": "card_reader", "name": "北门进"},
    ]
    access = {
        "areas": [{"id": "estate"}],
        "doors": [
            {
                "id": "gate1",
                "area": "estate",
                "readers": [{"device": "rdr_in", "direction": "in"}],
                "relay": {"device": "rdr_in"},
            }
        ],
        "groups": {"residents": {"doors": ["*"]}, "visitors": {"doors": ["gate1"]}},
    }
    return {"devices": devices, "access": access}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    tmp = tmp_path_factory.mktemp("access-page")
    async with api_gateway(tmp, **access_overrides(tmp)) as h:
        await h.user("guard", "guard", PASSWORD)
        sup = await h.client("supervisor")
        r = await sup.put(
            "/api/v1/access/credentials/R-0001",
            json={"kind": "resident", "holder": "李居民", "group": "residents", "card": "7A7B7C7D"},
        )
        assert r.status_code == 201, r.text
        yield h


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


async def test_guard_issues_a_pass_and_sees_a_card_read_live(
    api: ApiHarness, browser: Browser
) -> None:
    ctx = await browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def csp(msg: ConsoleMessage) -> None:
        if "Content Security Policy" in msg.text:
            errors.append(msg.text)

    page.on("console", csp)
    try:
        await page.goto(api.url)
        await page.get_by_test_id("login-username").fill("guard")
        await page.get_by_test_id("login-password").fill(PASSWORD)
        await page.get_by_test_id("login-submit").click()
        await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")

        await page.get_by_test_id("access-toggle").click()
        panel = page.get_by_test_id("access")
        await expect(panel).to_be_visible()
        await expect(page.get_by_test_id("board")).to_be_hidden()
        await expect(page.get_by_test_id("access-toggle")).to_have_text(ZH["web.tab.access"])
        await expect(page.get_by_test_id("access-door")).to_contain_text("北门")

        # A visitor pass: the QR code shows as an image, with its token.
        await page.get_by_test_id("visitor-holder").fill("访客王")
        await page.get_by_test_id("visitor-host").fill("3-2-1201")
        await page.get_by_test_id("visitor-hours").fill("2")
        await page.get_by_test_id("visitor-submit").click()
        qr = page.get_by_test_id("visitor-qr")
        await expect(qr).to_be_visible()
        assert await qr.evaluate("img => img.complete && img.naturalWidth > 0"), "QR not drawn"
        await expect(page.get_by_test_id("visitor-token")).to_contain_text("GWV1:")

        # A resident's card at the gate: the passage appears live.
        await api.event("card.presented", "rdr_in", {"uid": "7A7B7C7D", "format": "raw"})
        row = page.get_by_test_id("access-live-row").filter(has_text="李居民")
        await expect(row).to_be_visible(timeout=10_000)
        await expect(row).to_have_class("acc-row granted")
        await expect(row).to_contain_text("gate1")
        # Today's report follows (it is read again shortly after a passage).
        await expect(page.get_by_test_id("report-entries")).to_contain_text("1")

        artifacts = Path(os.environ.get("ARTIFACTS_DIR") or REPO / "var" / "artifacts")
        await asyncio.to_thread(artifacts.mkdir, parents=True, exist_ok=True)
        await page.screenshot(path=str(artifacts / "control-room-access.png"))
        assert errors == []
    finally:
        await ctx.close()
