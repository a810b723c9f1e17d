"""Helpers shared by the time-series tests (sinks, writer): not a test module."""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.model import Reading
from gateway.storage.sink import SeriesCatalog, Sink

_seq = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test uses (databases, device kinds = measurements)."""
    return f"{prefix}_{next(_seq)}_{id(_seq) % 10_000}"


def catalog_for(kind: str, devices: Sequence[str], site: str = "estate") -> SeriesCatalog:
    return SeriesCatalog(site, {d: kind for d in devices})


async def influxql(url: str, db: str, q: str) -> list[dict[str, Any]]:
    """Series of an InfluxQL answer (epoch ns), via plain HTTP."""

    def get() -> dict[str, Any]:
        qs = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
        with urllib.request.urlopen(f"{url}/query?{qs}", timeout=30) as r:
            out: dict[str, Any] = json.loads(r.read())
            return out

    answer = await asyncio.to_thread(get)
    result = answer["results"][0]
    assert "error" not in result, result
    series: list[dict[str, Any]] = result.get("series", [])
    return series


async def vm_export(url: str, match: str) -> list[dict[str, Any]]:
    """VictoriaMetrics /api/v1/export lines for a series selector."""

    def get() -> list[dict[str, Any]]:
        req = urllib.request.Request(f"{url}/internal/force_flush")
        with urllib.request.urlopen(req, timeout=30):
            pass
        qs = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{url}/api/v1/export?{qs}", timeout=30) as r:
            return [json.loads(line) for line in r.read().splitlines() if line.strip()]

    return await asyncio.to_thread(get)


class RecordingSink:
    """Wraps a real sink and records what it accepted, in order (for order checks)."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.name = inner.name
        self.accepted: list[Reading] = []
        self.writes = 0

    async def start(self) -> None:
        await self.inner.start()

    async def write(self, readings: Sequence[Reading]) -> None:
        self.writes += 1
        await self.inner.write(readings)
        self.accepted.extend(readings)

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Scripted:
    """An HTTP server that answers each request with the next scripted response.

    Stands in only for answers the real servers here cannot be made to give
    (429 with Retry-After, 401, an InfluxDB 2.x-style 422 ...).
    """

    responses: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[str, str, bytes, str]] = field(default_factory=list)
    url: str = ""

    def answer(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        self.responses.append((status, body, headers or {}))

    async def handle(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        self.requests.append((request.method, request.path_qs, await request.read(), auth))
        status, body, headers = self.responses.pop(0) if self.responses else (204, "", {})
        return web.Response(
            status=status, text=body or None, headers=headers, content_type="application/json"
        )


@asynccontextmanager
async def scripted_server() -> AsyncIterator[Scripted]:
    s = Scripted()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", s.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    s.url = f"http://127.0.0.1:{port}"
    try:
        yield s
    finally:
        await runner.cleanup()


async def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "it") -> None:
    """Poll ``check`` on real time (a generous limit, never a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
