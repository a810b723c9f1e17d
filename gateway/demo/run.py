"""Run the gateway, a private broker and the simulated estate in one process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live

from gateway.access.credentials import CredentialError
from gateway.config.loader import LoadedSite, load_site
from gateway.demo.access_field import AccessField, MqttLink, ReaderRig, reader_rig
from gateway.demo.access_incidents import IncidentScheduler, Stage
from gateway.demo.access_seed import make_roster, seed_access
from gateway.demo.access_traffic import (
    AccessFieldError,
    TrafficCurve,
    TrafficScheduler,
    Whereabouts,
)
from gateway.demo.admin import ensure_admin
from gateway.demo.broker import BrokerMissing, private_mosquitto
from gateway.demo.faults import FaultScheduler
from gateway.demo.live import LiveBoard
from gateway.i18n import t
from gateway.model import Alarm, Event, Reading
from gateway.registry import load_registry
from gateway.runtime import Gateway
from gateway.storage.eventstore import EventStoreError

if TYPE_CHECKING:
    from drivers.modbus.estate import Estate

__all__ = ["DEMO_OSDP_KEY", "DemoError", "run_demo"]


class DemoError(RuntimeError):
    pass


# The OSDP secure channel key of the demo readers: a fixed, public demo value,
# given to the gateway through the environment (the site file names only the variable).
DEMO_OSDP_KEY = "0d3e5a1c7b9f2468ace013579bdf2468"


async def run_demo(
    site_path: Path,
    data_dir: Path,
    duration: float | None,
    console: Console,
    *,
    fault_every_s: float = 300.0,
    open_browser: bool = True,
    incident_every_s: float = 180.0,
    passages_per_min: float = 6.0,
) -> int:
    # The simulators need the mqtt and modbus extras: import them only when the demo runs.
    from drivers.modbus.estate import ControlServer, Estate
    from drivers.mqtt.simulator import EstateSimulator, SimulatorSettings

    async with contextlib.AsyncExitStack() as stack:
        try:
            port = await stack.enter_async_context(private_mosquitto(data_dir / "broker"))
        except BrokerMissing:
            console.print(f"[red]{t('demo.no_mosquitto', 'en')}[/red]")
            console.print(t("demo.no_mosquitto", "zh-CN"))
            return 2
        # The power room and pump room: Modbus servers playing the device profiles.
        estate = await stack.enter_async_context(Estate())
        control = await stack.enter_async_context(ControlServer(estate))
        # The card readers: libosdp PDs on a socat pty (or TCP), started before the gateway.
        os.environ.setdefault("DEMO_OSDP_KEY", DEMO_OSDP_KEY)
        rig, why_not = await _reader_rig(stack, data_dir / "osdp")
        env = {
            **os.environ,
            "DEMO_MQTT_PORT": str(port),
            "DEMO_DATA_DIR": _absolute(data_dir),  # else relative to the site file
            "DEMO_MODBUS_POWER_PORT": str(estate.ports["power_room"]),
            "DEMO_MODBUS_PUMP_PORT": str(estate.ports["pump_room"]),
            "DEMO_API_PORT": os.environ.get("DEMO_API_PORT") or str(_api_port()),
            **(rig.env if rig is not None else {}),
        }
        site = load_site(site_path, env=env)
        loc = site.config.site.locale
        gw = Gateway(site, load_registry(), metrics_interval=5)
        board = LiveBoard(
            gw.bus.subscribe("demo.board", (Reading, Event, Alarm), coalesce_readings=True),
            gw.clock,
            loc,
            site.config.site.timezone,
            site.points,
            {d.id: d.name for d in site.config.devices},
        )
        sim = EstateSimulator(SimulatorSettings(port=port, site=site.config.site.id))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if duration is not None:
            loop.call_later(duration, stop.set)

        console.print(t("demo.broker", loc, port=port))
        console.print(
            t(
                "demo.modbus",
                loc,
                power=estate.ports["power_room"],
                pump=estate.ports["pump_room"],
                control=control.port,
            )
        )
        console.print(
            t("demo.notify", loc, port=port, url=site.config.oncall.public_url + "/ack/...")
        )
        runner = asyncio.create_task(gw.run(stop))
        sim_task = asyncio.create_task(sim.run())
        physics = asyncio.create_task(estate.run(gw.clock))
        background = [sim_task, physics]
        if await _wait_api(gw, runner):
            assert gw.api is not None and gw.api_ctx is not None
            user, password = await ensure_admin(gw.api_ctx.auth.users, data_dir)
            console.print(t("demo.page", loc, url=gw.api.url + "/", user=user, password=password))
            if open_browser and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
                webbrowser.open(gw.api.url + "/")
        if fault_every_s > 0:
            faults = FaultScheduler(
                estate, gw.clock, every_s=fault_every_s, first_after_s=min(30.0, fault_every_s)
            )
            console.print(t("demo.faults", loc, minutes=round(fault_every_s / 60, 1)))
            background.append(asyncio.create_task(faults.run()))
        access: _AccessDemo | None = None
        if rig is None:
            console.print(t("demoaccess.off", loc, reason=why_not))
        elif await _wait_access(gw, runner):
            try:
                access = await _start_access(
                    gw, site, rig, estate, port, incident_every_s, passages_per_min
                )
            except (CredentialError, EventStoreError) as e:
                console.print(t("demoaccess.off", loc, reason=str(e)))
            else:
                background.extend(access.tasks)
                console.print(access.intro(loc))
        title = t("demo.title", loc, site=site.config.site.name or site.config.site.id)
        sink = site.config.storage.timeseries.sink.type
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            while not stop.is_set() and not runner.done():
                board.pull()
                st = gw.writer.stats() if gw.writer else None
                footer = t(
                    "demo.footer",
                    loc,
                    points=len(board.latest),
                    written=st.written if st else 0,
                    sink=sink,
                    pending=st.pending_points if st else 0,
                )
                if gw.alerting is not None:
                    records = gw.alerting.manager.records()
                    footer += "\n" + t(
                        "demo.alarms",
                        loc,
                        active=sum(1 for r in records if r.active),
                        unacked=sum(1 for r in records if not r.acked),
                    )
                if access is not None:
                    footer += "\n" + access.footer(loc)
                live.update(board.render(title, footer))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
        console.print()
        console.print(t("demo.stopping", loc))
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        stop.set()
        await runner
        return 0


async def _reader_rig(
    stack: contextlib.AsyncExitStack, workdir: Path
) -> tuple[ReaderRig | None, str]:
    """The demo's OSDP readers, or None and why (no libosdp, a bad key)."""
    try:
        key = bytes.fromhex(os.environ["DEMO_OSDP_KEY"])
        return await stack.enter_async_context(reader_rig(workdir, key)), ""
    except ImportError as e:
        return None, f"{e} (pip install 'estate-gateway[cards]')"
    except (ValueError, AccessFieldError) as e:
        return None, str(e)


