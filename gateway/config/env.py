"""``${VAR}`` substitution in the string values of a site file.

``${VAR}`` is replaced by the environment variable's value (an error when
it is not set), ``${VAR:-default}`` falls back to ``default`` when the
variable is unset or empty, and ``$${`` stands for a literal ``${``. Keys
are never substituted, only string values, and before validation, so
``port: ${MQTT_PORT}`` still becomes an integer.

A value that took text from the environment is marked (``Mark.from_env``):
error messages and summaries never print it, since that is how secrets
enter the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config.problems import Problem
from gateway.config.yamlpos import Mark, PosDict, PosList, format_path

__all__ = ["Expansion", "expand", "substitute"]

_REF = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(slots=True)
class Expansion:
    text: str
    from_env: bool = False  # some of the text came from the environment
    errors: list[tuple[str, str]] = field(default_factory=list)  # (message, hint)


def expand(text: str, env: Mapping[str, str]) -> Expansion:
    """Substitute every ``${...}`` of ``text``; unknown variables become errors."""
    if "$" not in text:
        return Expansion(text)
    out: list[str] = []
    result = Expansion(text)
    pos = 0
    for m in _REF.finditer(text):
        out.append(text[pos : m.start()])
        pos = m.end()
        body = m.group("body")
        if m.group(0) == "$${":
            out.append("${")
        elif body is None:
            result.errors.append(
                ("unterminated '${'", "close it with '}', or write '$${' for a literal '${'")
            )
        else:
            out.append(_one(body, env, result))
    out.append(text[pos:])
    result.text = "".join(out)
    return result


def _one(body: str, env: Mapping[str, str], result: Expansion) -> str:
    name, sep, default = body.partition(":-")
    if not _NAME.fullmatch(name):
        result.errors.append(
            (
                f"bad variable reference '${{{body}}}'",
                "write ${NAME} or ${NAME:-default}; NAME is letters, digits and '_'",
            )
        )
        return ""
    value = env.get(name)
    if sep:
        if not value:
            return default
    elif value is None:
        result.errors.append(
            (
                f"environment variable '{name}' is not set",
                f"set it before starting the gateway, or give a default: ${{{name}:-value}}",
            )
        )
        return ""
    result.from_env = True
    return value


def substitute(tree: Any, env: Mapping[str, str], path: tuple[Any, ...] = ()) -> list[Problem]:
    """Expand every string value below ``tree`` in place; return the problems."""
    problems: list[Problem] = []
    if isinstance(tree, dict):
        for key in list(tree):
            _visit(tree, key, env, (*path, key), problems)
    elif isinstance(tree, list):
        for i in range(len(tree)):
            _visit(tree, i, env, (*path, i), problems)
    return problems


def _visit(
    container: Any, key: Any, env: Mapping[str, str], path: tuple[Any, ...], problems: list[Problem]
) -> None:
    value = container[key]
    if isinstance(value, dict | list):
        problems.extend(substitute(value, env, path))
        return
    if not isinstance(value, str):
        return
    exp = expand(value, env)
    mark = _get_mark(container, key)
    for message, hint in exp.errors:
        line, column, file = (mark.line, mark.column, mark.file) if mark else (0, 0, "")
        problems.append(Problem(file, line, column, format_path(path), message, hint))
    container[key] = exp.text
    if exp.from_env and mark is not None:
        _set_mark(container, key, mark.substituted())


def _get_mark(container: Any, key: Any) -> Mark | None:
    if isinstance(container, PosDict):
        return container.value_marks.get(key)
    if isinstance(container, PosList) and key < len(container.item_marks):
        mark: Mark = container.item_marks[key]
        return mark
    return None


def _set_mark(container: Any, key: Any, mark: Mark) -> None:
    if isinstance(container, PosDict):
        container.value_marks[key] = mark
    elif isinstance(container, PosList):
        container.item_marks[key] = mark
