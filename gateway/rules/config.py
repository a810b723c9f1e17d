"""The ``rules:`` of a site file: declarative, validated at load, never evaluated as code.

``RuleConfig`` is a union on ``type``: ``limit`` (the default, so older site
files without ``type:`` still load), ``rate``, ``stale``, ``state``,
``event``, ``offline`` and ``combo`` (:mod:`gateway.rules.combo_config`).
Every rule names a priority, a category and a route; the category defaults
from the kind of the watched device (:func:`gateway.rules.defaults.default_category`).
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from gateway.driver import StrictModel
from gateway.model import Priority
from gateway.rules.base import ConditionValue, RuleBase, check_point_pattern, check_type_pattern
from gateway.rules.combo_config import ComboRuleConfig

__all__ = [
    "EventRuleConfig",
    "LevelConfig",
    "LimitRuleConfig",
    "OfflineRuleConfig",
    "RateRuleConfig",
    "RuleConfig",
    "StaleRuleConfig",
    "StateRuleConfig",
]


class _PointRule(RuleBase):
    point: str | None = Field(
        None, description="The point watched, '<device>.<point>' (globs allowed)."
    )
    points: list[str] | None = Field(
        None,
        description="Several points, as glob patterns such as 'pump*.outlet_pressure'; "
        "each is expanded against the site's points at start.",
    )

    @field_validator("point")
    @classmethod
    def _point_pattern(cls, v: str | None) -> str | None:
        return None if v is None else check_point_pattern(v)

    @field_validator("points")
    @classmethod
    def _points_patterns(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("'points' is empty: list at least one point pattern")
        return [check_point_pattern(p) for p in v]

    @model_validator(mode="after")
    def _one_of_point_points(self) -> Self:
        if (self.point is None) == (self.points is None):
            raise ValueError(f"rule {self.id!r}: give either 'point' or 'points' (not both)")
        return self

    def point_patterns(self) -> list[str]:
        return [self.point] if self.point is not None else list(self.points or ())


class LevelConfig(StrictModel):
    """One limit level with a priority of its own."""

    value: float = Field(description="The limit.")
    priority: Priority | None = Field(
        None,
        description="Priority while at this level; default: the rule's for H and L, "
        "one step higher for HH and LL.",
    )


def _level(v: Any) -> Any:
    """A bare number is ``{value: n}``; anything else but a mapping is refused
    with one clear message (not one per union branch)."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return {"value": v}
    if isinstance(v, dict | LevelConfig):
        return v
    shown = f"the text {v!r}" if isinstance(v, str) else type(v).__name__
    raise ValueError(f"expected a number or {{value, priority}}, got {shown}")


Level = Annotated[LevelConfig, BeforeValidator(_level, json_schema_input_type=float | LevelConfig)]
_LEVEL_DOC = " A number, or {value, priority}."
_RAISE = {
    Priority.LOW: Priority.MEDIUM,
    Priority.MEDIUM: Priority.HIGH,
    Priority.HIGH: Priority.CRITICAL,
    Priority.CRITICAL: Priority.CRITICAL,
}


