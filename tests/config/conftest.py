"""A driver registry of its own, so config tests do not depend on the real drivers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import pytest
from pydantic import Field, SecretStr

from gateway.driver import Driver, DriverConfig, DriverContext, PointSpec, StrictModel
from gateway.registry import DriverRegistry


class TestDevConfig(DriverConfig):
    """Reads every listed point of every listed device."""

    type: Literal["testdev"] = Field(description="A test input driver.")
    # (named so as not to shadow DriverConfig.devices() / .points())
    device_ids: list[str] = Field(default_factory=list, description="Device ids it reads.")
    point_names: list[str] = Field(
        default_factory=list, description="Point names, produced for every device."
    )
    port: int = Field(502, ge=1, le=65535, description="TCP port of the test device.")

    def devices(self) -> Iterable[str]:
        return self.device_ids

    def points(self) -> Iterable[PointSpec]:
        return [
            PointSpec(device=d, name=p, unit="u") for d in self.device_ids for p in self.point_names
        ]


class TestBroker(StrictModel):
    host: str = Field(description="Broker host name.")
    port: int = Field(1883, description="Broker port.")


class TestOutConfig(DriverConfig):
    """Sends everything to a (pretend) broker."""

    type: Literal["testout"] = Field(description="A test output driver.")
    broker: TestBroker = Field(description="Where to connect.")
    password: SecretStr | None = Field(None, description="Broker password.")


class TestDevDriver(Driver):
    config_model = TestDevConfig

    async def run(self, ctx: DriverContext) -> None:
        raise NotImplementedError("test registry only")


class TestOutDriver(Driver):
    config_model = TestOutConfig

    async def run(self, ctx: DriverContext) -> None:
        raise NotImplementedError("test registry only")


def make_registry() -> DriverRegistry:
    return DriverRegistry(
        drivers={"testdev": TestDevDriver, "testout": TestOutDriver},
        unavailable={"camera": "No module named 'cv2' (install the extra that provides it)"},
    )


@pytest.fixture
def registry() -> DriverRegistry:
    return make_registry()
