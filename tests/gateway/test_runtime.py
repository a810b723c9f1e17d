"""The runtime end to end in one process, with test drivers and real storage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field

from gateway.clock import SystemClock
from gateway.config.loader import load_site
from gateway.config.storage import EmbeddedSinkConfig
from gateway.driver import Driver, DriverConfig, DriverContext, PointSpec
from gateway.model import Event, Reading
from gateway.registry import DriverRegistry
from gateway.runtime import Gateway
from gateway.storage.embedded import EmbeddedSink
from gateway.supervisor import RestartPolicy


class CounterConfig(DriverConfig):
    type: Literal["counter"] = Field(description="Emits a ramp.")
    device: str = Field(description="Device id.")
    count: int = Field(description="How many readings.")

    def devices(self) -> list[str]:
        return [self.device]

    def points(self) -> list[PointSpec]:
        return [PointSpec(self.device, "ramp")]


class CounterDriver(Driver):
    """Emits ``count`` readings, reports its device online, then waits."""

    config_model = CounterConfig

    async def run(self, ctx: DriverContext) -> None:
        cfg: CounterConfig = self.config
        await ctx.health.device_online(cfg.device, cfg.id)
        t0 = ctx.clock.time_ns() - 3600 * 10**9  # within the raw retention
        for i in range(cfg.count):
            await ctx.emit(Reading(f"{cfg.device}.ramp", float(i), t0 + i * 1_000_000_000))
        await asyncio.Event().wait()


class GlitchConfig(DriverConfig):
    type: Literal["glitch"] = Field(description="Emits one reading no store can hold.")


class GlitchDriver(Driver):
    """A device clock gone mad: a timestamp past the year 2262 (beyond int64 ns)."""

    config_model = GlitchConfig

    async def run(self, ctx: DriverContext) -> None:
        await ctx.emit(Reading("m1.glitch", 1.0, 2**70))
        await asyncio.Event().wait()


class CrashConfig(DriverConfig):
    type: Literal["crash"] = Field(description="Crashes at once.")


class CrashDriver(Driver):
    config_model = CrashConfig

    async def run(self, ctx: DriverContext) -> None:
        raise ConnectionRefusedError("no route to panel")


SITE = """
version: 1
site: {id: rt-site, timezone: Asia/Shanghai}
data_dir: var
api: {port: 0}
devices:
  - {id: m1, kind: power_meter, tags: {building: "A 栋"}}
drivers:
  - {type: counter, id: ramp, device: m1, count: 3000}
  - {type: crash, id: panel}
  - {type: glitch, id: clockless}
storage:
  timeseries:
    sink: {type: embedded}
    batch_size: 500
    flush_interval_s: 0.05
    default_heartbeat_s: null
"""


async def wait_until(cond: Callable[[], bool], within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not cond():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.02)


async def test_gateway_runs_drivers_stores_history_events_and_status(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    registry = DriverRegistry(
        drivers={"counter": CounterDriver, "crash": CrashDriver, "glitch": GlitchDriver}
    )
    site = load_site(tmp_path / "site.yaml", registry)
    gw = Gateway(
        site,
        registry,
        clock=SystemClock(),
        policy=RestartPolicy(backoff_min=0.01, backoff_max=0.02, max_restarts=2),
        metrics_interval=0.05,
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(gw.run(stop))
    await wait_until(lambda: gw.writer is not None and gw.writer.stats().written >= 3000)
    await wait_until(lambda: gw.health.driver("panel").state.value == "failed")
    await wait_until(lambda: gw.writer is not None and gw.writer.stats().quarantined == 1)
    await wait_until(lambda: (tmp_path / "var" / "status.json").exists())
    stop.set()
    await runner

    status = json.loads((tmp_path / "var" / "status.json").read_text())
    assert status["drivers"]["ramp"]["state"] == "stopped"
    assert status["drivers"]["panel"]["state"] == "failed"
    assert status["devices"]["m1"]["online"] is True
    assert "bus_timeseries_depth" in status["figures"]

    sink = EmbeddedSink(EmbeddedSinkConfig(), tmp_path / "var" / "timeseries.db")
    await sink.start()
    now = SystemClock().time_ns()
    rows = await sink.history("m1.ramp", now - 2 * 3600 * 10**9, now, max_points=5000)
    await sink.close()
    assert [r.value_or_mean for r in rows] == [float(i) for i in range(3000)]

    from gateway.storage.eventstore import EventStore

    store = EventStore(f"sqlite+aiosqlite:///{tmp_path}/var/gateway.db")
    await store.open()
    stored = [s.event for s in await store.query(limit=1000)]
    await store.close()
    types = [e.type for e in stored]
    assert types[0] == "gateway.started" and types[-1] == "gateway.stopped"
    assert "device.online" in types
    assert types.count("driver.crashed") == 2 and types.count("driver.failed") == 1
    (quarantined,) = [e for e in stored if e.type == "data.quarantined"]
    assert quarantined.data["count"] == 1 and quarantined.data["what"] == "timeseries points"


async def test_missing_driver_type_is_a_clear_start_error(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    full = DriverRegistry(
        drivers={"counter": CounterDriver, "crash": CrashDriver, "glitch": GlitchDriver}
    )
    site = load_site(tmp_path / "site.yaml", full)
    partial = DriverRegistry(
        drivers={"counter": CounterDriver, "glitch": GlitchDriver},
        unavailable={"crash": "no module"},
    )
    gw = Gateway(site, partial)
    try:
        await gw.start()
    except Exception as e:  # noqa: BLE001 - asserting on the type below
        assert type(e).__name__ == "GatewayError" and "crash: no module" in str(e)
    else:
        raise AssertionError("start() should refuse a missing driver type")
    assert isinstance(Event("x", "y", 1), Event)
