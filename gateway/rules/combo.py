"""Combo rules: a boolean tree over point comparisons and other rules' conditions.

The tree is compiled once into closures. A point term is *unknown* until its
point has a good reading; ``all``/``any``/``not`` propagate unknown (three-valued
logic), and an unknown result changes nothing. A rule term asks the other
rule's evaluator whether its condition (on a given source, or on any) is active
and announced (a rule outside its schedule counts as inactive).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from gateway.model import Quality, Reading, Value
from gateway.rules.combo_config import (
    AllTerm,
    AnyTerm,
    ComboRuleConfig,
    ComboTerm,
    NotTerm,
    PointTerm,
    RuleTerm,
)
from gateway.rules.condition import ConditionChange, RuleInfo
from gateway.rules.evaluator import IDLE, Debounced, Evaluator, Track
from gateway.rules.timers import Timers

__all__ = ["ComboEvaluator", "point_terms", "rule_terms"]

Test = Callable[[], bool | None]
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "eq": operator.eq,
    "ne": operator.ne,
}
_ORDERING = frozenset({"gt", "ge", "lt", "le"})
_ON = "ON"


def point_terms(node: ComboTerm) -> list[PointTerm]:
    return [t for t in _walk(node) if isinstance(t, PointTerm)]


def rule_terms(node: ComboTerm) -> list[RuleTerm]:
    return [t for t in _walk(node) if isinstance(t, RuleTerm)]


def _walk(node: ComboTerm) -> list[ComboTerm]:
    if isinstance(node, AllTerm):
        return [node, *(x for t in node.all for x in _walk(t))]
    if isinstance(node, AnyTerm):
        return [node, *(x for t in node.any for x in _walk(t))]
    if isinstance(node, NotTerm):
        return [node, *_walk(node.not_)]
    return [node]


class ComboEvaluator(Debounced):
    def __init__(self, cfg: ComboRuleConfig, info: RuleInfo, timers: Timers, source: str) -> None:
        super().__init__(info, timers, cfg.on_delay_s, cfg.off_delay_s)
        self.source = source
        self.device = "" if source == "site" else source
        self.root = cfg.root()
        self.values: dict[str, Value] = {}
        self.points = sorted({t.point for t in point_terms(self.root)})
        self.refs = sorted({t.rule for t in rule_terms(self.root)})
        self.test: Test = lambda: None

    def bind(self, rules: Mapping[str, Evaluator | None]) -> None:
        """Resolve rule terms (None: a disabled rule, never active) and compile the tree."""
        self.test = self._compile(self.root, rules)

    def _compile(self, node: ComboTerm, rules: Mapping[str, Evaluator | None]) -> Test:
        if isinstance(node, AllTerm | AnyTerm):
            parts = [self._compile(t, rules) for t in (node.all if isinstance(node, AllTerm)
                                                      else node.any)]  # fmt: skip
            return _all(parts) if isinstance(node, AllTerm) else _any(parts)
        if isinstance(node, NotTerm):
            inner = self._compile(node.not_, rules)

            def negate() -> bool | None:
                v = inner()
                return None if v is None else not v

            return negate
        if isinstance(node, RuleTerm):
            other, source = rules[node.rule], node.source
            if other is None:
                return lambda: False
            return lambda: other.is_active(source)
        return self._compare(node)

    def _compare(self, term: PointTerm) -> Test:
        values, point, ref, op = self.values, term.point, term.value, _OPS[term.op]
        ordering = term.op in _ORDERING

        def compare() -> bool | None:
            v = values.get(point)
            if v is None:
                return None
            if ordering and isinstance(v, str):
                try:
                    v = float(v)
                except ValueError:
                    return None
            return op(v, ref)

        return compare

    def covers(self, source: str) -> bool:
        return source == self.source

    def on_reading(self, r: Reading, out: list[ConditionChange]) -> None:
        if r.quality is Quality.BAD:
            return
        self.values[r.point] = r.value
        self._update(r.ts, out)

    def on_rule_change(self, change: ConditionChange, out: list[ConditionChange]) -> None:
        self._update(change.ts, out)

    def _update(self, ts: int, out: list[ConditionChange]) -> None:
        result = self.test()
        if result is None:
            return
        target = _ON if result else None
        tr = self.track(self.source)
        if target == tr.level and tr.pending == IDLE:
            return
        self.drive(self.source, tr, target, ts, None, out)

    def describe(
        self,
        source: str,
        tr: Track,
        level: str,
        ts: int,
        active: bool,
        data: Mapping[str, Any],
        *,
        level_change: bool = False,
    ) -> ConditionChange:
        values = {p: self.values[p] for p in self.points if p in self.values}
        return ConditionChange(
            self.rule, source, self.device, active, ts, self.info.priority,
            data={**data, "values": values} if values else data,
        )  # fmt: skip

    def snapshot(
        self, source: str, ts: int, active: bool, data: Mapping[str, Any]
    ) -> ConditionChange:
        return self.describe(source, self.track(source), "", ts, active, data)


def _all(parts: list[Test]) -> Test:
    def test() -> bool | None:
        unknown = False
        for p in parts:
            v = p()
            if v is False:
                return False
            if v is None:
                unknown = True
        return None if unknown else True

    return test


def _any(parts: list[Test]) -> Test:
    def test() -> bool | None:
        unknown = False
        for p in parts:
            v = p()
            if v is True:
                return True
            if v is None:
                unknown = True
        return None if unknown else False

    return test
