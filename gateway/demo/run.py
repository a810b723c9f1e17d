"""Run the gateway, a private broker and the simulated estate in one process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import webbrowser
from pathlib import Path

from rich.console import Console
from rich.live import Live

from gateway.config.loader import load_site
from gateway.demo.admin import ensure_admin
from gateway.demo.broker import BrokerMissing, private_mosquitto
from gateway.demo.faults import FaultScheduler
from gateway.demo.live import LiveBoard
from gateway.i18n import t
from gateway.model import Alarm, Event, Reading
from gateway.registry import load_registry
from gateway.runtime import Gateway

__all__ = ["DemoError", "run_demo"]


class DemoError(RuntimeError):
    pass


async def run_demo(
    site_path: Path,
    data_dir: Path,
    duration: float | None,
    console: Console,
    *,
    fault_every_s: float = 300.0,
    open_browser: bool = True,
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
        env = {
            **os.environ,
            "DEMO_MQTT_PORT": str(port),
            "DEMO_DATA_DIR": str(data_dir),
            "DEMO_MODBUS_POWER_PORT": str(estate.ports["power_room"]),
            "DEMO_MODBUS_PUMP_PORT": str(estate.ports["pump_room"]),
            "DEMO_API_PORT": os.environ.get("DEMO_API_PORT") or str(_api_port()),
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


async def _wait_api(gw: Gateway, runner: asyncio.Task[None]) -> bool:
    """Wait until the gateway's HTTP server listens (False when it has none or stopped)."""
    while not runner.done():
        if gw.api is not None and gw.api_ctx is not None and gw.api.port:
            return True
        if gw.site.config.api.enabled is False:
            return False
        await asyncio.sleep(0.05)
    return False


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
