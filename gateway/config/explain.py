"""Pydantic validation errors turned into :class:`Problem` values people can act on.

Each error's location is mapped onto the YAML tree (union tags that
pydantic inserts into the location are dropped), and its message is
rewritten where pydantic's is terse: an unknown key suggests the closest
allowed one, a type error says what was expected and what was given, a bad
choice lists the allowed values. A value that came from an environment
variable, or that sits in a ``SecretStr`` field, is never printed.
"""

from __future__ import annotations

import difflib
import enum
import re
import types
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic_core import ErrorDetails

from gateway.config.problems import Problem
from gateway.config.yamlpos import Mark, format_path, locate
from gateway.registry import DriverRegistry

__all__ = ["describe", "driver_type_problems", "explain_error", "suggest", "unwrap"]

_ID_PATTERN = r"^[A-Za-z0-9_-]+$"

_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping (indented 'key: value' lines)",
    "model_type": "a mapping (indented 'key: value' lines)",
    "model_attributes_type": "a mapping (indented 'key: value' lines)",
    "list_type": "a list (lines starting with '- ')",
}


def unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` from a type."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tags(model: type[BaseModel]) -> tuple[Any, ...]:
    field = model.model_fields.get("type")
    if field is None:
        return ()
    tp = unwrap(field.annotation)
    return get_args(tp) if get_origin(tp) is Literal else ()


def _step(tp: Any, part: Any) -> tuple[Any, bool]:
    """The type one location step below ``tp``, and whether ``part`` was a union tag."""
    tp = unwrap(tp)
    origin = get_origin(tp)
    if _is_model(tp):
        field = tp.model_fields.get(part) if isinstance(part, str) else None
        return (field.annotation if field else None), False
    if origin in (list, tuple, set, frozenset) and isinstance(part, int):
        return get_args(tp)[0], False
    if origin is dict:
        return get_args(tp)[1], False
    if origin in (Union, types.UnionType):
        for member in get_args(tp):
            member = unwrap(member)
            if _is_model(member) and part in _tags(member):
                return member, True
            if getattr(member, "__name__", None) == part:
                return member, True
    return None, False


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any, Any, bool]:
    """-> (data path, parent type, type at loc, last step named a dict key)."""
    data: list[Any] = []
    parent: Any = None
    tp: Any = root
    key_error = False
    for part in loc:
        key_error = part == "[key]"
        if key_error:  # the error is about the key of the last mapping entry
            tp = None
            continue
        if tp is None:  # lost track of the types: keep the rest as data
            data.append(part)
            continue
        nxt, tag = _step(tp, part)
        if not tag:
            parent = tp
            data.append(part)
        tp = nxt
    return tuple(data), unwrap(parent), unwrap(tp), key_error


def suggest(word: Any, choices: Iterable[str]) -> str:
    """``did you mean 'x'? `` or ''."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def describe(value: Any, hidden: str = "") -> str:
    """A short description of an input value, or ``hidden`` if it must not be shown."""
    if hidden:
        return hidden
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _choices(tp: Any) -> list[str]:
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [str(m.value) for m in tp]
    if get_origin(tp) is Literal:
        return [str(a) for a in get_args(tp)]
    return []


def explain_error(err: ErrorDetails, root: type[BaseModel], tree: Any) -> Problem:
    """One pydantic error as a Problem located in the YAML tree."""
    kind = err["type"]
    data_path, parent, tp, key_error = _walk(root, tuple(err["loc"]))
    found = locate(tree, data_path)
    value = err.get("input")
    mark: Mark | None
    if kind == "missing":
        mark = found.key_mark or found.mark
        path = format_path(found.path)
    elif kind == "extra_forbidden" or key_error:
        mark = found.key_mark or found.mark
        path = format_path(data_path)
    else:
        mark = found.mark
        path = format_path(data_path)
    from_env = found.complete and mark is not None and mark.from_env
    if kind.startswith("union_tag"):  # the offending value is the 'type:' below the node
        tag_mark = locate(tree, (*data_path, "type")).mark
        from_env = tag_mark is not None and tag_mark.from_env
    hidden = ""
    if tp is SecretStr:
        hidden = "a secret (not shown)"
    elif from_env:
        hidden = "a value from the environment (not shown)"
    message, hint = _message(err, parent, tp, data_path, describe(value, hidden), bool(hidden))
    if hidden and isinstance(value, str) and value:
        message, hint = _scrub(message, value), _scrub(hint, value)
    line, column, file = (mark.line, mark.column, mark.file) if mark else (0, 0, "")
    return Problem(file, line, column, path, message, hint)


def _scrub(text: str, value: str) -> str:
    """Remove ``value`` from ``text``: quoted always, bare when long enough not to be a word."""
    text = text.replace(repr(value), "'***'")
    return text.replace(value, "***") if len(value) >= 4 else text


def _message(
    err: ErrorDetails, parent: Any, tp: Any, path: tuple[Any, ...], given: str, hidden: bool
) -> tuple[str, str]:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    key = path[-1] if path else ""
    if kind == "missing":
        name = err["loc"][-1]
        about = _description(parent, name)
        return f"missing required key '{name}'", (f"{name}: {about}" if about else "")
    if kind == "extra_forbidden":
        fields = parent.model_fields.items() if _is_model(parent) else ()
        allowed = sorted(f.alias or name for name, f in fields)
        hint = suggest(key, allowed) + ("allowed: " + ", ".join(allowed) if allowed else "")
        return f"unknown key '{key}'", hint
    if kind == "string_type" and not hidden and isinstance(err.get("input"), bool | int | float):
        return f"expected text, got {given}", (
            "YAML reads yes/no/on/off as true/false and 1.10 as a number; "
            "put the value in quotes to keep it as text"
        )
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {given}", ""
    if kind in ("enum", "literal_error"):
        allowed = _choices(tp) or re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        shown = "(from the environment, not shown)" if hidden else repr(err.get("input"))
        hint = "" if hidden else suggest(err.get("input"), allowed).strip()
        return f"invalid value {shown}; allowed: {', '.join(allowed)}", hint
    if kind == "union_tag_invalid":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        tag = "(from the environment, not shown)" if hidden else repr(ctx.get("tag"))
        hint = "" if hidden else suggest(ctx.get("tag"), allowed).strip()
        return f"unknown type {tag}; allowed: {', '.join(allowed)}", hint
    if kind == "union_tag_not_found":
        return "missing key 'type'", "say which kind this is with 'type:'"
    if kind == "value_error":
        return err["msg"].removeprefix("Value error, "), ""
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == _ID_PATTERN:
        return f"{given} is not a valid id", "use only letters, digits, '_' and '-'"
    return f"{err['msg']}, got {given}", ""


def _description(model: Any, name: Any) -> str:
    if not _is_model(model) or not isinstance(name, str):
        return ""
    field = model.model_fields.get(name)
    return (field.description or "") if field else ""


def driver_type_problems(tree: Any, registry: DriverRegistry) -> tuple[list[Problem], set[int]]:
    """Check each ``drivers[i].type`` against the installed drivers.

    Returns the problems and the indices of the drivers they concern, whose
    other validation errors are noise (the wrong model was tried) and are dropped.
    """
    drivers = tree.get("drivers") if isinstance(tree, dict) else None
    if not isinstance(drivers, list):
        return [], set()
    installed = sorted(registry.drivers)
    listing = "installed driver types: " + (", ".join(installed) or "none")
    problems: list[Problem] = []
    bad: set[int] = set()
    for i, item in enumerate(drivers):
        if not isinstance(item, dict):
            continue
        found = locate(tree, ("drivers", i, "type"))
        mark = found.mark
        kind = item.get("type")
        if not found.complete:
            message, hint = "missing key 'type'", listing
        elif isinstance(kind, str) and kind in registry.drivers:
            continue
        elif mark is not None and mark.from_env:
            message, hint = "unknown driver type (from the environment, not shown)", listing
        elif isinstance(kind, str) and kind in registry.unavailable:
            why = registry.unavailable[kind]
            message, hint = f"driver type '{kind}' is not available: {why}", listing
        elif isinstance(kind, str):
            message, hint = f"unknown driver type '{kind}'", suggest(kind, installed) + listing
        else:
            message, hint = f"expected a driver type name, got {describe(kind)}", listing
        bad.add(i)
        line, column, file = (mark.line, mark.column, mark.file) if mark else (0, 0, "")
        path = format_path(found.path if found.complete else ("drivers", i))
        problems.append(Problem(file, line, column, path, message, hint))
    return problems, bad
