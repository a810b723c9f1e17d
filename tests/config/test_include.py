"""Includes: merge rules, positions in included files, missing files, cycles."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.include import merge_into
from gateway.config.loader import ConfigError, load_site
from gateway.config.yamlpos import PosDict, load_yaml, locate
from gateway.registry import DriverRegistry


def tree(text: str, name: str) -> PosDict:
    data, problems = load_yaml(text, name)
    assert problems == [] and isinstance(data, PosDict)
    return data


def test_merge_rules() -> None:
    main = tree("a: 1\nlst: [x]\nmap: {k: 1, deep: {p: 1}}\n", "main.yaml")
    inc = tree("a: 2\nlst: [y, z]\nmap: {k: 2, deep: {q: 2}, new: 3}\nonly: 4\n", "inc.yaml")
    assert merge_into(main, inc) == []
    assert main == {
        "a": 1,  # the including file wins on a scalar
        "lst": ["x", "y", "z"],  # lists are concatenated, the including file's items first
        "map": {"k": 1, "deep": {"p": 1, "q": 2}, "new": 3},  # mappings deep-merged
        "only": 4,
    }
    # positions keep pointing into the file each value came from
    assert main["lst"].item_marks[2].file == "inc.yaml"
    assert locate(main, ("map", "new")).mark.file == "inc.yaml"  # type: ignore[union-attr]
    assert locate(main, ("only",)).key_mark.line == 4  # type: ignore[union-attr]


def test_merge_kind_conflict_is_a_problem() -> None:
    main = tree("devices: {a: 1}\n", "main.yaml")
    inc = tree("devices: [a]\n", "inc.yaml")
    (problem,) = merge_into(main, inc)
    assert (problem.file, problem.line, problem.path) == ("inc.yaml", 1, "devices")
    assert problem.message == "cannot merge: a list here, a mapping at main.yaml:1"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_nested_includes_and_relative_paths(tmp_path: Path, registry: DriverRegistry) -> None:
    site = write(
        tmp_path / "site.yaml",
        "version: 1\nsite: {id: s}\ninclude: [parts/devices.yaml]\n"
        "devices:\n  - {id: d0, kind: pump}\n",
    )
    write(
        tmp_path / "parts/devices.yaml",
        "include: [more/d2.yaml]\ndevices:\n  - {id: d1, kind: tank}\n",
    )
    write(tmp_path / "parts/more/d2.yaml", "version: 1\ndevices:\n  - {id: d2, kind: gate}\n")
    loaded = load_site(site, registry, {})
    assert [d.id for d in loaded.config.devices] == ["d0", "d1", "d2"]
    assert loaded.config.include == ["parts/devices.yaml"]  # only the top file's
    assert [p.relative_to(tmp_path).as_posix() for p in loaded.files] == [
        "site.yaml",
        "parts/devices.yaml",
        "parts/more/d2.yaml",
    ]


def test_error_in_included_file_names_that_file(tmp_path: Path, registry: DriverRegistry) -> None:
    site = write(tmp_path / "site.yaml", "version: 1\nsite: {id: s}\ninclude: [d.yaml]\n")
    write(tmp_path / "d.yaml", "devices:\n  - id: d1\n    kind: pmp\n")
    with pytest.raises(ConfigError) as e:
        load_site(site, registry, {})
    (problem,) = e.value.problems
    assert (Path(problem.file).name, problem.line, problem.column) == ("d.yaml", 3, 11)
    assert problem.path == "devices[0].kind"


def test_included_version_must_agree(tmp_path: Path, registry: DriverRegistry) -> None:
    site = write(tmp_path / "site.yaml", "version: 1\nsite: {id: s}\ninclude: [d.yaml]\n")
    write(tmp_path / "d.yaml", "version: 2\n")
    with pytest.raises(ConfigError, match="included file says version 2"):
        load_site(site, registry, {})


def test_self_include_is_a_cycle(tmp_path: Path, registry: DriverRegistry) -> None:
    site = write(tmp_path / "site.yaml", "version: 1\nsite: {id: s}\ninclude: [site.yaml]\n")
    with pytest.raises(ConfigError, match=r"include cycle: site.yaml -> site.yaml"):
        load_site(site, registry, {})


def test_bad_include_entries(tmp_path: Path, registry: DriverRegistry) -> None:
    site = write(tmp_path / "site.yaml", "version: 1\nsite: {id: s}\ninclude: [5, '']\n")
    with pytest.raises(ConfigError) as e:
        load_site(site, registry, {})
    assert [(p.path, p.message) for p in e.value.problems] == [
        ("include[0]", "an include entry must be a file name"),
        ("include[1]", "an include entry must be a file name"),
    ]
    write(site, "version: 1\nsite: {id: s}\ninclude: other.yaml\n")
    with pytest.raises(ConfigError, match="include must be a list of files"):
        load_site(site, registry, {})


def test_empty_and_non_mapping_included_files(tmp_path: Path, registry: DriverRegistry) -> None:
    site = write(tmp_path / "site.yaml", "version: 1\nsite: {id: s}\ninclude: [e.yaml, l.yaml]\n")
    write(tmp_path / "e.yaml", "")
    write(tmp_path / "l.yaml", "- a\n")
    with pytest.raises(ConfigError) as e:
        load_site(site, registry, {})
    assert [(Path(p.file).name, p.message.split(";")[0]) for p in e.value.problems] == [
        ("e.yaml", "the file is empty"),
        ("l.yaml", "the file must be a mapping of keys (version:, site:, ...)"),
    ]