class LimitRuleConfig(_PointRule):
    """HH/H/L/LL limits with deadband, on-delay and off-delay. One alarm per point;
    the level is a sub-condition (H -> HH is a level change, not a new alarm)."""

    type: Literal["limit"] = Field("limit", description="Rule kind.")
    hh: Level | None = Field(None, description="High-high: alarm at or above." + _LEVEL_DOC)
    h: Level | None = Field(None, description="High: alarm at or above." + _LEVEL_DOC)
    l: Level | None = Field(None, description="Low: alarm at or below." + _LEVEL_DOC)  # noqa: E741
    ll: Level | None = Field(None, description="Low-low: alarm at or below." + _LEVEL_DOC)
    high: Level | None = Field(None, description="Same as 'h' (older site files).")
    low: Level | None = Field(None, description="Same as 'l' (older site files).")
    deadband: float = Field(
        0.0,
        ge=0,
        description="Hysteresis: a high level clears only below limit - deadband "
        "(a low level above limit + deadband).",
    )
    on_delay_s: float = Field(
        0.0, ge=0, description="The value must stay past the limit this long to alarm."
    )
    off_delay_s: float = Field(
        0.0, ge=0, description="The value must stay back to normal this long to clear."
    )

    @model_validator(mode="after")
    def _levels_in_order(self) -> Self:
        if self.high is not None and self.h is not None:
            raise ValueError(f"rule {self.id!r}: 'high' and 'h' are the same level; give one")
        if self.low is not None and self.l is not None:
            raise ValueError(f"rule {self.id!r}: 'low' and 'l' are the same level; give one")
        levels = self.levels()
        if not levels:
            raise ValueError(f"rule {self.id!r} has no level: set hh, h, l or ll")
        order = [(name, levels[name][0]) for name in ("LL", "L", "H", "HH") if name in levels]
        for (lo_name, lo), (hi_name, hi) in itertools.pairwise(order):
            if hi <= lo:
                raise ValueError(
                    f"rule {self.id!r}: {hi_name} ({hi:g}) must be above {lo_name} ({lo:g}); "
                    "levels rise LL < L < H < HH"
                )
        return self

    def levels(self) -> dict[str, tuple[float, Priority]]:
        """``{'HH': (value, priority), 'H': ..., 'L': ..., 'LL': ...}`` for the levels set."""
        out: dict[str, tuple[float, Priority]] = {}
        given = {
            "HH": self.hh,
            "H": self.h if self.h is not None else self.high,
            "L": self.l if self.l is not None else self.low,
            "LL": self.ll,
        }
        for name, level in given.items():
            if level is None:
                continue
            default = _RAISE[self.priority] if len(name) == 2 else self.priority
            if isinstance(level, LevelConfig):
                out[name] = (level.value, level.priority or default)
            else:
                out[name] = (float(level), default)
        return out


class RateRuleConfig(_PointRule):
    """Rate of change: the change of the value over the last ``window_s``, per minute."""

    type: Literal["rate"] = Field(description="Rule kind.")
    rise_per_min: float | None = Field(
        None, gt=0, description="Alarm when the value rises at least this much per minute."
    )
    fall_per_min: float | None = Field(
        None, gt=0, description="Alarm when the value falls at least this much per minute."
    )
    window_s: float = Field(60.0, gt=0, description="Window the rate is measured over (s).")
    on_delay_s: float = Field(0.0, ge=0, description="The rate must hold this long to alarm.")
    off_delay_s: float = Field(0.0, ge=0, description="Normal this long before it clears.")

    @model_validator(mode="after")
    def _some_rate(self) -> Self:
        if self.rise_per_min is None and self.fall_per_min is None:
            raise ValueError(f"rule {self.id!r}: set rise_per_min, fall_per_min or both")
        return self


class StaleRuleConfig(_PointRule):
    """Stale or missing data: no reading for ``max_age_s`` (also a point never seen
    since the gateway started). A reading of bad quality does not count as fresh."""

    type: Literal["stale"] = Field(description="Rule kind.")
    max_age_s: float = Field(gt=0, description="Alarm when no reading came for this long (s).")


