"""The OSDP driver (``type: osdp``): one RS-485 bus of card readers, with us as control panel.

:class:`~drivers.cards.osdp.panel.Panel` runs libosdp in its own thread
(waiting on the line, not sleeping, so replies are handled at once) and
hands what it learns to the event loop; this module turns that into the
card vocabulary of :mod:`drivers.cards.events` (decoding in
:mod:`drivers.cards.osdp.translate`), reports readers online/offline
through ``ctx.health``, and executes ``feedback`` (LED + buzzer) and
``pulse`` (an output of the reader) commands, each answered by a
``command.result`` event.

Keys are read from the environment when the driver starts (a missing or
malformed key stops the driver with the variable's name, never its value).
A reader in install mode is warned about at start and every hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from drivers.cards.events import (
    CARD_PRESENTED,
    CARD_READ_ERROR,
    COMMAND_FEEDBACK,
    COMMAND_PULSE,
    COMMAND_RESULT,
    READER_SECURE_CHANNEL,
)
from drivers.cards.osdp.channel import BusChannel, SerialChannel, TcpChannel
from drivers.cards.osdp.config import OsdpDriverConfig
from drivers.cards.osdp.messages import (
    CommandOutcome,
    PanelMessage,
    PanelStopped,
    PdEvent,
    PdKeyed,
    PdSpec,
    PdState,
)
from drivers.cards.osdp.panel import Panel
from drivers.cards.osdp.translate import (
    ReaderTranslator,
    buzzer_command,
    led_command,
    output_command,
)
from gateway.backoff import Backoff
from gateway.driver import Driver, DriverContext
from gateway.model import Command, Event

__all__ = ["OsdpBusError", "OsdpDriver", "make_channel"]

log = logging.getLogger("drivers.cards.osdp")

_INSTALL_REMINDER_S = 3600.0
_CREDENTIALS = frozenset({CARD_PRESENTED, CARD_READ_ERROR})
_MAX_PULSE_S = 6553.5  # 16-bit timer in 100 ms units


class OsdpBusError(Exception):
    """The bus's refresh thread died; the supervisor restarts the driver."""


class _BadArgs(ValueError):
    """A command's arguments are unusable (reported as ``refused``)."""


def make_channel(cfg: OsdpDriverConfig) -> BusChannel:
    backoff = Backoff(0.5, cfg.reconnect_max_s)
    if cfg.serial is not None:
        return SerialChannel(cfg.serial.port, cfg.serial.baud, backoff)
    assert cfg.tcp is not None
    return TcpChannel(
        cfg.tcp.host, cfg.tcp.port, backoff, connect_timeout_s=cfg.tcp.connect_timeout_s
    )


