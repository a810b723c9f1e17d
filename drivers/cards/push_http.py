"""Access controllers and ANPR cameras that POST their events (``type: card_http``).

Many Chinese ANPR cameras and networked controllers push each plate or
swipe as a JSON POST to a URL set in their web page. This driver is that
URL: an aiohttp server on ``host:port`` (loopback by default: put it on the
cameras' VLAN address on purpose), whose paths are the ``match`` of the
``events:`` entries, mapped by :class:`~drivers.cards.push_map.EventMap`.

Answers: 200 ``{"ok": true}`` once the events are on the bus (a message no
entry's ``when`` fits is ignored, still 200); 400 with the reason for a
payload that is not JSON or lacks or mistypes a mapped field (counted and
reported as ``http.malformed``, at most one event per path per minute);
401 when ``token_env`` is set and neither ``Authorization: Bearer`` nor
``?token=`` carries it; 404 for a path no entry has; 405 for a method other
than POST or PUT; 413 past ``max_body`` bytes.

HTTP gives us no way back to the device, so ``feedback`` and ``pulse``
commands are answered ``command.result`` ``refused``. The listening server
is device ``<driver id>`` in the health: ``device.offline`` while it cannot
listen (port taken, token variable unset), retried every ``retry_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import Field, model_validator

from drivers.cards.push_config import PushDriverConfig, check_http_entries
from drivers.cards.push_map import EventMap, command_result
from drivers.mqtt.malformed import MalformedReporter
from gateway.driver import Driver, DriverContext

__all__ = [
    "HTTP_MALFORMED",
    "HttpControllerConfig",
    "HttpControllerDriver",
    "HttpDriverError",
    "HttpStats",
]

HTTP_MALFORMED = "http.malformed"
SUMMARY_INTERVAL_S = 60.0
_METHODS = ("POST", "PUT")


class HttpDriverError(Exception):
    """The server cannot be started as configured (the reason is for people)."""


class HttpControllerConfig(PushDriverConfig):
    type: Literal["card_http"] = Field(
        description="Access controllers and ANPR cameras that POST JSON events to the gateway."
    )
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address to listen on: 127.0.0.1 (default, same host only), the "
        "address on the cameras' network, or 0.0.0.0 for every interface.",
    )
    port: int = Field(ge=1, le=65535, description="TCP port the devices post to.")
    token_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding a shared token; requests must carry it as "
        "'Authorization: Bearer <token>' or '?token=<token>' (else 401). Omit: no token.",
    )
    max_body: int = Field(
        65_536, ge=256, le=16_777_216, description="Largest request body in bytes (else 413)."
    )
    retry_s: float = Field(
        5.0, gt=0, description="Seconds between attempts to listen when the port is taken."
    )

    @model_validator(mode="after")
    def _compiles(self) -> HttpControllerConfig:
        check_http_entries(self.events)
        EventMap(self.events, self.device_table, "http")  # raises ValueError with the entry
        return self


@dataclass(frozen=True, slots=True)
class HttpStats:
    received: int  # requests to a known path with an accepted method and size
    events: int  # mapped events emitted
    malformed: int  # 400 answers
    ignored: int  # payloads that fit no entry's `when`
    unauthorized: int  # 401
    not_found: int  # 404 and 405
    too_large: int  # 413
    listening: bool


def _json(status: int, **body: Any) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class HttpControllerDriver(Driver):
    config_model = HttpControllerConfig

    def __init__(self, config: HttpControllerConfig) -> None:
        super().__init__(config)
        self.config: HttpControllerConfig = config
        self._map = EventMap(config.events, config.device_table, "http")
        self._counts = dict.fromkeys(
            (
                "received",
                "events",
                "malformed",
                "ignored",
                "unauthorized",
                "not_found",
                "too_large",
            ),
            0,
        )
        self._listening = False

    def stats(self) -> HttpStats:
        return HttpStats(**self._counts, listening=self._listening)

    async def run(self, ctx: DriverContext) -> None:
        cfg = self.config
        reporter = MalformedReporter(cfg.id, ctx.clock, ctx.log)
        helpers = [
            asyncio.create_task(self._refuse_commands(ctx)),
            asyncio.create_task(self._summaries(ctx, reporter)),
        ]
        try:
            while True:
                try:
                    runner = await self._start(ctx, reporter)
                except (OSError, HttpDriverError) as e:
                    await ctx.health.device_offline(cfg.id, f"http: {e}", driver=cfg.id)
                    await ctx.clock.sleep(cfg.retry_s)
                    continue
                try:
                    self._listening = True
                    ctx.log.info("listening on http://%s:%s", cfg.host, cfg.port)
                    await ctx.health.device_online(cfg.id, driver=cfg.id)
                    await asyncio.Future()  # serve until cancelled
                finally:
                    self._listening = False
                    await runner.cleanup()
        finally:
            for t in helpers:
                t.cancel()
            for t in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    async def _start(self, ctx: DriverContext, reporter: MalformedReporter) -> web.AppRunner:
        cfg = self.config
        token: bytes | None = None
        if cfg.token_env is not None:
            value = os.environ.get(cfg.token_env, "")
            if not value:
                raise HttpDriverError(f"token_env {cfg.token_env} is not set; not listening")
            token = value.encode()

        async def handle(request: web.Request) -> web.Response:
            return await self._handle(ctx, reporter, token, request)

        app = web.Application(client_max_size=cfg.max_body)
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, cfg.host, cfg.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner

    async def _handle(
        self,
        ctx: DriverContext,
        reporter: MalformedReporter,
        token: bytes | None,
        request: web.Request,
    ) -> web.Response:
        counts, path = self._counts, request.path
        if token is not None and not _authorized(request, token):
            counts["unauthorized"] += 1
            return _json(401, ok=False, error="missing or wrong token")
        if not self._map.entries_for(path):
            counts["not_found"] += 1
            return _json(404, ok=False, error=f"no events are mapped at {path}")
        if request.method not in _METHODS:
            counts["not_found"] += 1
            resp = _json(405, ok=False, error=f"{request.method} not allowed; POST the event")
            resp.headers["Allow"] = ", ".join(_METHODS)
            return resp
        too_large = _json(413, ok=False, error=f"body over {self.config.max_body} bytes")
        if (request.content_length or 0) > self.config.max_body:
            counts["too_large"] += 1
            return too_large
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            counts["too_large"] += 1
            return too_large
        counts["received"] += 1
        result = self._map.map(path, body, ctx.clock.time_ns())
        for event in result.events:
            await ctx.emit(event)
        counts["events"] += len(result.events)
        counts["ignored"] += result.ignored
        if not result.problems:
            return _json(200, ok=True)
        counts["malformed"] += 1
        for label, reason in result.problems:
            note = reporter.note(path, label, reason, body)
            if note is not None:
                data = dict(note.data)
                data["path"] = data.pop("topic")
                data["match"] = data.pop("subscription")
                await ctx.emit(dataclasses.replace(note, type=HTTP_MALFORMED, data=data))
        reasons = "; ".join(reason for _, reason in result.problems)
        return _json(400, ok=False, error=reasons, events=len(result.events))

    async def _refuse_commands(self, ctx: DriverContext) -> None:
        async for cmd in ctx.commands():
            why = "card_http cannot send commands: HTTP devices only post to the gateway"
            await ctx.emit(command_result(cmd, "refused", why, ctx.clock.time_ns()))

    async def _summaries(self, ctx: DriverContext, reporter: MalformedReporter) -> None:
        while True:
            await ctx.clock.sleep(SUMMARY_INTERVAL_S)
            reporter.summary()


def _authorized(request: web.Request, token: bytes) -> bool:
    given = ""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    elif "token" in request.query:
        given = request.query["token"]
    return hmac.compare_digest(given.encode(), token)
