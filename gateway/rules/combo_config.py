"""The ``combo`` rule: a boolean tree over point comparisons and other rules' conditions.

    - id: pump1-dry-run
      type: combo
      source: pump1
      all:
        - {point: pump1.running, op: eq, value: true}
        - {point: pump1.outlet_pressure, op: lt, value: 0.5}
        - not: {rule: tank1-low}

Exactly one of ``all``, ``any``, ``not`` at the top; each term is a point
comparison, a rule term, or another ``all``/``any``/``not`` node.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from gateway.driver import StrictModel
from gateway.rules.base import ConditionValue, RuleBase, check_point_pattern

__all__ = [
    "AllTerm",
    "AnyTerm",
    "ComboRuleConfig",
    "ComboTerm",
    "NotTerm",
    "PointTerm",
    "RuleTerm",
]

Op = Literal["gt", "ge", "lt", "le", "eq", "ne"]
_ORDERING = {"gt", "ge", "lt", "le"}


class PointTerm(StrictModel):
    """True while a point's value compares true with ``value``."""

    point: str = Field(description="The point, '<device>.<point>' (no globs).")
    op: Op = Field(description="gt, ge, lt, le, eq or ne.")
    value: ConditionValue = Field(description="What the point's value is compared with.")

    @field_validator("point")
    @classmethod
    def _point(cls, v: str) -> str:
        check_point_pattern(v)
        if any(c in v for c in "*?["):
            raise ValueError(f"a combo term names one point; {v!r} is a glob")
        return v

    @model_validator(mode="after")
    def _orderable(self) -> Self:
        if self.op in _ORDERING and isinstance(self.value, bool | str):
            raise ValueError(
                f"'{self.op}' compares numbers; {self.value!r} is not one (use eq or ne)"
            )
        return self


class RuleTerm(StrictModel):
    """True while another rule's condition is active."""

    rule: str = Field(description="Id of the other rule.")
    source: str | None = Field(
        None, description="Only its condition on this source (a point or device); default: any."
    )


class AllTerm(StrictModel):
    all: list[ComboTerm] = Field(description="True when every term is true.")

    @field_validator("all")
    @classmethod
    def _some(cls, v: list[ComboTerm]) -> list[ComboTerm]:
        return _non_empty("all", v)


class AnyTerm(StrictModel):
    any: list[ComboTerm] = Field(description="True when at least one term is true.")

    @field_validator("any")
    @classmethod
    def _some(cls, v: list[ComboTerm]) -> list[ComboTerm]:
        return _non_empty("any", v)


class NotTerm(StrictModel):
    not_: ComboTerm = Field(alias="not", description="True when the term is false.")


def _non_empty(name: str, terms: list[ComboTerm]) -> list[ComboTerm]:
    if not terms:
        raise ValueError(f"'{name}' is empty: give at least one term")
    return terms


def _term_kind(v: Any) -> str | None:
    """The member a term is, by its keys. Tags are the class names, so that an
    error's location maps back onto the YAML (gateway.config.explain)."""
    keys = v.keys() if isinstance(v, dict) else type(v).model_fields.keys()
    for key, tag in (("all", "AllTerm"), ("any", "AnyTerm"), ("not", "NotTerm")):
        if key in keys:
            return tag
    if "not_" in keys:
        return "NotTerm"
    if "rule" in keys:
        return "RuleTerm"
    if "point" in keys:
        return "PointTerm"
    return None


ComboTerm = Annotated[
    Annotated[PointTerm, Tag("PointTerm")]
    | Annotated[RuleTerm, Tag("RuleTerm")]
    | Annotated[AllTerm, Tag("AllTerm")]
    | Annotated[AnyTerm, Tag("AnyTerm")]
    | Annotated[NotTerm, Tag("NotTerm")],
    Discriminator(
        _term_kind,
        custom_error_type="combo_term",
        custom_error_message="a combo term needs one of 'point', 'rule', 'all', 'any' or 'not'",
    ),
]


class ComboRuleConfig(RuleBase):
    """A boolean combination of point comparisons and other rules' conditions."""

    type: Literal["combo"] = Field(description="Rule kind.")
    all: list[ComboTerm] | None = Field(None, description="Alarm when every term is true.")
    any: list[ComboTerm] | None = Field(None, description="Alarm when at least one term is true.")
    not_: ComboTerm | None = Field(None, alias="not", description="Alarm when the term is false.")
    source: str | None = Field(
        None,
        description="The alarm's source (a device id); default: the device of the "
        "point terms when they share one, else 'site'.",
    )
    on_delay_s: float = Field(0.0, ge=0, description="True this long before it alarms.")
    off_delay_s: float = Field(0.0, ge=0, description="False this long before it clears.")

    @model_validator(mode="after")
    def _one_root(self) -> Self:
        given = [n for n, v in (("all", self.all), ("any", self.any), ("not", self.not_)) if v]
        empty = [n for n, v in (("all", self.all), ("any", self.any)) if v == []]
        if empty:
            raise ValueError(f"rule {self.id!r}: '{empty[0]}' is empty: give at least one term")
        if len(given) != 1:
            raise ValueError(f"rule {self.id!r}: a combo needs exactly one of all, any, not")
        return self

    def root(self) -> ComboTerm:
        """The tree: an :class:`AllTerm`, :class:`AnyTerm` or :class:`NotTerm`."""
        if self.all:
            return AllTerm.model_validate({"all": self.all})
        if self.any:
            return AnyTerm.model_validate({"any": self.any})
        return NotTerm.model_validate({"not": self.not_})


for _model in (AllTerm, AnyTerm, NotTerm, ComboRuleConfig):
    _model.model_rebuild()
