"""On duty, health and EEMUA figures over HTTP against a real gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from gateway.health import DriverState
from tests.fixtures.api import ApiHarness, api_gateway, site_document

pytestmark = pytest.mark.asyncio(loop_scope="module")

TZ = ZoneInfo("Asia/Shanghai")


def _oncall(tmp: Path) -> dict[str, Any]:
    """The fixture's roster, plus a shift roster for security: wang days
    (08:00-20:00 Shanghai), li nights."""
    oncall: dict[str, Any] = site_document(tmp)["oncall"]
    oncall["people"]["li"] = {"name": "李保安", "mobile": "13900000002"}
    oncall["teams"]["security"] = {
        "members": ["wang", "li"],
        "roster": {"rotation": [["wang"], ["li"]], "start_date": "2026-01-01"},
    }
    return oncall


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    tmp = tmp_path_factory.mktemp("oncall")
    async with api_gateway(tmp, oncall=_oncall(tmp)) as h:
        yield h


async def test_who_is_on_duty_with_phones_for_a_guard(api: ApiHarness) -> None:
    c = await api.client("guard")
    r = await c.get("/api/v1/oncall")
    assert r.status_code == 200
    body = r.json()
    at = datetime.fromisoformat(body["at"]).astimezone(TZ)
    teams = {t["team"]: t for t in body["teams"]}
    assert list(teams) == ["electrical", "security"]

    electrical = teams["electrical"]  # no roster: the whole team, always
    assert electrical["next_handover"] is None
    assert electrical["on_duty"] == [
        {
            "id": "zhang",
            "name": "张工",
            "phone": "+8613800000001",
            "certifications": ["hv_electrician"],
        }
    ]

    security = teams["security"]
    day = 8 <= at.hour < 20
    (person,) = security["on_duty"]
    assert person["id"] == ("wang" if day else "li")
    assert person["phone"] == ("+8613800000003" if day else "13900000002")
    handover = datetime.fromisoformat(security["next_handover"]).astimezone(TZ)
    assert handover > at and handover - at <= timedelta(hours=12)
    assert (handover.hour, handover.minute) == ((20, 0) if day else (8, 0))


async def test_viewer_sees_masked_phones(api: ApiHarness) -> None:
    c = await api.client("viewer")
    body = (await c.get("/api/v1/oncall")).json()
    phones = {p["id"]: p["phone"] for t in body["teams"] for p in t["on_duty"]}
    assert phones["zhang"] == "+86138****0001"
    assert set(phones) & {"wang", "li"}
    for pid in set(phones) & {"wang", "li"}:
        assert "****" in phones[pid] and phones[pid][-4:] in ("0003", "0002")


async def test_kpi_figures_after_a_few_alarms(api: ApiHarness) -> None:
    await api.reading("tx1.winding_temp_a", 120.0)  # tx1-hot, high
    await api.reading("pump1.pressure", 0.1)  # pump-low, medium
    await api.reading("fire1.alarm", True)  # fire-relay, critical
    for alarm_id in (
        "tx1-hot@tx1.winding_temp_a",
        "pump-low@pump1.pressure",
        "fire-relay@fire1.alarm",
    ):
        await api.wait_alarm(alarm_id)

    c = await api.client("viewer")
    r = await c.get("/api/v1/kpi")
    assert r.status_code == 200
    k = r.json()
    assert k["days"] == 7 and k["period_s"] == 600
    assert datetime.fromisoformat(k["until"]) - datetime.fromisoformat(k["since"]) == timedelta(
        days=7
    )
    assert k["activations"] == 3 and k["alarms"] == 3
    shares = {p["priority"]: p for p in k["priorities"]}
    assert {p: s["count"] for p, s in shares.items()} == {
        "critical": 1,
        "high": 1,
        "medium": 1,
        "low": 0,
    }
    assert shares["critical"]["guide_percent"] is None and shares["low"]["guide_percent"] == 80
    assert {(b["rule"], b["source"]) for b in k["bad_actors"]} == {
        ("tx1-hot", "tx1.winding_temp_a"),
        ("pump-low", "pump1.pressure"),
        ("fire-relay", "fire1.alarm"),
    }
    assert sum(room["alarms"] for room in k["rooms"]) == 3
    assert k["stale"] == [] and k["chattering"] == []

    r = await c.get("/api/v1/kpi", params={"days": 366})
    assert r.status_code == 200 and r.json()["alarms"] == 3
    for bad in (0, 367, -1, "week"):
        r = await c.get("/api/v1/kpi", params={"days": bad})
        assert r.status_code == 422, bad


async def test_health_has_drivers_devices_queues_and_sink(api: ApiHarness) -> None:
    await api.gw.health.device_offline("pump1", "timeout", driver="modbus1")
    c = await api.client("viewer")
    r = await c.get("/api/v1/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["reasons"] == []
    assert h["version"] and h["uptime_s"] >= 0
    assert h["drivers"] == {}  # the test site has no drivers
    assert h["devices"]["pump1"]["online"] is False
    assert h["devices"]["pump1"]["reason"] == "timeout"
    assert h["sink"]["type"] == "embedded"
    assert h["sink"]["up"] in (True, None)  # None: nothing written yet
    assert h["event_store_up"] is True
    queues = {q["name"]: q for q in h["queues"]}
    assert {"timeseries", "recorder", "live", "rules"} <= set(queues)
    assert all(q["maxsize"] > 0 and q["depth"] >= 0 for q in queues.values())
    # The three alarms of the KPI test are active and unacknowledged, and pump1's
    # going offline raises the built-in offline alarm (a moment later).
    assert h["alarms"]["active"] == h["alarms"]["unacked"]
    assert h["alarms"]["active"] in (3, 4)


async def test_a_failing_driver_degrades_health(api: ApiHarness) -> None:
    health = api.gw.health
    health.set_driver("modbus1", DriverState.BACKOFF, "connection refused")
    try:
        c = await api.client("viewer")
        h = (await c.get("/api/v1/health")).json()
        assert h["status"] == "degraded" and h["reasons"] == ["driver:modbus1"]
        assert h["drivers"]["modbus1"] == {
            "state": "backoff",
            "restarts": 0,
            "last_error": "connection refused",
        }
    finally:
        health.set_driver("modbus1", DriverState.RUNNING)
    h = (await c.get("/api/v1/health")).json()
    assert h["status"] == "ok"


async def test_anonymous_caller_gets_401(api: ApiHarness) -> None:
    c = await api.client(None)
    for path in ("/api/v1/oncall", "/api/v1/health", "/api/v1/kpi"):
        r = await c.get(path)
        assert r.status_code == 401, path
