"""Defaults that make short rules complete: the category from the device kind,
profile limits as rules, the built-in ``device-offline`` rule, and the
:class:`~gateway.rules.condition.RuleInfo` the alarm manager gets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from pydantic import ValidationError

from gateway.driver import RuleSpec
from gateway.model import Category, Priority
from gateway.rules.combo_config import ComboRuleConfig
from gateway.rules.condition import RuleInfo
from gateway.rules.config import (
    EventRuleConfig,
    LimitRuleConfig,
    OfflineRuleConfig,
    RuleConfig,
    StaleRuleConfig,
    StateRuleConfig,
)
from gateway.rules.errors import RuleError

__all__ = [
    "DEFAULT_OFFLINE_RULE_ID",
    "category_for_events",
    "default_category",
    "default_offline_rule",
    "rule_from_spec",
    "rule_info",
]

DEFAULT_OFFLINE_RULE_ID = "device-offline"

_BY_KIND = {
    "transformer": Category.ELECTRICAL,
    "lv_cabinet": Category.ELECTRICAL,
    "power_meter": Category.ELECTRICAL,
    "capacitor_bank": Category.ELECTRICAL,
    "pump": Category.WATER,
    "tank": Category.WATER,
    "lift": Category.LIFT,
    "hvac": Category.HVAC,
    "fire_panel": Category.FIRE,
    "card_reader": Category.SECURITY,
    "gate": Category.SECURITY,
    "barrier": Category.SECURITY,
    "door": Category.SECURITY,
    "camera": Category.SECURITY,
    "sensor": Category.HVAC,
}

# Event-rule category when no device tells: the first part of the event type.
_BY_EVENT_DOMAIN = {
    "access": Category.SECURITY,
    "door": Category.SECURITY,
    "gate": Category.SECURITY,
    "barrier": Category.SECURITY,
    "camera": Category.SECURITY,
    "intrusion": Category.SECURITY,
    "patrol": Category.SECURITY,
    "fire": Category.FIRE,
    "lift": Category.LIFT,
    "power": Category.ELECTRICAL,
    "water": Category.WATER,
    "hvac": Category.HVAC,
}


def default_category(kind: str | None) -> Category:
    """The category of a device kind: pump -> water, card_reader -> security;
    'other' or no device -> it."""
    return _BY_KIND.get(kind or "", Category.IT)


def category_for_events(patterns: list[str]) -> Category:
    """The category of an event rule from its event types (``access.denied`` -> security)."""
    found = {_BY_EVENT_DOMAIN.get(p.partition(".")[0], Category.IT) for p in patterns}
    return found.pop() if len(found) == 1 else Category.IT


def rule_from_spec(spec: RuleSpec) -> LimitRuleConfig:
    """A driver's default limit (a Modbus profile's "winding over 130 °C") as a limit rule."""
    try:
        rule = LimitRuleConfig.model_validate(
            {
                "id": spec.id,
                "point": spec.point,
                "high": spec.high,
                "low": spec.low,
                "priority": spec.priority,
                "description": spec.description,
            }
        )
    except ValidationError as e:
        reasons = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in e.errors())
        where = spec.origin or "a driver"
        raise RuleError(spec.id, f"default limit from {where}: {reasons}") from e
    return rule.with_origin(spec.origin or "driver")


def default_offline_rule() -> OfflineRuleConfig:
    """The built-in rule: any device offline is a medium alarm (a site rule with
    the id ``device-offline`` replaces it)."""
    rule = OfflineRuleConfig.model_validate(
        {"id": DEFAULT_OFFLINE_RULE_ID, "type": "offline", "priority": Priority.MEDIUM}
    )
    return rule.with_origin("default")


def rule_info(
    rule: RuleConfig, device_kinds: Mapping[str, str], devices: Sequence[str]
) -> RuleInfo:
    """What the alarm manager needs to know about ``rule``; ``devices``: the devices of
    the points it watches (after expansion), first one decides the default category."""
    category = rule.category or _implied_category(rule, device_kinds, devices)
    inhibit = isinstance(rule, StaleRuleConfig | OfflineRuleConfig)
    marks_down = isinstance(rule, OfflineRuleConfig) or (
        isinstance(rule, StateRuleConfig) and rule.marks_device_down
    )
    return RuleInfo(
        id=rule.id,
        kind=rule.type,
        priority=rule.priority,
        category=category,
        route=rule.route or category.value,
        description=rule.description,
        latching=rule.priority is Priority.CRITICAL if rule.latching is None else rule.latching,
        control_room=rule.control_room,
        inhibit_on_upstream_down=inhibit,
        marks_device_down=marks_down,
        origin=rule.origin,
    )


def _implied_category(
    rule: RuleConfig, kinds: Mapping[str, str], devices: Sequence[str]
) -> Category:
    if devices:
        return default_category(kinds.get(devices[0]))
    if isinstance(rule, EventRuleConfig):
        where_source = rule.where.get("source")
        if isinstance(where_source, str):
            matching = [d for d in kinds if fnmatchcase(d, where_source)]
            if matching:
                return default_category(kinds[matching[0]])
        return category_for_events(rule.event_types())
    if isinstance(rule, ComboRuleConfig) and rule.source is not None and rule.source in kinds:
        return default_category(kinds[rule.source])
    if isinstance(rule, OfflineRuleConfig):
        exact = [d for d in rule.devices if d in kinds]
        if len(exact) == len(rule.devices) and len({kinds[d] for d in exact}) == 1:
            return default_category(kinds[exact[0]])
    return Category.IT
