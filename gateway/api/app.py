"""The gateway's FastAPI application: the control-room API, its live stream,
the page, and the routers other services bring (the acknowledgement links)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from gateway import __version__
from gateway.api.context import ApiContext
from gateway.api.routes import routers
from gateway.storage.eventstore import EventStoreError

__all__ = ["API_PREFIX", "STATIC_DIR", "create_app"]

API_PREFIX = "/api/v1"
STATIC_DIR = Path(str(files("gateway.api").joinpath("static")))

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


def create_app(ctx: ApiContext, extra_routers: Iterable[APIRouter] = ()) -> FastAPI:
    site = ctx.site.config.site
    app = FastAPI(
        title=f"Estate gateway {site.id}",
        version=__version__,
        description=(
            "Control-room API of the estate gateway: alarms, devices and points, events, "
            "on-call rosters, health and EEMUA figures; a WebSocket live stream at "
            f"{API_PREFIX}/live. Authenticate with a session cookie (the page) or "
            "'Authorization: Bearer <token>' (machines)."
        ),
        # The OpenAPI document only: Swagger UI would load its code from a CDN,
        # which the page's CSP (and a site without internet) does not allow.
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.ctx = ctx
    for router in routers():
        app.include_router(router, prefix=API_PREFIX)
    for router in extra_routers:
        app.include_router(router)

    @app.exception_handler(EventStoreError)
    async def store_down(request: Request, exc: EventStoreError) -> JSONResponse:
        # One answer for every route (and the authentication before it) when the
        # event store fails: 503, so a client retries; the routes that change
        # state write their audit record ("error") before the error reaches here.
        return JSONResponse(
            {"detail": f"the event store is unavailable: {exc}"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for k, v in _SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if request.url.path.startswith(API_PREFIX):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "site": site.id}

    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(STATIC_DIR / "index.html")

    return app
