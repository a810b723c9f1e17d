"""The site file's top-level models.

``drivers:`` is a discriminated union on ``type`` over every installed
driver's config model; :func:`site_model` builds that union from the
entry-point registry, so a third-party driver's block is validated exactly
like a built-in one.
"""

from __future__ import annotations

import enum
import functools
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, create_model, field_validator, model_validator

from gateway.access.config import AccessConfig
from gateway.alarms.config import AlarmsConfig
from gateway.api.config import ApiConfig
from gateway.config.storage import StorageConfig
from gateway.driver import DriverConfig, StrictModel
from gateway.notify.config import NotifyConfig
from gateway.notify.oncall_config import OnCallConfig
from gateway.rules import CalendarConfig, RuleConfig

__all__ = [
    "CURRENT_VERSION",
    "DeviceConfig",
    "DeviceKind",
    "PointConfig",
    "SiteConfig",
    "SiteInfo",
    "site_model",
]

CURRENT_VERSION = 1

_ID = r"^[A-Za-z0-9_-]+$"


class DeviceKind(enum.StrEnum):
    TRANSFORMER = "transformer"
    LV_CABINET = "lv_cabinet"
    POWER_METER = "power_meter"
    CAPACITOR_BANK = "capacitor_bank"
    PUMP = "pump"
    TANK = "tank"
    SENSOR = "sensor"
    CARD_READER = "card_reader"
    GATE = "gate"
    BARRIER = "barrier"
    DOOR = "door"
    CAMERA = "camera"
    FIRE_PANEL = "fire_panel"
    LIFT = "lift"
    HVAC = "hvac"
    OTHER = "other"


# IANA zones of mainland China, Hong Kong, Macau and Taiwan.
_CHINA_ZONES = frozenset(
    {
        "Asia/Shanghai",
        "Asia/Chongqing",
        "Asia/Chungking",
        "Asia/Harbin",
        "Asia/Urumqi",
        "Asia/Kashgar",
        "Asia/Hong_Kong",
        "Asia/Macau",
        "Asia/Taipei",
        "PRC",
        "ROC",
        "Hongkong",
    }
)


class SiteInfo(StrictModel):
    id: str = Field(
        description="Short id of the site, used in MQTT topics and time-series tags.",
        pattern=_ID,
    )
    name: str = Field("", description="Display name (any language).")
    timezone: str = Field(
        "Asia/Shanghai",
        description="IANA time zone used for every schedule, e.g. 'Asia/Shanghai'.",
    )
    locale: Literal["zh-CN", "en"] = Field(
        "zh-CN",
        description=(
            "Default language of messages, reports and the control-room page. "
            "When left out: zh-CN for a time zone in China, en elsewhere."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _locale_from_zone(cls, data: Any) -> Any:
        if isinstance(data, dict) and "locale" not in data:
            zone = data.get("timezone", "Asia/Shanghai")
            data = {**data, "locale": "zh-CN" if zone in _CHINA_ZONES else "en"}
        return data

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r}; use an IANA name such as 'Asia/Shanghai'"
            ) from None
        return v


class PointConfig(StrictModel):
    unit: str = Field("", description="Engineering unit, e.g. '°C', 'kW'.")
    description: str = Field("", description="What the point measures.")
    deadband: float | None = Field(
        None, ge=0, description="Ignore changes smaller than this (overrides the driver)."
    )
    heartbeat_s: float | None = Field(
        None, gt=0, description="Write an unchanged value at least this often (seconds)."
    )


class DeviceConfig(StrictModel):
    id: str = Field(description="Unique device id; points are named '<id>.<point>'.", pattern=_ID)
    kind: DeviceKind = Field(description="What the device is; becomes the measurement name.")
    name: str = Field("", description="Display name, e.g. '1# 变压器'.")
    location: str = Field("", description="Where it is, e.g. 'B1 power room'.")
    tags: dict[str, str] = Field(
        default_factory=dict, description="Extra time-series tags for this device's points."
    )
    points: dict[str, PointConfig] = Field(
        default_factory=dict, description="Per-point settings, by point name."
    )
    maintenance: bool = Field(
        False,
        description=(
            "In maintenance: its alarms are suppressed (by design) until this is removed "
            "or an operator ends the maintenance."
        ),
    )
    upstream: list[str] = Field(
        default_factory=list,
        description=(
            "Devices this one depends on (its feeder, switch or gateway link). While one of "
            "them is down, this device's offline, stale and low-value alarms are suppressed."
        ),
    )


class SiteConfig(StrictModel):
    version: Literal[1] = Field(description="Version of this file's format (current: 1).")
    site: SiteInfo = Field(description="Who and where this gateway is.")
    data_dir: str = Field(
        "var", description="Directory for the event store, outbox and embedded history."
    )
    include: list[str] = Field(
        default_factory=list,
        description="Other YAML files merged into this one (lists are appended).",
    )
    devices: list[DeviceConfig] = Field(
        default_factory=list, description="Every device of the site."
    )
    drivers: list[DriverConfig] = Field(
        default_factory=list, description="Protocol drivers, each with a 'type'."
    )
    storage: StorageConfig = Field(
        default_factory=StorageConfig, description="Event store and time-series path."
    )
    rules: list[RuleConfig] = Field(
        default_factory=list,
        description=(
            "Alarm rules (limit, rate, stale, state, event, offline, combo). A rule with the "
            "id of a driver's default limit ('<device>-<limit>') replaces it; 'device-offline' "
            "replaces the built-in offline rule."
        ),
    )
    calendar: CalendarConfig = Field(
        default_factory=CalendarConfig,
        description="Holidays and make-up working days, for rules scheduled on workdays.",
    )
    alarms: AlarmsConfig = Field(
        default_factory=AlarmsConfig,
        description="Alarm handling: control rooms, flood and chattering detection, shelving.",
    )
    oncall: OnCallConfig = Field(
        default_factory=OnCallConfig,
        description="People, teams, duty rosters and escalation policies.",
    )
    notify: NotifyConfig = Field(
        default_factory=NotifyConfig,
        description="Notification channels (WeCom, DingTalk, Feishu, e-mail, SMS, webhook ...).",
    )
    api: ApiConfig = Field(
        default_factory=ApiConfig,
        description="The gateway's HTTP server (acknowledgement links, API).",
    )
    access: AccessConfig = Field(
        default_factory=AccessConfig,
        description="Access control: areas, doors, time profiles, credential groups.",
    )

    def device_map(self) -> dict[str, DeviceConfig]:
        return {d.id: d for d in self.devices}


@functools.cache
def site_model(driver_models: tuple[type[DriverConfig], ...]) -> type[SiteConfig]:
    """``SiteConfig`` whose ``drivers`` accepts exactly the given driver models."""
    if not driver_models:
        return SiteConfig
    union: Any
    if len(driver_models) == 1:
        union = driver_models[0]
    else:
        union = Annotated[
            functools.reduce(lambda a, b: a | b, driver_models),  # type: ignore[arg-type,return-value]
            Field(discriminator="type"),
        ]
    return create_model(
        "SiteConfig",
        __base__=SiteConfig,
        drivers=(
            list[union],
            Field(default_factory=list, description="Protocol drivers, each with a 'type'."),
        ),
    )
