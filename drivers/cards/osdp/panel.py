"""One OSDP bus as a control panel: libosdp's refresh thread, bridged to asyncio.

libosdp is not thread-safe and wants ``refresh()`` called at least every
50 ms. The stock ``osdp.ControlPanel`` sleeps a fixed 20 ms between calls
and makes callers take its lock; here one thread owns the context and the
channel and nobody else touches them:

* it waits in ``select`` on the channel's descriptor (and a wake-up pipe)
  for at most ``wait_s`` (5 ms), so a reply is decoded the moment its bytes
  arrive and an idle bus costs a few hundred cheap calls a second, not a
  spinning core;
* asyncio hands it commands through a queue and the pipe; the thread
  submits them (:mod:`drivers.cards.osdp.commands`: one per reader at a
  time) and refreshes at once, twice (libosdp sends a new command on the
  second refresh), so a decision goes out on the very next refresh;
* what it learns (card reads, keys, status reports, online / secure
  channel changes, command outcomes) goes to a ``sink`` callable, which
  the driver makes ``loop.call_soon_threadsafe``: the loop never waits on
  the thread.

Offline readers: libosdp probes a silent reader for ~8 s, then declares it
offline and waits 300 s before trying again. We re-enable it
(``disable_pd`` then ``enable_pd`` on a later turn: an immediate enable is
refused while the disable is pending) after ``reprobe_min_s`` doubling to
``reprobe_max_s``, so a reader that comes back is online within seconds.
We also call a reader offline when it has not answered for ``silence_s``
(the channel notes the address of every reply header), instead of after
libosdp's 8 s, and after a reconnect only once it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import osdp_sys

from drivers.cards.osdp import liblog
from drivers.cards.osdp.channel import BusChannel
from drivers.cards.osdp.commands import CommandQueues, Job
from drivers.cards.osdp.messages import (
    CommandOutcome,
    PanelMessage,
    PanelStopped,
    PdEvent,
    PdKeyed,
    PdSpec,
    PdState,
)
from gateway.backoff import Backoff

__all__ = ["Panel", "PanelError"]

log = logging.getLogger("drivers.cards.osdp.panel")

_SC_FAILURE = ("CHLNG failed", "Failed to verify PD cryptogram", "SC Failed", "SCRYPT failed")
_NOTIFY_SC, _NOTIFY_PD, _NOTIFY_COMMAND = 1, 2, 0


class PanelError(Exception):
    """The control panel could not be set up (libosdp refused the PD list)."""


@dataclass(slots=True)
class _Pd:
    spec: PdSpec
    backoff: Backoff
    online: bool | None = None  # what we reported (None: nothing yet)
    sc: bool = False
    default_key: bool = False
    sc_failed: bool = False  # a handshake failed since it was last online
    lib_offline: bool = False  # libosdp said offline (notification)
    lib_online: bool = False  # libosdp's status bit
    last_heard: float = float("-inf")  # monotonic time of its last reply on the line
    kick_at: float | None = None
    enabling: bool = False
    enable_at: float = 0.0
    reported: tuple[bool, bool, bool, str, bool] | None = None


class Panel:
    """A libosdp ControlPanel for the readers of one bus, run by its own thread."""

    def __init__(
        self,
        channel: BusChannel,
        pds: Sequence[PdSpec],
        sink: Callable[[PanelMessage], None],
        *,
        wait_s: float = 0.005,
        reprobe_min_s: float = 1.0,
        reprobe_max_s: float = 5.0,
        startup_grace_s: float = 10.0,
        silence_s: float = 2.0,
        name: str = "osdp",
    ) -> None:
        if not pds:
            raise PanelError("a bus needs at least one reader")
        self.channel, self.name, self._sink = channel, name, sink
        self.wait_s, self.startup_grace_s, self.silence_s = wait_s, startup_grace_s, silence_s
        self._pds = [_Pd(s, Backoff(reprobe_min_s, reprobe_max_s)) for s in pds]
        self._inbox: deque[Job] = deque()
        self._commands = CommandQueues(len(pds), name)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx: Any = None
        self._link_up = False
        self._hurry = 0  # refreshes to run without waiting (libosdp sends on the 2nd)
        self._started = 0.0

    # ---- called from other threads -------------------------------------------------

    def start(self) -> None:
        """Set up libosdp (raises PanelError) and start the refresh thread."""
        liblog.install()
        info = [p.spec.info(self.channel) for p in self._pds]
        try:
            ctx = osdp_sys.ControlPanel(info)
        except Exception as exc:
            raise PanelError(f"libosdp refused the readers of {self.name}: {exc}") from exc
        ctx.set_event_callback(self._on_event)
        ctx.set_command_completion_callback(self._on_completion)
        self._ctx = ctx
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"osdp-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (pending commands fail with ``stopped``) and close the channel."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("%s: refresh thread did not stop in %s s", self.name, timeout)
                return  # leave its descriptors alone while it may still use them
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit_threadsafe(
        self,
        index: int,
        steps: list[dict[str, Any]],
        timeout_s: float,
        done: Callable[[CommandOutcome], None],
    ) -> None:
        """Queue libosdp commands for reader ``index``, sent in order; ``done`` is called
        once, from the refresh thread."""
        if not self.running:
            done(CommandOutcome(False, "stopped"))
            return
        self._inbox.append(Job(index, steps, time.monotonic() + timeout_s, done))
        self._wake()

    async def submit(
        self, index: int, steps: list[dict[str, Any]], timeout_s: float
    ) -> CommandOutcome:
        """``submit_threadsafe`` for a coroutine: the loop waits on a future, never a lock."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[CommandOutcome] = loop.create_future()

        def resolve(outcome: CommandOutcome) -> None:
            if not fut.done():
                fut.set_result(outcome)

        def done(outcome: CommandOutcome) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(resolve, outcome)

        self.submit_threadsafe(index, steps, timeout_s, done)
        try:  # the thread answers by the deadline; the margin only covers its dying meanwhile
            return await asyncio.wait_for(fut, timeout_s + 5.0)
        except TimeoutError:
            return CommandOutcome(False, "stopped")

    def states(self) -> list[tuple[bool | None, bool]]:
        """(online, secure channel) per reader as last reported (for tests and health)."""
        return [(p.online, p.sc) for p in self._pds]

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full pipe: a wake-up is pending anyway
            os.write(self._wake_w, b"!")

    # ---- the refresh thread --------------------------------------------------------

    def _run(self) -> None:
        liblog.listen(self._on_lib_line)
        error: BaseException | None = None
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                self.channel.maintain(now)
                self._check_link(now)
                self._take_inbox()
                self._pump()
                reads = self.channel.reads
                self._ctx.refresh()
                self._hurry = max(0, self._hurry - 1)
                if self.channel.reads != reads:  # a reply was handled: libosdp may send next
                    self._hurry = max(self._hurry, 1)
                self._hear()
                now = time.monotonic()
                self._pump()
                self._update_states(now)
                self._kick(now)
                self._commands.expire(self._ctx, now)
                self._wait()
        except Exception as exc:  # reported to the driver, which crashes and is restarted
            error = exc
            log.exception("%s: refresh thread crashed", self.name)
        finally:
            liblog.listen(None)
            ctx, self._ctx = self._ctx, None  # no flush: it may be what broke
            for i in range(len(self._pds)):
                self._commands.fail(None, i, "stopped")
            while self._inbox:
                self._inbox.popleft().done(CommandOutcome(False, "stopped"))
            self.channel.close()
            del ctx  # libosdp's teardown, after the channel is closed
            self._sink(PanelStopped(error))

    def _wait(self) -> None:
        if self._hurry or self._commands.ready():
            return
        rfds = [self._wake_r]
        fd = self.channel.fileno()
        if fd is not None:
            rfds.append(fd)
        cfd = self.channel.connect_fileno()
        try:
            readable, _w, _x = select.select(
                rfds, [cfd] if cfd is not None else [], [], self.wait_s
            )
        except (OSError, ValueError):  # the descriptor closed under us: next turn sees it
            return
        if self._wake_r in readable:
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 4096)

    def _check_link(self, now: float) -> None:
        up = self.channel.connected
        if up == self._link_up:
            return
        self._link_up = up
        if up:
            log.info("%s: connected to %s", self.name, self.channel.name)
            for pd in self._pds:
                pd.kick_at = now  # re-probe now rather than after libosdp's 300 s
                pd.backoff.reset()
            return
        log.warning("%s: %s", self.name, self.channel.detail)
        for i, pd in enumerate(self._pds):
            self._set_offline(i, pd, now)

    def _take_inbox(self) -> None:
        while self._inbox:
            job = self._inbox.popleft()
            if not 0 <= job.index < len(self._pds):
                job.done(CommandOutcome(False, "refused"))
            elif self._pds[job.index].online is not True:
                job.done(CommandOutcome(False, "offline"))
            else:
                self._commands.add(job)

    def _pump(self) -> None:
        if self._commands.pump(self._ctx):
            self._hurry = 2  # libosdp sends a submitted command on the second refresh

    def _hear(self) -> None:
        heard = self.channel.heard
        if not heard:
            return
        now = time.monotonic()
        for pd in self._pds:
            if pd.spec.address in heard:
                pd.last_heard = now
        heard.clear()

    def _update_states(self, now: float) -> None:
        """Online = the link is up, libosdp has the reader online, and it answered within
        ``silence_s``: libosdp alone would keep a silent reader online for ~8 s of probing,
        and after a reconnect its status bit is stale until the reader answers again."""
        status, sc_mask = self._ctx.status(), self._ctx.sc_status()
        for i, pd in enumerate(self._pds):
            pd.lib_online = bool(status >> i & 1)
            pd.sc = bool(sc_mask >> i & 1)
            if not pd.sc:
                pd.default_key = False
            if self._link_up and pd.lib_online and now - pd.last_heard <= self.silence_s:
                if pd.online is not True:
                    pd.online, pd.sc_failed, pd.lib_offline, pd.kick_at = True, False, False, None
                    pd.backoff.reset()
            elif pd.online is True or (
                pd.online is None
                and (
                    pd.lib_offline
                    or (not self._link_up and self.channel.failures > 0)
                    or now > self._started + self.startup_grace_s
                )
            ):
                self._set_offline(i, pd, now)
            self._report(i, pd)

    def _set_offline(self, index: int, pd: _Pd, now: float) -> None:
        if pd.online is False:
            return
        pd.online = False
        if pd.kick_at is None:
            pd.kick_at = now + pd.backoff.next()
        self._commands.fail(self._ctx, index, "offline")
        self._report(index, pd)

    def _reason(self, pd: _Pd) -> str:
        if not self._link_up:
            return f"connection down: {self.channel.detail}"
        if pd.sc_failed:
            return "secure channel refused: the reader's key does not match (or it is not keyed)"
        return "no answer from the reader"

    def _report(self, index: int, pd: _Pd) -> None:
        if pd.online is None:
            return
        if pd.online:
            state = (True, pd.sc, pd.default_key, "", False)
        else:
            refused = pd.sc_failed and self._link_up
            state = (False, False, False, self._reason(pd), refused)
        if state != pd.reported:
            pd.reported = state
            self._sink(PdState(index, *state))

    def _kick(self, now: float) -> None:
        """Re-enable offline readers so libosdp probes them again (see the module docstring)."""
        if not self._link_up:
            return
        for i, pd in enumerate(self._pds):
            if pd.online is not False or (pd.lib_online and not pd.enabling):
                continue  # online, or libosdp is still probing it by itself
            if pd.enabling:
                if now >= pd.enable_at:
                    if self._ctx.enable_pd(i):
                        pd.enabling, pd.kick_at = False, now + pd.backoff.next()
                    else:  # the disable waits for the current probe to end
                        pd.enable_at = now + 0.1
            elif pd.kick_at is not None and now >= pd.kick_at:
                if self._ctx.disable_pd(i):
                    pd.enabling, pd.enable_at = True, now + 0.02
                else:
                    pd.kick_at = now + pd.backoff.next()

    # ---- libosdp callbacks (inside refresh, on the refresh thread) -----------------

    def _on_event(self, index: int, event: dict[str, Any]) -> int:
        try:
            if event.get("event") == osdp_sys.EVENT_NOTIFICATION:
                self._on_notification(index, event)
            else:
                self._sink(PdEvent(index, event, time.perf_counter()))
        except Exception:
            log.exception("%s: event %r could not be handled", self.name, event)
        return 0

    def _on_notification(self, index: int, event: dict[str, Any]) -> None:
        if not 0 <= index < len(self._pds):
            return
        pd, kind, arg0, arg1 = (
            self._pds[index],
            event.get("type"),
            event.get("arg0"),
            event.get("arg1"),
        )
        if kind == _NOTIFY_SC:
            pd.sc, pd.default_key = bool(arg0), bool(arg0) and arg1 == 1
            if pd.default_key:
                log.warning(
                    "%s: %s is on the default key (SCBK-D): install mode", self.name, pd.spec.name
                )
        elif kind == _NOTIFY_PD:
            if arg0:
                pd.lib_offline = False
            else:
                pd.lib_offline = True
        elif kind == _NOTIFY_COMMAND and arg0 == osdp_sys.CMD_KEYSET and arg1:
            self._sink(PdKeyed(index))

    def _on_completion(self, index: int, command: dict[str, Any], status: int) -> None:
        try:
            self._commands.completed(index, command, status)
        except Exception:
            log.exception("%s: command completion could not be handled", self.name)

    def _on_lib_line(self, line: liblog.LibLine) -> None:
        if line.role != "CP" or line.address is None:
            return
        if any(s in line.message for s in _SC_FAILURE):
            for pd in self._pds:
                if pd.spec.address == line.address:
                    pd.sc_failed = True
