"""The alarm rules access control brings with it: forced and held doors,
tailgating, blacklisted cards, repeated denials, reader tamper.

They are ordinary event rules (origin ``access``, category security), merged
into the site's rules after the built-in offline rule and before the
drivers' defaults and the site's own ``rules:`` (see
:func:`gateway.config.effective.effective_rules`), so a site rule with the
same id replaces one: ``{id: access-denied-repeated, type: event, event:
access.denied, count: 5}`` makes the site more tolerant.

Each rule carries a plain English ``description`` (what the alarm engine
and the notifications show when nothing else is there); the page shows the
translated text of :func:`rule_text_key` from the i18n catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.access.config import AccessConfig
from gateway.model import Category, Priority
from gateway.rules.config import EventRuleConfig

__all__ = ["ACCESS_RULES", "ORIGIN", "AccessRule", "default_rules", "rule_text_key"]

ORIGIN = "access"

# A door alarm that clears on door.closed stays until then; this is only the
# backstop for a door.closed that never comes (a contact wire cut while open).
_UNTIL_CLOSED_S = 86_400.0


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One row of the default rule table."""

    id: str
    event: str
    priority: Priority
    description: str
    count: int = 1
    window_s: float = 60.0
    clear_on: tuple[str, ...] = ()
    clear_after_s: float | None = None


ACCESS_RULES: tuple[AccessRule, ...] = (
    AccessRule(
        "access-denied-repeated",
        "access.denied",
        Priority.MEDIUM,
        "Repeated denied card reads at one door (3 within 60 s)",
        count=3,
        window_s=60.0,
    ),
    AccessRule(
        "access-blacklisted",
        "access.blacklisted",
        Priority.HIGH,
        "A blacklisted card or plate was presented",
    ),
    AccessRule(
        "access-out-of-schedule",
        "access.out_of_schedule",
        Priority.LOW,
        "A credential was used outside its group's hours",
    ),
    AccessRule(
        "access-restricted",
        "access.restricted",
        Priority.HIGH,
        "Entry to a restricted room refused (not certified or out of hours)",
    ),
    AccessRule(
        "access-antipassback",
        "access.antipassback",
        Priority.LOW,
        "Anti-passback violation (a second entry, or an exit without an entry)",
    ),
    AccessRule(
        "access-no-entry",
        "access.no_entry",
        Priority.MEDIUM,
        "A vehicle left without a recorded entry",
    ),
    AccessRule(
        "access-door-forced",
        "door.forced",
        Priority.HIGH,
        "Door forced open (opened without a grant or an exit request)",
        clear_on=("door.closed",),
        clear_after_s=_UNTIL_CLOSED_S,
    ),
    AccessRule(
        "access-door-held-prealarm",
        "door.held_prealarm",
        Priority.LOW,
        "Door held open: close it before the alarm",
        clear_on=("door.closed", "door.held_open"),
        clear_after_s=_UNTIL_CLOSED_S,
    ),
    AccessRule(
        "access-door-held",
        "door.held_open",
        Priority.MEDIUM,
        "Door held open too long",
        clear_on=("door.closed",),
        clear_after_s=_UNTIL_CLOSED_S,
    ),
    AccessRule(
        "access-tailgate",
        "access.tailgate",
        Priority.MEDIUM,
        "Tailgating: more people or vehicles passed than were granted",
        clear_after_s=120.0,
    ),
    AccessRule(
        "access-reader-tamper",
        "reader.tamper",
        Priority.HIGH,
        "Card reader tamper switch opened",
        clear_on=("reader.tamper_cleared",),
        clear_after_s=_UNTIL_CLOSED_S,
    ),
    AccessRule(
        "access-reader-power",
        "reader.power_fail",
        Priority.MEDIUM,
        "Card reader power failure",
        clear_on=("reader.power_ok",),
        clear_after_s=_UNTIL_CLOSED_S,
    ),
    AccessRule(
        "access-read-errors",
        "card.read_error",
        Priority.LOW,
        "Repeated card read errors at one reader (5 within 60 s)",
        count=5,
        window_s=60.0,
    ),
)
"""The default rules, in the order they are merged."""


def rule_text_key(rule_id: str) -> str:
    """The i18n key of a default rule's description: ``access.rule.<id>``."""
    return f"access.rule.{rule_id}"


def _build(rule: AccessRule) -> EventRuleConfig:
    spec: dict[str, object] = {
        "id": rule.id,
        "type": "event",
        "event": rule.event,
        "priority": rule.priority,
        "category": Category.SECURITY,
        "description": rule.description,
        "count": rule.count,
        "window_s": rule.window_s,
        "group_by": "source",
        "clear_on": list(rule.clear_on),
    }
    if rule.clear_after_s is not None:
        spec["clear_after_s"] = rule.clear_after_s
    return EventRuleConfig.model_validate(spec).with_origin(ORIGIN)


def default_rules(cfg: AccessConfig) -> list[EventRuleConfig]:
    """The access rules of a site: none when access control is off or has no doors."""
    if not cfg.enabled or not cfg.doors:
        return []
    return [_build(rule) for rule in ACCESS_RULES]
