"""The driver contract.

A driver is a class with a pydantic config model and ``async def run(ctx)``.
It is registered under the entry-point group ``gateway.drivers`` (name = the
config's ``type``), so a third party adds one without touching the core::

    [project.entry-points."gateway.drivers"]
    mqtt = "drivers.mqtt.driver:MqttIngestDriver"

The constructor does no I/O. ``run`` returns only when the driver is told to
stop (cancellation); any exception it raises is a crash, and the supervisor
restarts it with backoff.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from gateway.clock import Clock
from gateway.model import Command, Event, Priority, Reading

if TYPE_CHECKING:
    from gateway.bus import Subscription
    from gateway.health import Health
    from gateway.storage.outbox import Outbox

__all__ = ["Driver", "DriverConfig", "DriverContext", "PointSpec", "RuleSpec", "StrictModel"]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class PointSpec:
    """A point a driver produces, as the rest of the gateway sees it.

    ``device`` or ``name`` may contain ``*`` when the driver learns them at
    run time (an MQTT subscription with a ``+`` wildcard).
    """

    device: str
    name: str
    unit: str = ""
    deadband: float = 0.0  # report by exception: ignore changes smaller than this
    heartbeat: float | None = None  # ... but report at least every N seconds
    description: str = ""

    @property
    def point(self) -> str:
        return f"{self.device}.{self.name}"


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A default alarm limit a driver ships with its devices (a Modbus profile's
    "winding over 130 °C"). The site's own ``rules:`` entry with the same id
    replaces it; the alarm engine evaluates the merged list."""

    id: str  # '<device>-<limit name>' for a device's defaults
    point: str  # '<device>.<point>'
    high: float | None = None
    low: float | None = None
    priority: Priority = Priority.MEDIUM
    description: str = ""
    origin: str = ""  # where the default comes from, e.g. 'profile dry_type_tc'


class DriverConfig(StrictModel):
    """Fields every driver instance has. Subclasses add ``type: Literal[...]``."""

    type: str
    id: str = Field(
        description="Unique name of this driver instance (letters, digits, '_' and '-').",
        pattern=r"^[A-Za-z0-9_-]+$",
    )
    enabled: bool = Field(True, description="Set to false to keep the block but not run it.")

    def devices(self) -> Iterable[str]:
        """Ids of the devices this driver reads and commands (checked against ``devices:``)."""
        return ()

    def points(self) -> Iterable[PointSpec]:
        """The points this driver produces (rules are checked against them)."""
        return ()

    def rules(self) -> Iterable[RuleSpec]:
        """Default alarm limits that come with this driver's devices."""
        return ()


class DriverContext(Protocol):
    """What the runtime gives a running driver."""

    site: str
    timezone: str  # the site's IANA zone, for schedules and daily figures
    clock: Clock
    log: logging.Logger
    health: Health
    data_dir: Path

    async def emit(self, msg: Reading | Event) -> None:
        """Publish a reading or an event (waits when a consumer is full)."""

    def commands(self) -> AsyncIterator[Command]:
        """Commands addressed to this driver's devices."""

    async def request(self, cmd: Command) -> None:
        """Put a command on the bus for a service or another driver (an alarm
        acknowledgement received by the MQTT uplink)."""

    def subscribe(
        self, name: str, kinds: Iterable[type], *, coalesce_readings: bool = False
    ) -> Subscription:
        """A bus subscription, for output drivers (the MQTT uplink)."""

    def outbox(self, name: str) -> Outbox:
        """A durable queue in the site's data directory, private to this driver."""

    def device_kind(self, device: str) -> str:
        """The ``kind`` of a device declared in ``devices:`` ("" if unknown)."""


class Driver(ABC):
    config_model: ClassVar[type[DriverConfig]]
    """The pydantic model of this driver's block in the site file."""

    def __init__(self, config: Any) -> None:
        self.config = config

    @abstractmethod
    async def run(self, ctx: DriverContext) -> None: ...
