"""What is wrong with a site file, and how it is printed.

Every check of the loader produces :class:`Problem` values; the loader
collects all of them and raises one :class:`ConfigError`. The printed form
is one line per problem, like a compiler's::

    site.yaml:14:13: drivers[0].broker.port: expected a whole number, got the text 'abc'
      hint: ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ConfigError",
    "Problem",
    "UnreadableConfigError",
    "format_problem",
    "format_problems",
    "sort_problems",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One error in a site file. ``line``/``column`` are 1-based; 0 means unknown."""

    file: str
    line: int
    column: int
    path: str  # e.g. 'drivers[0].broker.port'; '' for the file as a whole
    message: str
    hint: str = ""


class ConfigError(Exception):
    """The site file (or one it includes) has problems; all of them are listed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sort_problems(problems)
        super().__init__(format_problems(self.problems))


class UnreadableConfigError(ConfigError):
    """The top-level site file could not be read at all."""


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file, p.line, p.column, p.path, p.message))


def _show_file(file: str, base_dir: Path | None) -> str:
    if base_dir is None or not file:
        return file
    try:
        return os.path.relpath(file, base_dir)
    except ValueError:  # another drive on Windows
        return file


def format_problem(problem: Problem, base_dir: Path | None = None) -> str:
    """``FILE:LINE:COLUMN: PATH: MESSAGE`` (+ an indented hint line)."""
    where = _show_file(problem.file, base_dir)
    if problem.line > 0:
        where += f":{problem.line}:{problem.column}"
    head = f"{where}: {problem.path}: " if problem.path else f"{where}: "
    text = head + problem.message
    if problem.hint:
        text += f"\n  hint: {problem.hint}"
    return text


def format_problems(problems: Iterable[Problem], base_dir: Path | None = None) -> str:
    """All problems, sorted by file and line, then ``N error(s)``."""
    ordered = sort_problems(problems)
    lines = [format_problem(p, base_dir) for p in ordered]
    n = len(ordered)
    lines.append(f"{n} error" if n == 1 else f"{n} errors")
    return "\n".join(lines)
