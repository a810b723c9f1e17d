"""YAML with positions.

:func:`load_yaml` parses a document with PyYAML's safe loader and returns
plain-looking data in which every mapping is a :class:`PosDict` and every
sequence a :class:`PosList`. Each container records where it starts and
where each of its keys and values is, so that a validation error about
``drivers[0].broker.port`` can name ``site.yaml:14:13``. Scalars stay plain
Python values; their positions live in the container that holds them.

A key repeated in one mapping is a problem (YAML would silently keep the
last one); ``<<`` merge keys keep their usual meaning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gateway.config.problems import Problem

__all__ = [
    "Located",
    "Mark",
    "PosDict",
    "PosList",
    "format_path",
    "iter_scalars",
    "load_yaml",
    "locate",
]


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a node starts (1-based line and column)."""

    file: str
    line: int
    column: int
    from_env: bool = False  # the scalar's text came (partly) from an environment variable

    def substituted(self) -> Mark:
        return replace(self, from_env=True)


class PosDict(dict[Any, Any]):
    """A mapping that knows where it and each of its keys and values are."""

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.key_marks: dict[Any, Mark] = {}
        self.value_marks: dict[Any, Mark] = {}

    def put(self, key: Any, value: Any, key_mark: Mark, value_mark: Mark) -> None:
        self[key] = value
        self.key_marks[key] = key_mark
        self.value_marks[key] = value_mark


class PosList(list[Any]):
    """A sequence that knows where it and each of its items are."""

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.item_marks: list[Mark] = []

    def put(self, value: Any, mark: Mark) -> None:
        self.append(value)
        self.item_marks.append(mark)


class PositionLoader(yaml.SafeLoader):
    """The safe loader; :func:`load_yaml` builds the data from its node graph."""


def _mark(file: str, node: Node) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, loader: PositionLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.problems: list[Problem] = []
        self._merged_prefix: dict[int, int] = {}  # id(node) -> pairs that came from '<<'
        self._active: set[int] = set()

    def build(self, node: Node, path: tuple[Any, ...]) -> Any:
        if isinstance(node, ScalarNode):
            return self.loader.construct_object(node, deep=True)
        if id(node) in self._active:
            self._problem(node, path, "recursive alias: a node contains itself")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                seq = PosList(_mark(self.file, node))
                for i, item in enumerate(node.value):
                    seq.put(self.build(item, (*path, i)), _mark(self.file, item))
                return seq
            assert isinstance(node, MappingNode)
            return self._mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: MappingNode, path: tuple[Any, ...]) -> PosDict:
        if id(node) not in self._merged_prefix:
            own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
            self.loader.flatten_mapping(node)
            self._merged_prefix[id(node)] = len(node.value) - own
        prefix = self._merged_prefix[id(node)]
        result = PosDict(_mark(self.file, node))
        own_keys: set[Any] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                self._problem(key_node, path, "a mapping key must be a plain value")
                continue
            if index >= prefix:
                if key in own_keys:
                    first = result.key_marks[key]
                    self._problem(
                        key_node,
                        (*path, key),
                        f"duplicate key {key!r} (first at line {first.line}); "
                        "YAML would silently keep only the last one",
                        "remove or rename one of them",
                    )
                    continue
                own_keys.add(key)
            value = self.build(value_node, (*path, key))
            result.put(key, value, _mark(self.file, key_node), _mark(self.file, value_node))
        return result

    def _problem(self, node: Node, path: tuple[Any, ...], message: str, hint: str = "") -> None:
        m = _mark(self.file, node)
        self.problems.append(Problem(m.file, m.line, m.column, format_path(path), message, hint))


def load_yaml(text: str, file: str) -> tuple[Any, list[Problem]]:
    """Parse ``text``; return the data (``None`` for an empty document) and problems.

    A syntax error is one problem and the data is ``None``.
    """
    loader = PositionLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, []
        builder = _Builder(loader, file)
        data = builder.build(root, ())
        return data, builder.problems
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"YAML syntax error: {e.problem or e.context or 'invalid document'}"
        if e.context and e.problem:
            message += f" ({e.context})"
        hint = "check the indentation and the quotes on this line and the one above"
        return None, [Problem(file, line, column, "", message, hint)]
    except yaml.YAMLError as e:  # reader errors: bad bytes, control characters
        return None, [Problem(file, 1, 1, "", f"YAML error: {e}")]
    finally:
        loader.dispose()


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_path(path: tuple[Any, ...]) -> str:
    """``('drivers', 0, 'broker', 'port')`` -> ``drivers[0].broker.port``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{str(part)!r}]"
    return out


@dataclass(frozen=True, slots=True)
class Located:
    """Where a data path points: the nearest node that exists."""

    mark: Mark | None
    key_mark: Mark | None  # the key of the last reached mapping entry, if any
    path: tuple[Any, ...]  # the part of the requested path that exists
    complete: bool  # the whole path exists


def locate(tree: Any, path: tuple[Any, ...]) -> Located:
    """Follow ``path`` into ``tree`` as far as it exists.

    ``mark`` is the position of the deepest existing node (a mapping's start
    for a missing key). Containers built by a migration have no marks; the
    nearest marked ancestor is used instead.
    """
    node = tree
    mark: Mark | None = getattr(tree, "mark", None)
    key_mark: Mark | None = None
    reached: list[Any] = []
    for part in path:
        if isinstance(node, dict):
            if part not in node:
                return Located(mark, key_mark, tuple(reached), False)
            if isinstance(node, PosDict):
                key_mark = node.key_marks.get(part, key_mark)
                mark = node.value_marks.get(part, mark)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            if isinstance(node, PosList) and part < len(node.item_marks):
                mark = node.item_marks[part]
                key_mark = mark
            node = node[part]
        else:
            return Located(mark, key_mark, tuple(reached), False)
        reached.append(part)
    return Located(mark, key_mark, tuple(reached), True)


def iter_scalars(
    tree: Any, path: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], Any, Mark | None]]:
    """Every scalar below ``tree`` with its path and mark (``None`` if unknown)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if isinstance(value, dict | list):
                yield from iter_scalars(value, (*path, key))
            else:
                marks = tree.value_marks if isinstance(tree, PosDict) else {}
                yield (*path, key), value, marks.get(key)
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            if isinstance(value, dict | list):
                yield from iter_scalars(value, (*path, i))
            else:
                item_marks = tree.item_marks if isinstance(tree, PosList) else []
                yield (*path, i), value, item_marks[i] if i < len(item_marks) else None
