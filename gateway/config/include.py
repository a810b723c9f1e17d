"""Reading one site file and the files it includes, merged into one tree.

``include:`` lists paths relative to the including file. Each included
file is read (with its own includes, environment substitution and
positions) and merged into the including one: lists are concatenated
(the including file's items first), mappings are merged key by key, and
on a conflict between two plain values the including file wins. Positions
keep pointing into the file a value came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config.env import substitute
from gateway.config.problems import Problem
from gateway.config.yamlpos import Mark, PosDict, PosList, format_path, load_yaml

__all__ = ["FileReader", "merge_into"]


@dataclass
class FileReader:
    """Reads a tree of site files; collects problems instead of stopping."""

    env: Mapping[str, str]
    top_dir: Path
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def show(self, path: Path) -> str:
        return os.path.relpath(path, self.top_dir)

    def parse(self, path: Path, text: str, chain: tuple[Path, ...] = ()) -> PosDict | None:
        """Parse ``text`` (the content of ``path``), expand variables, follow includes."""
        file = str(path)
        self.files.append(path)
        tree, problems = load_yaml(text, file)
        self.problems.extend(problems)
        if tree is None:
            if not problems:
                self.problems.append(
                    Problem(file, 1, 1, "", "the file is empty", "start it with 'version: 1'")
                )
            return None
        if not isinstance(tree, PosDict):
            self.problems.append(
                Problem(file, 1, 1, "", "the file must be a mapping of keys (version:, site:, ...)")
            )
            return None
        self.problems.extend(substitute(tree, self.env))
        self._includes(path, tree, (*chain, path.resolve()))
        return tree

    def _includes(self, path: Path, tree: PosDict, chain: tuple[Path, ...]) -> None:
        if "include" not in tree:
            return
        entries = tree["include"]
        if not isinstance(entries, PosList):
            self._problem(tree.value_marks["include"], "include", "include must be a list of files")
            del tree["include"]
            return
        kept = PosList(entries.mark)
        for i, (entry, mark) in enumerate(zip(entries, entries.item_marks, strict=True)):
            where = f"include[{i}]"
            if not isinstance(entry, str) or not entry:
                self._problem(mark, where, "an include entry must be a file name")
                continue
            kept.put(entry, mark)
            target = path.parent / entry
            real = target.resolve()
            if real in chain:
                names = [self.show(p) for p in chain[chain.index(real) :]]
                cycle = " -> ".join([*names, self.show(real)])
                self._problem(mark, where, f"include cycle: {cycle}", "remove one of the includes")
                continue
            try:
                text = target.read_text(encoding="utf-8")
            except FileNotFoundError:
                self._problem(mark, where, f"included file not found: {self.show(target)}")
                continue
            except (OSError, UnicodeDecodeError) as e:
                self._problem(mark, where, f"cannot read included file {self.show(target)}: {e}")
                continue
            sub = self.parse(Path(os.path.abspath(target)), text, chain)
            if sub is not None:
                self._merge_included(tree, sub)
        tree["include"] = kept

    def _merge_included(self, tree: PosDict, sub: PosDict) -> None:
        sub.pop("include", None)
        if "version" in sub:
            theirs, ours = sub.pop("version"), tree.get("version")
            if "version" in tree and theirs != ours:
                self._problem(
                    sub.value_marks["version"],
                    "version",
                    f"included file says version {theirs!r} but the including file says {ours!r}",
                    "an included file follows the including file's version; remove it",
                )
        self.problems.extend(merge_into(tree, sub))

    def _problem(self, mark: Mark, path: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(mark.file, mark.line, mark.column, path, message, hint))


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a plain value"


def merge_into(dst: PosDict, src: PosDict, path: tuple[Any, ...] = ()) -> list[Problem]:
    """Merge ``src`` into ``dst`` in place (see the module docstring)."""
    problems: list[Problem] = []
    for key, value in src.items():
        key_mark = src.key_marks.get(key, src.mark)
        if key not in dst:
            dst.put(key, value, key_mark, src.value_marks.get(key, src.mark))
            continue
        current = dst[key]
        if isinstance(current, PosList) and isinstance(value, PosList):
            current.extend(value)
            current.item_marks.extend(value.item_marks)
        elif isinstance(current, PosDict) and isinstance(value, PosDict):
            problems.extend(merge_into(current, value, (*path, key)))
        elif isinstance(current, dict | list) or isinstance(value, dict | list):
            other = dst.key_marks.get(key, dst.mark)
            where = f"{os.path.basename(other.file)}:{other.line}"
            problems.append(
                Problem(
                    key_mark.file,
                    key_mark.line,
                    key_mark.column,
                    format_path((*path, key)),
                    f"cannot merge: {_kind(value)} here, {_kind(current)} at {where}",
                    "make both the same kind",
                )
            )
        # two plain values: the including file wins
    return problems
