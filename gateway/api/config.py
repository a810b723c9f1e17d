"""The ``api:`` block of the site file: where the gateway's HTTP server listens."""

from __future__ import annotations

from pydantic import Field

from gateway.driver import StrictModel

__all__ = ["ApiConfig"]


class ApiConfig(StrictModel):
    enabled: bool = Field(True, description="Serve the HTTP API (acknowledgement links need it).")
    host: str = Field(
        "127.0.0.1",
        description="Address to listen on. Keep 127.0.0.1 behind a reverse proxy (TLS).",
    )
    port: int = Field(8080, ge=0, le=65535, description="TCP port; 0 picks a free one.")
