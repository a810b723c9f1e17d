"""Driver discovery through the ``gateway.drivers`` entry-point group.

A driver whose optional dependency is missing (``pip install
estate-gateway[camera]`` not done) is listed as unavailable with the reason,
and only a site that uses it fails, naming the extra to install.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from gateway.driver import Driver

__all__ = ["DriverRegistry", "load_registry"]

GROUP = "gateway.drivers"
log = logging.getLogger("gateway.registry")


@dataclass
class DriverRegistry:
    drivers: dict[str, type[Driver]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # type -> why

    def config_models(self) -> tuple[type, ...]:
        return tuple(d.config_model for _, d in sorted(self.drivers.items()))


def load_registry(group: str = GROUP) -> DriverRegistry:
    reg = DriverRegistry()
    for ep in entry_points(group=group):
        try:
            cls = ep.load()
        except ImportError as e:
            reg.unavailable[ep.name] = f"{e} (install the extra that provides it)"
            log.info("driver %r unavailable: %s", ep.name, e)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Driver)):
            reg.unavailable[ep.name] = f"{ep.value} is not a gateway.driver.Driver"
            continue
        reg.drivers[ep.name] = cls
    return reg
