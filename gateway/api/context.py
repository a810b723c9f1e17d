"""What the API's routes work with: one object built by the runtime.

Routes get it through :func:`gateway.api.deps.get_ctx`; nothing in the API
reaches into the runtime by other paths.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gateway.api.audit import AuditLog
from gateway.api.auth.authenticator import Authenticator
from gateway.api.config import ApiConfig
from gateway.api.points import PointCatalog
from gateway.bus import Bus
from gateway.clock import Clock
from gateway.config.loader import LoadedSite
from gateway.health import Health
from gateway.model import Reading
from gateway.storage.embedded_query import HistoryRow
from gateway.storage.eventstore import EventStore
from gateway.storage.writer import WriterStats

if TYPE_CHECKING:
    from gateway.access.service import AccessService
    from gateway.alerting import Alerting
    from gateway.api.live.hub import LiveHub

__all__ = ["ApiContext", "HistorySource"]


class HistorySource(Protocol):
    """The embedded time-series store (the only one the gateway can query back)."""

    async def latest(self, points: Sequence[str]) -> dict[str, Reading]: ...

    async def history(
        self, point: str, start: int, end: int, max_points: int = 1000
    ) -> list[HistoryRow]: ...


@dataclass
class ApiContext:
    site: LoadedSite
    config: ApiConfig
    store: EventStore
    clock: Clock
    alerting: Alerting
    health: Health
    bus: Bus
    hub: LiveHub
    history: HistorySource | None
    writer_stats: Callable[[], WriterStats | None]
    auth: Authenticator
    audit: AuditLog
    started_ns: int
    # Access control (doors, credentials, passages); None when the site runs none.
    access: AccessService | None = None

    @functools.cached_property
    def points(self) -> PointCatalog:
        """Units and descriptions of the site's points (built once)."""
        return PointCatalog(self.site)
