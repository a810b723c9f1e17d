"""The gateway's FastAPI application, assembled from the routers of its services."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI

from gateway import __version__

__all__ = ["create_app"]


def create_app(site: str, routers: Iterable[APIRouter]) -> FastAPI:
    app = FastAPI(
        title=f"Estate gateway {site}",
        version=__version__,
        docs_url=None,  # the control-room API and its docs come with issue 5
        redoc_url=None,
    )
    for router in routers:
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "site": site}

    return app
