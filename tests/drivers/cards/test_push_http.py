"""``card_http`` on a real port, posted to by an aiohttp client: camera payloads,
the answers for bad requests, the shared token, and refused commands."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from drivers.cards.push_http import HttpControllerConfig, HttpControllerDriver
from gateway.model import Command
from tests.drivers.cards.test_push_map import HIKVISION, VZENITH
from tests.fixtures.driver_harness import Harness, running
from tests.fixtures.servers import free_port

DRIVER_ID = "anpr"
TOKEN = "s3cret-token"


def make_driver(port: int, **extra: Any) -> HttpControllerDriver:
    cfg = HttpControllerConfig.model_validate(
        {
            "type": "card_http",
            "id": DRIVER_ID,
            "port": port,
            "max_body": 2048,
            "retry_s": 0.05,
            "devices": {"e2d3a9c1-6b7f0a21": "cam_in", "192.168.50.64": "cam_out"},
            "events": [
                {
                    "match": "/anpr/vzenith",
                    "unless": {"AlarmInfoPlate.result.PlateResult.license": "_无_"},
                    "emit": "plate.read",
                    "source": "{json.AlarmInfoPlate.serialno}",
                    "fields": {
                        "plate": "AlarmInfoPlate.result.PlateResult.license",
                        "confidence": {
                            "path": "AlarmInfoPlate.result.PlateResult.confidence",
                            "scale": 0.01,
                        },
                    },
                    "ts": {
                        "path": "AlarmInfoPlate.result.PlateResult.timeStamp.Timeval.sec",
                        "format": "epoch_s",
                    },
                },
                {
                    "match": "/anpr/hikvision",
                    "when": {"eventType": "ANPR"},
                    "emit": "plate.read",
                    "source": "{json.ipAddress}",
                    "fields": {
                        "plate": "ANPR.plateNumber",
                        "direction": {
                            "path": "ANPR.direction",
                            "map": {"forward": "in", "reverse": "out"},
                        },
                    },
                },
            ],
            **extra,
        }
    )
    return HttpControllerDriver(cfg)


async def listening(h: Harness) -> None:
    await h.until(
        lambda: [e for e in h.events("device.online") if e.source == DRIVER_ID],
        what="the server to listen",
    )


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, **kw: Any
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    async with session.post(url, data=data, **kw) as r:
        return r.status, await r.json()


async def test_both_camera_styles_become_plate_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANPR_TEST_TOKEN", TOKEN)
    port = free_port()
    drv = make_driver(port, token_env="ANPR_TEST_TOKEN")
    base = f"http://127.0.0.1:{port}"
    async with running(drv, tmp_path) as h, aiohttp.ClientSession() as client:
        await listening(h)
        url = f"{base}/anpr/vzenith?token={TOKEN}"
        assert await post(client, url, VZENITH) == (200, {"ok": True})
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert await post(client, f"{base}/anpr/hikvision", HIKVISION, headers=auth) == (
            200,
            {"ok": True},
        )
        heartbeat = {"eventType": "heartBeat", "ipAddress": "192.168.50.64"}
        assert await post(client, f"{base}/anpr/hikvision", heartbeat, headers=auth) == (
            200,
            {"ok": True},
        )
        reads = h.events("plate.read")
        assert [(e.source, dict(e.data)) for e in reads] == [
            ("cam_in", {"plate": "沪A12345", "confidence": 0.93}),
            ("cam_out", {"plate": "京B6F789", "direction": "out"}),
        ]
        assert reads[0].ts == 1795226401 * 10**9
        stats = drv.stats()
        assert (stats.received, stats.events, stats.ignored) == (3, 2, 1)


async def test_refused_requests_get_their_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANPR_TEST_TOKEN", TOKEN)
    port = free_port()
    drv = make_driver(port, token_env="ANPR_TEST_TOKEN")
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running(drv, tmp_path) as h, aiohttp.ClientSession() as client:
        await listening(h)
        status, body = await post(client, f"{base}/anpr/vzenith", VZENITH)
        assert (status, body["ok"]) == (401, False)
        wrong = {"Authorization": "Bearer nope"}
        assert (await post(client, f"{base}/anpr/vzenith", VZENITH, headers=wrong))[0] == 401
        assert (await post(client, f"{base}/anpr/vzenith?token=nope", VZENITH))[0] == 401
        status, body = await post(client, f"{base}/anpr/other", VZENITH, headers=auth)
        assert status == 404 and "/anpr/other" in body["error"]
        async with client.get(f"{base}/anpr/vzenith", headers=auth) as r:
            assert r.status == 405 and r.headers["Allow"] == "POST, PUT"
        big = {"AlarmInfoPlate": {"imageFile": "A" * 4000}}
        status, body = await post(client, f"{base}/anpr/vzenith", big, headers=auth)
        assert status == 413 and "2048" in body["error"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
            for _ in range(10):
                yield b" " * 500

        async with client.post(f"{base}/anpr/vzenith", data=chunks(), headers=auth) as r:
            assert r.status == 413
        stats = drv.stats()
        assert (stats.unauthorized, stats.not_found, stats.too_large) == (3, 2, 2)
        assert stats.received == 0 and not h.events("plate.read")


async def test_bad_payloads_are_400_counted_and_the_next_is_fine(tmp_path: Path) -> None:
    port = free_port()
    drv = make_driver(port)
    url = f"http://127.0.0.1:{port}/anpr/hikvision"
    async with running(drv, tmp_path) as h, aiohttp.ClientSession() as client:
        await listening(h)
        status, body = await post(client, url, b"<xml>not json</xml>")
        assert status == 400 and "bad JSON" in body["error"]
        missing = {"eventType": "ANPR", "ipAddress": "192.168.50.64", "ANPR": {}}
        status, body = await post(client, url, missing)
        assert status == 400 and "no 'ANPR.plateNumber'" in body["error"]
        wrong = {**missing, "ANPR": {"plateNumber": ["京B"], "direction": "forward"}}
        status, body = await post(client, url, wrong)
        assert status == 400 and "plate: wrong type" in body["error"]
        assert await post(client, url, HIKVISION) == (200, {"ok": True})
        assert [e.data["plate"] for e in h.events("plate.read")] == ["京B6F789"]
        assert drv.stats().malformed == 3
        notes = h.events("http.malformed")
        assert len(notes) == 1  # one event per path per minute; the log and stats have all
        assert notes[0].source == DRIVER_ID
        assert notes[0].data["path"] == "/anpr/hikvision" and "bad JSON" in notes[0].data["reason"]


async def test_commands_are_refused(tmp_path: Path) -> None:
    drv = make_driver(free_port())
    async with running(drv, tmp_path) as h:
        await listening(h)
        await h.bus.publish(Command("cam_in", "pulse", {"output": 0, "seconds": 3}, id="p1"))
        results = await h.until(lambda: h.events("command.result"), what="a command result")
        assert results[0].source == "cam_in"
        assert results[0].data["result"] == "refused" and results[0].data["id"] == "p1"
        assert "HTTP" in results[0].data["reason"]


async def test_without_its_token_the_server_does_not_listen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANPR_TEST_TOKEN", raising=False)
    port = free_port()
    drv = make_driver(port, token_env="ANPR_TEST_TOKEN")
    async with running(drv, tmp_path) as h, aiohttp.ClientSession() as client:
        offline = await h.until(lambda: h.events("device.offline"), what="device.offline")
        assert "ANPR_TEST_TOKEN is not set" in offline[0].data["reason"]
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(client, f"http://127.0.0.1:{port}/anpr/vzenith", VZENITH)
        monkeypatch.setenv("ANPR_TEST_TOKEN", TOKEN)
        await listening(h)
        url = f"http://127.0.0.1:{port}/anpr/vzenith?token={TOKEN}"
        assert await post(client, url, VZENITH) == (200, {"ok": True})
        await asyncio.sleep(0)
        assert drv.stats().listening
