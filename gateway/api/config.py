"""The ``api:`` block of the site file: where the gateway's HTTP server listens."""

from __future__ import annotations

from typing import Literal

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
    cookie_secure: Literal["auto", "always", "never"] = Field(
        "auto",
        description=(
            "Mark the session cookie Secure: 'auto' when the request came over HTTPS "
            "(directly or, from 127.0.0.1, with X-Forwarded-Proto: https), 'always', or 'never'."
        ),
    )
    session_idle_min: int = Field(
        720, ge=5, le=10_080, description="A session ends after this many minutes unused."
    )
    session_max_h: int = Field(
        24, ge=1, le=720, description="A session ends this many hours after login, in any case."
    )
    login_max_failures: int = Field(
        5,
        ge=1,
        le=1000,
        description="Failed logins allowed per username and per address within login_window_s.",
    )
    login_window_s: int = Field(
        300, ge=10, le=86_400, description="Window of the failed-login limit, in seconds."
    )
    live_buffer: int = Field(
        10_000,
        ge=100,
        le=1_000_000,
        description=(
            "Alarm transitions and events kept for live clients to resume from after a "
            "reconnect; a client further behind gets a fresh snapshot."
        ),
    )
    live_reading_interval_ms: int = Field(
        250, ge=20, le=10_000, description="How often live clients get their (coalesced) readings."
    )
