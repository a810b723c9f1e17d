"""Positions recorded by the YAML loader, and pydantic locations mapped onto them."""

from __future__ import annotations

from typing import Any

from gateway.config.yamlpos import PosDict, PosList, format_path, iter_scalars, load_yaml, locate

DOC = """\
version: 1
site:
  id: demo
drivers:
  - type: testout
    id: up
    broker:
      host: mqtt.local
      port: 1883
  - {type: testdev, id: dev}
"""


def load(text: str) -> Any:
    tree, problems = load_yaml(text, "f.yaml")
    assert problems == []
    return tree


def test_containers_and_marks() -> None:
    tree = load(DOC)
    assert isinstance(tree, PosDict)
    assert isinstance(tree["drivers"], PosList)
    assert tree == {
        "version": 1,
        "site": {"id": "demo"},
        "drivers": [
            {"type": "testout", "id": "up", "broker": {"host": "mqtt.local", "port": 1883}},
            {"type": "testdev", "id": "dev"},
        ],
    }
    assert (tree.key_marks["site"].line, tree.key_marks["site"].column) == (2, 1)
    assert tree["drivers"].item_marks[1].line == 10
    broker = tree["drivers"][0]["broker"]
    assert (broker.value_marks["port"].line, broker.value_marks["port"].column) == (9, 13)
    assert broker.key_marks["port"].column == 7
    assert broker.mark.file == "f.yaml"


def test_locate_existing_value() -> None:
    found = locate(load(DOC), ("drivers", 0, "broker", "port"))
    assert found.complete
    assert found.mark is not None and (found.mark.line, found.mark.column) == (9, 13)
    assert found.key_mark is not None and found.key_mark.column == 7


def test_locate_missing_key_points_at_the_parent() -> None:
    found = locate(load(DOC), ("drivers", 1, "broker"))
    assert not found.complete
    assert found.path == ("drivers", 1)
    assert found.mark is not None and found.mark.line == 10


def test_locate_through_a_container_without_marks() -> None:
    """A migration may replace a subtree with plain dicts: the nearest mark is used."""
    tree = load(DOC)
    tree["site"] = {"id": "demo", "extra": {"deep": 1}}
    found = locate(tree, ("site", "extra", "deep"))
    assert found.complete
    assert found.mark is not None and found.mark.line == 3  # where 'site:' had its value


def test_locate_past_a_scalar_stops() -> None:
    found = locate(load(DOC), ("site", "id", "x"))
    assert not found.complete and found.path == ("site", "id")


def test_duplicate_keys_are_problems_not_overwrites() -> None:
    tree, problems = load_yaml("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert tree == {"a": 1, "b": 2}  # the first one is kept
    assert [(p.line, p.column, p.path) for p in problems] == [(3, 1, "a")]
    assert "duplicate key 'a' (first at line 1)" in problems[0].message


def test_merge_keys_are_not_duplicates() -> None:
    tree, problems = load_yaml("base: &b {kind: pump, name: x}\ndev:\n  <<: *b\n  name: y\n", "f")
    assert problems == []
    assert tree["dev"] == {"kind": "pump", "name": "y"}


def test_syntax_error_is_one_problem_with_position() -> None:
    tree, problems = load_yaml("a:\n  - b\n c: [\n", "f.yaml")
    assert tree is None
    assert len(problems) == 1
    assert problems[0].line >= 2 and problems[0].message.startswith("YAML syntax error")


def test_empty_document() -> None:
    assert load_yaml("# nothing\n", "f") == (None, [])


def test_unhashable_key_is_a_problem() -> None:
    tree, problems = load_yaml("? [a, b]\n: 1\nc: 2\n", "f")
    assert tree == {"c": 2}
    assert "plain value" in problems[0].message


def test_recursive_alias_is_a_problem() -> None:
    _tree, problems = load_yaml("a: &x\n  b: *x\n", "f")
    assert "recursive alias" in problems[0].message


def test_format_path() -> None:
    assert format_path(("drivers", 0, "broker", "port")) == "drivers[0].broker.port"
    assert format_path(("devices", 1, "points", "a.b")) == "devices[1].points['a.b']"
    assert format_path(()) == ""


def test_iter_scalars() -> None:
    tree = load("a: [1, {b: x}]\nc: y\n")
    found = {p: (v, m.line if m else None) for p, v, m in iter_scalars(tree)}
    assert found == {("a", 0): (1, 1), ("a", 1, "b"): ("x", 1), ("c",): ("y", 2)}