class StateRuleConfig(_PointRule):
    """State or enumeration: a fault code, a breaker position."""

    type: Literal["state"] = Field(description="Rule kind.")
    equals: ConditionValue | None = Field(None, description="Alarm while the value is this.")
    not_equals: ConditionValue | None = Field(
        None, description="Alarm while the value is anything but this (fault code != 0)."
    )
    in_: list[ConditionValue] | None = Field(
        None, alias="in", description="Alarm while the value is one of these."
    )
    not_in: list[ConditionValue] | None = Field(
        None, description="Alarm while the value is none of these."
    )
    marks_device_down: bool = Field(
        False,
        description="This alarm means the device is down for its dependants "
        "(a feeder breaker tripped).",
    )
    on_delay_s: float = Field(0.0, ge=0, description="The state must hold this long to alarm.")
    off_delay_s: float = Field(0.0, ge=0, description="Normal this long before it clears.")

    @model_validator(mode="after")
    def _one_test(self) -> Self:
        given = [
            n
            for n, v in (
                ("equals", self.equals),
                ("not_equals", self.not_equals),
                ("in", self.in_),
                ("not_in", self.not_in),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"rule {self.id!r}: give exactly one of equals, not_equals, in, not_in"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class EventRuleConfig(RuleBase):
    """Counts matching events per group within a window: 3 ``access.denied`` at
    one reader in 60 s; 5 ``device.offline`` in a minute across the site."""

    type: Literal["event"] = Field(description="Rule kind.")
    event: str | list[str] = Field(
        description="Event type(s) counted; globs allowed ('access.denied', 'fire.*')."
    )
    where: dict[str, ConditionValue] = Field(
        default_factory=dict,
        description="Only events whose data has these values; the key 'source' is a "
        "glob on the event's source.",
    )
    count: int = Field(1, ge=1, description="Alarm at this many matching events ...")
    window_s: float = Field(60.0, gt=0, description="... within this many seconds.")
    group_by: str = Field(
        "source",
        description="'source' (one alarm per event source), 'data.<key>' (per value "
        "of that data key) or 'none' (one alarm for the site, source 'site').",
        pattern=r"^(source|none|data\.[A-Za-z0-9_.-]+)$",
    )
    clear_on: str | list[str] = Field(
        default_factory=list,
        description="Event type(s) that clear the alarm of the same group (globs allowed).",
    )
    clear_after_s: float | None = Field(
        None, gt=0, description="Clear after this long without a matching event; default: window_s."
    )

    @field_validator("event", "clear_on")
    @classmethod
    def _types(cls, v: str | list[str]) -> str | list[str]:
        for p in [v] if isinstance(v, str) else v:
            check_type_pattern(p)
        return v

    @field_validator("event")
    @classmethod
    def _some_event(cls, v: str | list[str]) -> str | list[str]:
        if not v:
            raise ValueError("'event' is empty: name an event type such as 'access.denied'")
        return v

    def event_types(self) -> list[str]:
        return [self.event] if isinstance(self.event, str) else list(self.event)

    def clear_types(self) -> list[str]:
        return [self.clear_on] if isinstance(self.clear_on, str) else list(self.clear_on)


class OfflineRuleConfig(RuleBase):
    """A device is offline: from its ``device.offline`` event until ``device.online``."""

    type: Literal["offline"] = Field(description="Rule kind.")
    devices: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Device ids watched (globs allowed); default: every device.",
    )
    delay_s: float = Field(
        0.0, ge=0, description="Alarm only when the device stays offline this long (s)."
    )

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("'devices' is empty: list device ids or globs, or omit it for all")
        for d in v:
            if not d or any(c.isspace() for c in d):
                raise ValueError(f"device pattern {d!r} must be a device id or a glob")
        return v


def _rule_kind(v: Any) -> str:
    if isinstance(v, dict):
        kind = v.get("type", "limit")
        return kind if isinstance(kind, str) else ""
    return str(getattr(v, "type", ""))


RuleConfig = Annotated[
    Annotated[LimitRuleConfig, Tag("limit")]
    | Annotated[RateRuleConfig, Tag("rate")]
    | Annotated[StaleRuleConfig, Tag("stale")]
    | Annotated[StateRuleConfig, Tag("state")]
    | Annotated[EventRuleConfig, Tag("event")]
    | Annotated[OfflineRuleConfig, Tag("offline")]
    | Annotated[ComboRuleConfig, Tag("combo")],
    Discriminator(_rule_kind),
]
"""One rule of the site file: a union on ``type`` (default ``limit``)."""
