"""Errors of the rule engine: a rule that cannot be built names itself, the
field and the pattern at fault, and says what to do."""

from __future__ import annotations

__all__ = ["DuplicateRuleError", "RuleError", "RuleReferenceError", "UnknownPointError"]


class RuleError(ValueError):
    """A rule cannot be evaluated as written (raised when the engine is built)."""

    def __init__(self, rule: str, message: str, *, field: str = "", pattern: str = "") -> None:
        self.rule = rule
        self.field = field
        self.pattern = pattern
        self.reason = message
        super().__init__(f"rule {rule!r}: {message}")


class UnknownPointError(RuleError):
    """A ``point`` that no driver produces, or a ``points`` pattern that matches nothing."""


class RuleReferenceError(RuleError):
    """A combo rule names a rule that does not exist, or rules refer to each other in a loop."""


class DuplicateRuleError(RuleError):
    """Two rules share one id."""
