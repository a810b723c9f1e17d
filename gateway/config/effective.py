"""The rule list a site really runs: built-in and driver defaults merged with
the site's own ``rules:``."""

from __future__ import annotations

from gateway.access.rules import default_rules
from gateway.config.site import SiteConfig
from gateway.rules import (
    DEFAULT_OFFLINE_RULE_ID,
    RuleConfig,
    default_offline_rule,
    rule_from_spec,
)

__all__ = ["effective_rules"]


def effective_rules(config: SiteConfig) -> list[RuleConfig]:
    """The rules the alarm engine evaluates: the built-in offline rule, the
    access-control defaults (forced door, tailgating ...: when ``access:`` has
    doors), every enabled driver's defaults (a Modbus profile's "winding over
    130 °C"), then the site's ``rules:``; a site rule with the id of a default
    replaces it.

    Raises :class:`RuleError` when a driver's default cannot be a rule.
    """
    merged: dict[str, RuleConfig] = {DEFAULT_OFFLINE_RULE_ID: default_offline_rule()}
    for access_rule in default_rules(config.access):
        merged[access_rule.id] = access_rule
    for driver in config.drivers:
        if driver.enabled:
            for spec in driver.rules():
                merged[spec.id] = rule_from_spec(spec)
    for rule in config.rules:
        merged[rule.id] = rule
    return list(merged.values())