async def _wait_access(gw: Gateway, runner: asyncio.Task[None]) -> bool:
    """Wait until the access service has loaded its credentials (False: it has none)."""
    while not runner.done():
        if gw.access is not None and gw.access.decider is not None:
            return True
        if gw.site.config.access.enabled is False or not gw.site.config.access.doors:
            return False
        await asyncio.sleep(0.05)
    return False


@dataclass(slots=True)
class _AccessDemo:
    rig: ReaderRig
    field: AccessField
    traffic: TrafficScheduler
    incidents: IncidentScheduler | None
    tasks: list[asyncio.Task[None]]
    counts: tuple[int, int, int]  # residents, vehicles, staff
    peak: float
    incident_every_s: float

    def intro(self, loc: str) -> str:
        rig = self.rig
        line = (
            t("demoaccess.line.pty", loc, path=rig.pty)
            if rig.pty is not None
            else t("demoaccess.line.tcp", loc, port=rig.tcp_port)
        )
        residents, vehicles, staff = self.counts
        return t(
            "demoaccess.intro",
            loc,
            readers=len(rig.readers),
            line=line,
            residents=residents,
            vehicles=vehicles,
            staff=staff,
            peak=round(self.peak, 1),
            minutes=round(self.incident_every_s / 60, 1),
        )

    def footer(self, loc: str) -> str:
        inc = self.incidents
        last = inc.last if inc is not None else None
        return t(
            "demoaccess.footer",
            loc,
            granted=sum(self.field.granted.values()),
            refused=sum(self.field.refused.values()),
            incidents=len(inc.staged) if inc is not None else 0,
            last=t(f"demoaccess.incident.{last or 'none'}", loc),
        )


async def _start_access(
    gw: Gateway,
    site: LoadedSite,
    rig: ReaderRig,
    estate: Estate,
    broker_port: int,
    incident_every_s: float,
    passages_per_min: float,
) -> _AccessDemo:
    """Seed the credentials (once), then start the residents' traffic and the incidents."""
    service = gw.access
    assert service is not None and service.credentials is not None
    assert service.decider is not None
    cfg = site.config
    roster = make_roster()
    await seed_access(service.credentials, roster)
    where = Whereabouts({e.credential_id: e.area for e in service.presence})
    link = MqttLink("127.0.0.1", broker_port, f"sim/{cfg.site.id}", gw.clock)
    relays = {d.id: d.relay.device for d in cfg.access.doors if d.relay is not None}
    field = AccessField(rig.readers, relays, link, estate, gw.clock)
    doors = {d.id: d for d in cfg.access.doors}
    power = doors.get("power_room_door")
    profile = power.restricted.profile if power and power.restricted else None
    profiles = service.decider.profiles
    traffic = TrafficScheduler(
        roster,
        TrafficCurve(cfg.site.timezone, passages_per_min * 60),
        gw.clock,
        field.perform,
        whereabouts=where,
        power_room_open=(lambda ts: profiles.allows(profile, ts)) if profile else None,
    )
    tasks = [asyncio.create_task(link.run(), name="demo-access-mqtt")]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(link.connected.wait(), 10)
    tasks.append(asyncio.create_task(traffic.run(), name="demo-access-traffic"))
    incidents = None
    if incident_every_s > 0:
        gate = doors.get("gate_n1")
        stage = Stage(
            field, roster, where, gw.clock, random.Random(5), gate.held_open_s if gate else 30.0
        )
        incidents = IncidentScheduler(
            stage, every_s=incident_every_s, first_after_s=min(20.0, incident_every_s)
        )
        tasks.append(asyncio.create_task(incidents.run(), name="demo-access-incidents"))
    counts = (len(roster.residents), len(roster.vehicles), len(roster.staff))
    return _AccessDemo(
        rig, field, traffic, incidents, tasks, counts, passages_per_min, incident_every_s
    )


async def _wait_api(gw: Gateway, runner: asyncio.Task[None]) -> bool:
    """Wait until the gateway's HTTP server listens (False when it has none or stopped)."""
    while not runner.done():
        if gw.api is not None and gw.api_ctx is not None and gw.api.port:
            return True
        if gw.site.config.api.enabled is False:
            return False
        await asyncio.sleep(0.05)
    return False


def _absolute(path: Path) -> str:
    return str(path.absolute())


def _api_port() -> int:
    """8080 when it is free (the documented port), else any free port."""
    for port in (8080, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise DemoError("no free TCP port for the HTTP server")
