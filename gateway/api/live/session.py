"""One WebSocket connection of the live stream, after authentication.

Three tasks per connection: the send task (the only one that writes to the
socket; it sleeps until the hub or the reader wakes it), the reader (hello
first, then subscribe and ping), and a periodic re-check of the credentials,
so a revoked token or an ended session also ends the stream. A client that
stops reading blocks its own send task, nothing else: the hub keeps going,
the ring holds what it has not sent and its readings coalesce.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.api.auth.authenticator import AuthError
from gateway.api.context import ApiContext
from gateway.api.live.client import LiveClient
from gateway.api.live.protocol import (
    BAD_HELLO,
    HELLO_TIMEOUT,
    UNAUTHENTICATED,
    HelloIn,
    PingIn,
    ProtocolError,
    SubscribeIn,
    parse_client_message,
)
from gateway.api.live.render import PONG, Renderer
from gateway.api.principal import Principal
from gateway.storage.eventstore import EventStoreUnavailable

__all__ = ["HELLO_TIMEOUT_S", "REAUTH_INTERVAL_S", "SEND_BATCH", "LiveSession", "close_reason"]

log = logging.getLogger("gateway.api.live")

HELLO_TIMEOUT_S = 10.0
REAUTH_INTERVAL_S = 60.0  # how soon a revoked token or ended session loses its stream
SEND_BATCH = 256  # seq'd messages taken from the ring per wake-up

T = TypeVar("T")


def close_reason(text: str) -> str:
    """A close frame's reason holds at most 123 bytes of UTF-8."""
    data = text.encode("utf-8")
    if len(data) <= 123:
        return text
    return data[:120].decode("utf-8", errors="ignore") + "..."


class LiveSession:
    def __init__(
        self,
        ws: WebSocket,
        ctx: ApiContext,
        principal: Principal,
        renderer: Renderer,
        *,
        reauth_interval: float | None = None,
        hello_timeout: float | None = None,
    ) -> None:
        self.ws = ws
        self.ctx = ctx
        self.hub = ctx.hub
        self.principal = principal
        self.renderer = renderer
        self.reauth_interval = REAUTH_INTERVAL_S if reauth_interval is None else reauth_interval
        self.hello_timeout = HELLO_TIMEOUT_S if hello_timeout is None else hello_timeout
        peer = ws.client.host if ws.client else "?"
        self.name = f"{principal.username}@{peer}"

    async def run(self) -> None:
        hello = await self._hello()
        if hello is None:
            return
        resume = (hello.resume.epoch, hello.resume.seq) if hello.resume else None
        client = self.hub.connect(self.name, self.principal.role, hello.points, resume)
        sender = asyncio.create_task(self._send(client), name=f"live:send:{self.name}")
        reader = asyncio.create_task(self._read(client), name=f"live:read:{self.name}")
        reauth = asyncio.create_task(self._reauth(client), name=f"live:auth:{self.name}")
        tasks = (sender, reader, reauth)
        try:
            await asyncio.wait((sender, reader), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.hub.disconnect(client)
            for t in tasks:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            # A peer that vanished mid-send is the normal end of a stream.
            if isinstance(r, Exception) and not isinstance(r, WebSocketDisconnect):
                raise r

    # -- hello ----------------------------------------------------------------
    async def _hello(self) -> HelloIn | None:
        msg = await self._within(self.hello_timeout, self.ws.receive())
        if msg is None:
            await self.ws.close(HELLO_TIMEOUT, f"no hello within {self.hello_timeout:g} s")
            return None
        if msg["type"] == "websocket.disconnect":
            return None
        text = msg.get("text")
        try:
            if text is None:
                raise ProtocolError("send JSON text frames")
            first = parse_client_message(text)
            if not isinstance(first, HelloIn):
                raise ProtocolError("the first message must be hello")
        except ProtocolError as e:
            await self.ws.close(BAD_HELLO, close_reason(str(e)))
            return None
        return first

    async def _within(self, seconds: float, aw: Awaitable[T]) -> T | None:
        """``aw``'s result, or None when ``seconds`` of the gateway's clock pass first."""
        work = asyncio.ensure_future(aw)
        timer = asyncio.ensure_future(self.ctx.clock.sleep(seconds))
        try:
            await asyncio.wait((work, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not work.done():
                work.cancel()
        return work.result() if work.done() and not work.cancelled() else None

    # -- the send task --------------------------------------------------------
    async def _send(self, client: LiveClient) -> None:
        ws = self.ws
        while True:
            await client.wake.wait()
            client.wake.clear()
            if client.close_code is not None:
                await ws.close(client.close_code, close_reason(client.close_reason))
                return
            out = self._collect(client)
            for text in out:
                await ws.send_text(text)
            client.sent_messages += len(out)

    def _collect(self, client: LiveClient) -> list[str]:
        """Everything due for ``client`` now, rendered. Synchronous on purpose:
        the pull and its snapshot see the same alarm records."""
        hub, r = self.hub, self.renderer
        out: list[str] = []
        pull = hub.pull(client, SEND_BATCH)
        if not client.welcomed:
            client.welcomed = True
            out.append(r.welcome(hub.epoch, pull.head, resumed=not pull.snapshot))
        if pull.snapshot:
            out.append(r.snapshot(pull.head))
        role = client.role
        out.extend(r.message(seq, msg, role) for seq, msg in pull.items)
        if client.pong_due:
            client.pong_due = False
            out.append(PONG)
        while client.notices:
            out.append(client.notices.popleft())
        if client.flush_due:
            readings = client.take_readings()
            if readings:
                out.append(r.readings(readings, hub.tick_ns))
        if hub.behind(client):
            client.wake.set()  # more than one batch: go on after sending this one
        return out

    # -- the reader -----------------------------------------------------------
    async def _read(self, client: LiveClient) -> None:
        r = self.renderer
        while True:
            msg: dict[str, Any] = dict(await self.ws.receive())
            if msg["type"] == "websocket.disconnect":
                return
            text = msg.get("text")
            if text is None:
                client.notice(r.error("send JSON text frames, not binary ones"))
                continue
            try:
                m = parse_client_message(text)
            except ProtocolError as e:
                client.notice(r.error(str(e)))
                continue
            if isinstance(m, SubscribeIn):
                self.hub.subscribe(client, m.points)
            elif isinstance(m, PingIn):
                client.ping()
            else:
                client.notice(
                    r.error("hello was already received; send subscribe to change points")
                )

    # -- credentials ----------------------------------------------------------
    async def _reauth(self, client: LiveClient) -> None:
        while True:
            await self.ctx.clock.sleep(self.reauth_interval)
            try:
                await self.ctx.auth.authenticate(self.ws, method="GET")
            except AuthError as e:
                log.info("live client %s: credentials no longer valid (%s)", self.name, e)
                client.close(UNAUTHENTICATED, str(e))
                return
            except EventStoreUnavailable as e:
                # The store is down: keep the stream (it is how the room sees alarms).
                log.debug("live client %s: cannot re-check credentials: %s", self.name, e)
