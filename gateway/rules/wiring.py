"""Turning one validated rule config into its evaluator: expanding its point
patterns, finding its category, checking what combo rules refer to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.rules.combo import ComboEvaluator, point_terms
from gateway.rules.combo_config import ComboRuleConfig
from gateway.rules.condition import RuleInfo
from gateway.rules.config import (
    EventRuleConfig,
    LimitRuleConfig,
    OfflineRuleConfig,
    RateRuleConfig,
    RuleConfig,
    StaleRuleConfig,
    StateRuleConfig,
)
from gateway.rules.defaults import rule_info
from gateway.rules.errors import DuplicateRuleError, RuleError, RuleReferenceError
from gateway.rules.evaluator import Evaluator, device_of
from gateway.rules.events import EventEvaluator, OfflineEvaluator
from gateway.rules.limit import LimitEvaluator
from gateway.rules.points import PointIndex, is_glob
from gateway.rules.stale import StaleEvaluator
from gateway.rules.timers import Timers
from gateway.rules.values import RateEvaluator, StateEvaluator

__all__ = ["build_evaluator", "check_combo_graph", "rule_problems", "static_devices"]


def build_evaluator(
    cfg: RuleConfig,
    index: PointIndex,
    device_kinds: Mapping[str, str],
    units: Mapping[str, str],
    timers: Timers,
) -> Evaluator:
    """The evaluator of an enabled rule; raises ``UnknownPointError`` for a point
    pattern that matches nothing."""
    if isinstance(cfg, ComboRuleConfig):
        points = []
        for term in point_terms(cfg.root()):
            found, _ = index.expand(cfg.id, term.point, field="point")
            points.extend(found)
        source = cfg.source or _combo_source(points)
        info = rule_info(cfg, device_kinds, [source] if source in device_kinds else [])
        return ComboEvaluator(cfg, info, timers, source)
    points, dynamic = _expand(cfg, index)
    devices = list(dict.fromkeys(device_of(p) for p in points)) or static_devices(cfg)
    info = rule_info(cfg, device_kinds, devices)
    ev: Evaluator
    if isinstance(cfg, LimitRuleConfig):
        ev = LimitEvaluator(cfg, info, timers, units)
    elif isinstance(cfg, RateRuleConfig):
        ev = RateEvaluator(cfg, info, timers, units)
    elif isinstance(cfg, StateRuleConfig):
        ev = StateEvaluator(cfg, info, timers, units)
    elif isinstance(cfg, StaleRuleConfig):
        ev = StaleEvaluator(cfg, info, timers)
    elif isinstance(cfg, EventRuleConfig):
        ev = EventEvaluator(cfg, info, timers)
    else:
        ev = OfflineEvaluator(cfg, info, timers)
    ev.points = points
    ev.dynamic = dynamic
    return ev


def _expand(cfg: RuleConfig, index: PointIndex) -> tuple[list[str], list[str]]:
    field = "points" if getattr(cfg, "points", None) is not None else "point"
    points: dict[str, None] = {}
    dynamic: list[str] = []
    for pattern in cfg.point_patterns():
        found, may_grow = index.expand(cfg.id, pattern, field=field)
        points.update(dict.fromkeys(found))
        if may_grow:
            dynamic.append(pattern)
    return list(points), dynamic


def _combo_source(points: Sequence[str]) -> str:
    devices = {device_of(p) for p in points}
    return devices.pop() if len(devices) == 1 else "site"


def static_devices(cfg: RuleConfig) -> list[str]:
    """Devices a rule names outright (for the category of a rule that is not expanded)."""
    if isinstance(cfg, ComboRuleConfig):
        return [cfg.source] if cfg.source else []
    if isinstance(cfg, OfflineRuleConfig):
        return []
    return [d for d in (device_of(p) for p in cfg.point_patterns()) if not is_glob(d)]


def check_combo_graph(combos: Sequence[ComboEvaluator], infos: Mapping[str, RuleInfo]) -> None:
    """Every rule a combo names exists, and no combo depends on itself."""
    by_id = {c.rule: c for c in combos}
    for combo in combos:
        for ref in combo.refs:
            if ref not in infos:
                raise RuleReferenceError(
                    combo.rule,
                    f"refers to rule {ref!r}, which does not exist",
                    field="rule",
                    pattern=ref,
                )
    done: set[str] = set()

    def visit(rid: str, path: list[str]) -> None:
        if rid in path:
            loop = " -> ".join([*path[path.index(rid) :], rid])
            raise RuleReferenceError(path[0], f"combo rules refer to each other in a loop: {loop}")
        if rid in done or rid not in by_id:
            return
        for ref in by_id[rid].refs:
            visit(ref, [*path, rid])
        done.add(rid)

    for combo in combos:
        visit(combo.rule, [])


def rule_problems(
    rules: Sequence[RuleConfig],
    *,
    known_points: Sequence[str],
    device_kinds: Mapping[str, str],
) -> list[RuleError]:
    """Every problem the engine would raise for ``rules``, all at once (for a
    configuration check that lists them with their file and line)."""
    index = PointIndex(known_points)
    problems: list[RuleError] = []
    infos: dict[str, RuleInfo] = {}
    combos: list[ComboEvaluator] = []
    for cfg in rules:
        if cfg.id in infos:
            problems.append(DuplicateRuleError(cfg.id, "another rule has this id"))
            continue
        infos[cfg.id] = rule_info(cfg, device_kinds, static_devices(cfg))
        if not cfg.enabled:
            continue
        try:
            ev = build_evaluator(cfg, index, device_kinds, {}, Timers())
        except RuleError as e:
            problems.append(e)
            continue
        if isinstance(ev, ComboEvaluator):
            combos.append(ev)
    try:
        check_combo_graph(combos, infos)
    except RuleError as e:
        problems.append(e)
    return problems
