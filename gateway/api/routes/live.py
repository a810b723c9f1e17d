"""``GET /api/v1/live``: the WebSocket live stream (protocol: gateway/api/live/protocol.py).

Authentication is checked before anything is streamed: a bearer token
(machines) or the session cookie (the page). A browser sends the cookie on
a WebSocket handshake from any site, and the same-origin policy does not
apply to WebSockets, so a cookie is only accepted when the ``Origin`` header
names this very host (else close 4403: cross-site WebSocket hijacking).
A refused handshake is accepted and then closed with 4401/4403, because a
browser cannot see the status of a refused handshake, only a close code.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket
from starlette.datastructures import Headers

from gateway.api.auth.authenticator import SESSION_COOKIE, AuthError
from gateway.api.context import ApiContext
from gateway.api.live.protocol import FORBIDDEN_ORIGIN, UNAUTHENTICATED
from gateway.api.live.render import Renderer
from gateway.api.live.session import LiveSession, close_reason
from gateway.storage.eventstore import EventStoreUnavailable

__all__ = ["router", "same_origin"]

log = logging.getLogger("gateway.api.live")

router = APIRouter(tags=["live"])

TRY_AGAIN_LATER = 1013
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _netloc(scheme: str, netloc: str) -> str:
    netloc = netloc.lower()
    default = _DEFAULT_PORTS.get(scheme)
    if default and netloc.endswith(f":{default}"):
        netloc = netloc[: -len(default) - 1]
    return netloc


def same_origin(headers: Headers, scheme: str = "http") -> bool:
    """The ``Origin`` names the host the request was sent to (``Host``),
    default ports aside. No Origin, or ``null``, is not the same origin."""
    origin, host = headers.get("origin", ""), headers.get("host", "")
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    host_scheme = "https" if scheme in ("https", "wss") else "http"
    return _netloc(parts.scheme, parts.netloc) == _netloc(host_scheme, host)


def _renderer(ws: WebSocket, ctx: ApiContext) -> Renderer:
    """One renderer (and its caches) per app."""
    state = ws.app.state
    renderer = getattr(state, "live_renderer", None)
    if not isinstance(renderer, Renderer):
        renderer = Renderer(ctx)
        state.live_renderer = renderer
    return renderer


async def _refuse(ws: WebSocket, code: int, reason: str) -> None:
    await ws.accept()
    await ws.close(code, close_reason(reason))


@router.websocket("/live", name="live")
async def live(websocket: WebSocket) -> None:
    """Alarm transitions, events and subscribed readings, live (see the module docstring)."""
    ctx: ApiContext = websocket.app.state.ctx
    cookie_only = "authorization" not in websocket.headers and SESSION_COOKIE in websocket.cookies
    if cookie_only and not same_origin(websocket.headers, websocket.url.scheme):
        log.warning(
            "live stream refused: session cookie from origin %r to host %r",
            websocket.headers.get("origin"),
            websocket.headers.get("host"),
        )
        await _refuse(websocket, FORBIDDEN_ORIGIN, "cross-origin request with a session cookie")
        return
    try:
        principal = await ctx.auth.authenticate(websocket, method="GET")
    except AuthError as e:
        await _refuse(websocket, UNAUTHENTICATED if e.status == 401 else FORBIDDEN_ORIGIN, str(e))
        return
    except EventStoreUnavailable:
        await _refuse(websocket, TRY_AGAIN_LATER, "the event store is down; try again later")
        return
    await websocket.accept()
    await LiveSession(websocket, ctx, principal, _renderer(websocket, ctx)).run()
