"""Headless Debian Chromium for the page tests, driven by Playwright (no
browser download: ``executable_path``). ``BROWSER_MARKS`` skip, with the
reason, where Chromium or the Playwright package is missing; ``chromium()``
launches one browser for a module's tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser

__all__ = ["BROWSER_MARKS", "CHROMIUM", "chromium"]

CHROMIUM = Path("/usr/bin/chromium")

try:
    import playwright.async_api  # noqa: F401
except ImportError:  # pragma: no cover - the skip below says why
    _PLAYWRIGHT = False
else:
    _PLAYWRIGHT = True

BROWSER_MARKS = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)"
    ),
    pytest.mark.skipif(not _PLAYWRIGHT, reason="playwright (python) is not installed"),
]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            await browser.close()
