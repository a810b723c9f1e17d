"""Run a FastAPI app inside the gateway's event loop with uvicorn.

The server shares the loop (and so the bus, the store and the alarm
manager) with the rest of the gateway; no second process, no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

__all__ = ["ApiServer", "ApiServerError"]

log = logging.getLogger("gateway.api")

_START_TIMEOUT_S = 10.0


class ApiServerError(Exception):
    """The HTTP server could not start (the port is taken, the address is wrong)."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The gateway owns SIGINT/SIGTERM; uvicorn must not take them over.
        yield


class ApiServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port  # the bound port once started (when 0 was asked for)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,  # the gateway's logging, not uvicorn's
            access_log=False,
            lifespan="off",
            # No per-message deflate on the live stream: compressing every
            # frame for every client cost more CPU than the whole hub
            # (bench/ws_fanout.py: alarm p99 189 ms with it, 47 ms without, at
            # 50 clients and 5k readings/s). The page is on the LAN or loopback.
            ws_per_message_deflate=False,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve; raises :class:`ApiServerError` when it cannot listen."""
        server = self._server
        self._task = asyncio.create_task(self._serve(), name="service:api")
        waited = 0.0
        while not server.started:
            if self._task.done():
                exc = None if self._task.cancelled() else self._task.exception()
                raise ApiServerError(
                    f"cannot listen on {self.host}:{self.port}: {exc or 'the server stopped'}"
                )
            await asyncio.sleep(0.01)
            waited += 0.01
            if waited > _START_TIMEOUT_S:
                await self.stop()
                raise ApiServerError(f"the HTTP server did not start on {self.host}:{self.port}")
        for srv in server.servers:
            for sock in srv.sockets:
                self.port = int(sock.getsockname()[1])
                break
        log.info("HTTP API listening on %s", self.url)

    async def _serve(self) -> None:
        try:
            await self._server.serve()
        except SystemExit:
            # uvicorn exits the process when it cannot bind; here that is an error
            # of this server only (it has logged the reason).
            raise ApiServerError(f"cannot listen on {self.host}:{self.port}") from None

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 5.0)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        except (OSError, ApiServerError) as exc:
            log.warning("HTTP server stopped: %s", exc)
        self._task = None