class OsdpDriver(Driver):
    config_model = OsdpDriverConfig
    config: OsdpDriverConfig

    def __init__(self, config: OsdpDriverConfig) -> None:
        super().__init__(config)
        self.panel: Panel | None = None  # while running (tests and the benchmark look at it)
        self._index = {r.device: i for i, r in enumerate(config.readers)}
        self._secure: dict[int, tuple[bool, bool, bool]] = {}
        self._clear_text: set[int] = set()  # keyed readers online without secure channel

    async def run(self, ctx: DriverContext) -> None:
        cfg = self.config
        specs = [
            PdSpec(r.address, r.device, r.key(), r.enforce_secure, r.install_mode)
            for r in cfg.readers
        ]
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[PanelMessage] = asyncio.Queue()

        def sink(msg: PanelMessage) -> None:  # called on the refresh thread
            with contextlib.suppress(RuntimeError):  # the loop closed under a stopping thread
                loop.call_soon_threadsafe(inbox.put_nowait, msg)

        panel = Panel(
            make_channel(cfg),
            specs,
            sink,
            reprobe_max_s=cfg.reprobe_max_s,
            silence_s=cfg.silence_s,
            name=cfg.id,
        )
        panel.start()
        self.panel = panel
        self._secure.clear()
        self._clear_text.clear()
        translators = [ReaderTranslator(r, ctx.clock, cfg.pin_timeout_s) for r in cfg.readers]
        tasks = [
            asyncio.create_task(self._consume(ctx, inbox, translators), name=f"{cfg.id}:events"),
            asyncio.create_task(self._commands(ctx, panel), name=f"{cfg.id}:commands"),
        ]
        if any(r.install_mode for r in cfg.readers):
            tasks.append(asyncio.create_task(self._remind(ctx), name=f"{cfg.id}:install"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.to_thread(panel.stop)
            self.panel = None

    async def _consume(
        self,
        ctx: DriverContext,
        inbox: asyncio.Queue[PanelMessage],
        translators: list[ReaderTranslator],
    ) -> None:
        while True:
            msg = await inbox.get()
            if isinstance(msg, PdEvent):
                for event in translators[msg.index].translate(msg.data, ctx.clock.time_ns()):
                    if event.type in _CREDENTIALS and msg.index in self._clear_text:
                        log.warning(
                            "%s: %s dropped: the reader has a key but talks in clear text",
                            event.source,
                            event.type,
                        )
                        continue
                    await ctx.emit(event)
            elif isinstance(msg, PdState):
                await self._state(ctx, msg)
            elif isinstance(msg, PdKeyed):
                log.warning(
                    "%s was given its secure channel key (install mode); turn install_mode off",
                    self.config.readers[msg.index].device,
                )
            elif isinstance(msg, PanelStopped):
                if msg.error is not None:
                    raise OsdpBusError(f"bus {self.config.bus_name}: {msg.error!r}") from msg.error
                return

    async def _state(self, ctx: DriverContext, st: PdState) -> None:
        reader = self.config.readers[st.index]
        secure = (st.sc_active, st.default_key, st.sc_refused)
        if (st.online or st.sc_refused) and self._secure.get(st.index) != secure:
            self._secure[st.index] = secure
            data: dict[str, Any] = {"active": st.sc_active, "install_mode": reader.install_mode}
            if st.default_key:
                data["default_key"] = True
            if st.sc_refused:
                data["reason"] = "refused"
            await ctx.emit(Event(READER_SECURE_CHANNEL, reader.device, ctx.clock.time_ns(), data))
            if st.online and not st.sc_active:
                log.warning("%s is online without secure channel", reader.device)
        if st.online and reader.key_env is not None and not st.sc_active:
            # only possible in install mode (libosdp falls back to clear text): nothing read
            # over it counts, or anyone on the wire could present cards
            self._clear_text.add(st.index)
        else:
            self._clear_text.discard(st.index)
        if st.online:
            await ctx.health.device_online(reader.device, driver=self.config.id)
        else:
            await ctx.health.device_offline(reader.device, st.reason, driver=self.config.id)

    async def _remind(self, ctx: DriverContext) -> None:
        names = ", ".join(r.device for r in self.config.readers if r.install_mode)
        while True:
            log.warning(
                "install mode is on for %s: a factory-default reader on this bus is given "
                "its key over the default key; turn install_mode off after commissioning",
                names,
            )
            await ctx.clock.sleep(_INSTALL_REMINDER_S)

    async def _commands(self, ctx: DriverContext, panel: Panel) -> None:
        running: set[asyncio.Task[None]] = set()
        try:
            async for cmd in ctx.commands():
                # one task per command: readers do not wait for each other; the panel
                # keeps each reader's commands in arrival order
                task = asyncio.create_task(self._execute(ctx, panel, cmd))
                running.add(task)
                task.add_done_callback(running.discard)
                await asyncio.sleep(0)  # let it queue its command before the next one
        finally:
            for task in list(running):
                task.cancel()

    async def _execute(self, ctx: DriverContext, panel: Panel, cmd: Command) -> None:
        index = self._index.get(cmd.target)
        try:
            if index is None:
                raise _BadArgs("unknown_device")
            steps = self._steps(cmd)
        except _BadArgs as exc:
            outcome = CommandOutcome(False, str(exc))
            result = "refused"
        else:
            outcome = await panel.submit(index, steps, self.config.command_timeout_s)
            result = "done" if outcome.ok else "failed"
        level = logging.DEBUG if outcome.ok else logging.WARNING
        log.log(level, "%s %s on %s: %s %s", cmd.action, cmd.id, cmd.target, result, outcome.reason)
        data = {
            "id": cmd.id,
            "target": cmd.target,
            "action": cmd.action,
            "result": result,
            "reason": outcome.reason,
        }
        await ctx.emit(Event(COMMAND_RESULT, cmd.target, ctx.clock.time_ns(), data))

    def _steps(self, cmd: Command) -> list[dict[str, Any]]:
        args = cmd.args
        if cmd.action == COMMAND_FEEDBACK:
            result = args.get("result")
            if result not in ("grant", "deny"):
                raise _BadArgs("bad_args: result must be grant or deny")
            seconds = _number(args.get("seconds", self.config.grant_seconds), 60.0)
            grant = result == "grant"
            return [led_command(grant, seconds), buzzer_command(1 if grant else 3)]
        if cmd.action == COMMAND_PULSE:
            output = args.get("output", 0)
            if isinstance(output, bool) or not isinstance(output, int) or not 0 <= output < 256:
                raise _BadArgs("bad_args: output must be an integer 0-255")
            return [output_command(output, _number(args.get("seconds"), _MAX_PULSE_S))]
        raise _BadArgs(f"unknown_action: {cmd.action!r} (feedback or pulse)")


def _number(value: object, most: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= most:
        raise _BadArgs(f"bad_args: seconds must be a number above 0 and at most {most}")
    return float(value)
