"""Declarative alarm rules: validated at load, compiled once, evaluated by a pure engine.

The site file's ``rules:`` is a ``list[RuleConfig]`` (a union on ``type``:
limit, rate, stale, state, event, offline, combo) and ``calendar:`` a
:class:`CalendarConfig`. :class:`RuleEngine` turns readings, events and time
into :class:`ConditionChange` values; :class:`RuleService` runs it on the bus.
"""

from __future__ import annotations

from gateway.rules.combo_config import ComboRuleConfig
from gateway.rules.condition import ConditionChange, RuleInfo, alarm_id
from gateway.rules.config import (
    EventRuleConfig,
    LevelConfig,
    LimitRuleConfig,
    OfflineRuleConfig,
    RateRuleConfig,
    RuleConfig,
    StaleRuleConfig,
    StateRuleConfig,
)
from gateway.rules.defaults import (
    DEFAULT_OFFLINE_RULE_ID,
    default_category,
    default_offline_rule,
    rule_from_spec,
)
from gateway.rules.engine import RuleEngine
from gateway.rules.errors import (
    DuplicateRuleError,
    RuleError,
    RuleReferenceError,
    UnknownPointError,
)
from gateway.rules.schedule import CalendarConfig, ScheduleConfig
from gateway.rules.service import RuleService
from gateway.rules.wiring import rule_problems

__all__ = [
    "DEFAULT_OFFLINE_RULE_ID",
    "CalendarConfig",
    "ComboRuleConfig",
    "ConditionChange",
    "DuplicateRuleError",
    "EventRuleConfig",
    "LevelConfig",
    "LimitRuleConfig",
    "OfflineRuleConfig",
    "RateRuleConfig",
    "RuleConfig",
    "RuleEngine",
    "RuleError",
    "RuleInfo",
    "RuleReferenceError",
    "RuleService",
    "ScheduleConfig",
    "StaleRuleConfig",
    "StateRuleConfig",
    "UnknownPointError",
    "alarm_id",
    "default_category",
    "default_offline_rule",
    "rule_from_spec",
    "rule_problems",
]
