"""${VAR} substitution."""

from __future__ import annotations

from gateway.config.env import expand, substitute
from gateway.config.yamlpos import load_yaml


def test_plain_and_default() -> None:
    env = {"HOST": "db", "EMPTY": ""}
    assert expand("pg://${HOST}/gw", env).text == "pg://db/gw"
    assert expand("${PORT:-5432}", env).text == "5432"
    assert expand("${EMPTY:-x}", env).text == "x"  # ':-' also covers an empty value
    assert expand("${HOST:-x}", env).text == "db"
    assert expand("no variables", env).from_env is False


def test_from_env_flag() -> None:
    assert expand("${HOST}", {"HOST": "h"}).from_env
    assert not expand("${NOPE:-default}", {}).from_env  # the default is in the file


def test_escape() -> None:
    exp = expand("literal $${HOME} and $$ and $x", {"HOME": "/root"})
    assert exp.text == "literal ${HOME} and $$ and $x"
    assert exp.errors == [] and not exp.from_env


def test_undefined_variable_is_an_error_naming_it() -> None:
    exp = expand("a ${MISSING} b", {})
    assert exp.errors[0][0] == "environment variable 'MISSING' is not set"
    assert "${MISSING:-value}" in exp.errors[0][1]


def test_malformed_references() -> None:
    assert "unterminated" in expand("x ${OPEN", {}).errors[0][0]
    assert "bad variable reference" in expand("${1X}", {}).errors[0][0]
    assert "bad variable reference" in expand("${}", {}).errors[0][0]


def test_substitute_in_place_marks_values_and_keeps_types() -> None:
    tree, _ = load_yaml("a: ${A}\nb: [x, '${B:-7}']\nc: 5\n'${K}': 1\n", "f.yaml")
    problems = substitute(tree, {"A": "secret"})
    assert problems == []
    assert tree == {"a": "secret", "b": ["x", "7"], "c": 5, "${K}": 1}  # keys untouched
    assert tree.value_marks["a"].from_env
    assert not tree["b"].item_marks[1].from_env


def test_substitute_problem_position() -> None:
    tree, _ = load_yaml("x:\n  y: pre-${NOPE}\n", "f.yaml")
    problems = substitute(tree, {})
    assert [(p.file, p.line, p.column, p.path) for p in problems] == [("f.yaml", 2, 6, "x.y")]
