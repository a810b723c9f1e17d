"""Loading a site file: YAML with positions, includes, ``${VAR}``, migration,
validation and cross-reference checks, with every problem reported at once.

    site = load_site(Path("config/site.yaml"))
    site.config.site.id, site.data_dir, site.points

A problem anywhere raises :class:`ConfigError` listing all of them, each
with file, line, column and the path of the offending key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from gateway.config.effective import effective_rules
from gateway.config.explain import describe, driver_type_problems, explain_error
from gateway.config.include import FileReader
from gateway.config.migrate import MigrationError, current_version, migrate
from gateway.config.problems import ConfigError, Problem, UnreadableConfigError
from gateway.config.semantic import semantic_problems
from gateway.config.site import SiteConfig, site_model
from gateway.config.yamlpos import PosDict, format_path, iter_scalars
from gateway.driver import DriverConfig, PointSpec
from gateway.registry import DriverRegistry, load_registry
from gateway.rules import RuleConfig

__all__ = ["ConfigError", "LoadedSite", "Problem", "load_site"]

_MIN_REDACT = 4  # environment values shorter than this are not scrubbed from free text


@dataclass(frozen=True)
class LoadedSite:
    """A validated site file and what follows from it."""

    config: SiteConfig
    path: Path  # the site file (absolute)
    base_dir: Path  # its directory; relative paths in the file are relative to it
    data_dir: Path  # config.data_dir, resolved against base_dir
    points: list[PointSpec]  # every point of the enabled drivers, with devices[].points applied
    rules: list[RuleConfig]  # built-in and driver defaults, replaced by site rules of the same id
    from_env: frozenset[str]  # paths ('storage.timeseries.sink.token') of values from ${VAR}
    files: tuple[Path, ...]  # the site file and every file it includes

    def resolve(self, template: str) -> Path | str:
        """Replace ``{data_dir}``: a URL (``...://...``) stays a string, a file becomes a Path.

        A relative file path is taken relative to ``base_dir``.
        """
        return self.resolve_url(template) if "://" in template else self.resolve_path(template)

    def resolve_path(self, template: str) -> Path:
        path = Path(template.replace("{data_dir}", str(self.data_dir))).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def resolve_url(self, template: str) -> str:
        return template.replace("{data_dir}", str(self.data_dir))

    def device_kinds(self) -> dict[str, str]:
        """Device id -> kind (``'transformer'``, ...)."""
        return {d.id: d.kind.value for d in self.config.devices}


def load_site(
    path: Path,
    registry: DriverRegistry | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadedSite:
    """Read, check and validate a site file. Raises :class:`ConfigError` with every problem."""
    registry = load_registry() if registry is None else registry
    env = os.environ if env is None else env
    path = Path(os.path.abspath(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise UnreadableConfigError(
            [Problem(str(path), 0, 0, "", f"cannot read the site file: {why}")]
        ) from e
    reader = FileReader(env, path.parent)
    tree = reader.parse(path, text)
    problems = reader.problems
    if tree is None:
        raise ConfigError(problems)
    secrets = _env_values(tree)
    data = _versioned(tree, problems)
    config = _validate(data, registry, problems, path.parent) if data is not None else None
    if config is not None:
        problems.extend(semantic_problems(config, data))
    if problems or config is None:
        raise ConfigError([_redact(p, secrets) for p in problems])
    return LoadedSite(
        config=config,
        path=path,
        base_dir=path.parent,
        data_dir=_data_dir(config, path.parent),
        points=catalogue(config),
        rules=effective_rules(config),
        from_env=frozenset(
            format_path(p) for p, _v, m in iter_scalars(data) if m is not None and m.from_env
        ),
        files=tuple(dict.fromkeys(reader.files)),
    )


def _versioned(tree: PosDict, problems: list[Problem]) -> dict[str, Any] | None:
    """Check ``version:`` and migrate; ``None`` when the file cannot be read further."""
    current = current_version()
    if "version" not in tree:
        problems.append(
            Problem(
                tree.mark.file,
                tree.mark.line,
                tree.mark.column,
                "",
                "missing required key 'version'",
                f"add 'version: {current}' at the top of the file",
            )
        )
        tree.put("version", current, tree.mark, tree.mark)
        return tree
    version = tree["version"]
    mark = tree.value_marks["version"]
    if isinstance(version, bool) or not isinstance(version, int):
        problems.append(
            Problem(
                mark.file,
                mark.line,
                mark.column,
                "version",
                f"expected a whole number, got {describe(version)}",
                f"this gateway reads 'version: {current}'",
            )
        )
        tree["version"] = current
        return tree
    try:
        return migrate(tree, version)
    except MigrationError as e:
        problems.append(Problem(mark.file, mark.line, mark.column, "version", e.message, e.hint))
        return None


def _validate(
    tree: dict[str, Any], registry: DriverRegistry, problems: list[Problem], base_dir: Path
) -> SiteConfig | None:
    model = site_model(cast(tuple[type[DriverConfig], ...], registry.config_models()))
    type_problems, bad_drivers = driver_type_problems(tree, registry)
    problems.extend(type_problems)
    # A value an earlier check already reported (an unset ${VAR}) is not reported twice.
    seen = {(p.file, p.line, p.column) for p in problems}
    try:
        # Drivers resolve files named in their block (Modbus profiles) against base_dir.
        return model.model_validate(tree, context={"base_dir": base_dir})
    except ValidationError as e:
        for err in e.errors(include_url=False):
            loc = err["loc"]
            if len(loc) > 1 and loc[0] == "drivers" and loc[1] in bad_drivers:
                continue
            problem = explain_error(err, model, tree)
            if (problem.file, problem.line, problem.column) not in seen:
                problems.append(problem)
        return None


def catalogue(config: SiteConfig) -> list[PointSpec]:
    """The points of every enabled driver, with unit, deadband, heartbeat and
    description from ``devices[].points`` applied where the file sets them."""
    devices = config.device_map()
    out: list[PointSpec] = []
    for driver in config.drivers:
        if not driver.enabled:
            continue
        for spec in driver.points():
            device = devices.get(spec.device)
            override = device.points.get(spec.name) if device else None
            if override is not None:
                spec = PointSpec(
                    device=spec.device,
                    name=spec.name,
                    unit=override.unit or spec.unit,
                    deadband=spec.deadband if override.deadband is None else override.deadband,
                    heartbeat=spec.heartbeat
                    if override.heartbeat_s is None
                    else override.heartbeat_s,
                    description=override.description or spec.description,
                )
            out.append(spec)
    return out


def _data_dir(config: SiteConfig, base_dir: Path) -> Path:
    path = Path(config.data_dir).expanduser()
    return path if path.is_absolute() else base_dir / path


def _env_values(tree: Any) -> set[str]:
    return {
        v
        for _p, v, m in iter_scalars(tree)
        if m is not None and m.from_env and isinstance(v, str) and len(v) >= _MIN_REDACT
    }


def _redact(problem: Problem, secrets: set[str]) -> Problem:
    """Scrub any value that came from the environment out of a message (a safety net:
    the messages are built not to contain them in the first place)."""
    message, hint = problem.message, problem.hint
    for secret in secrets:
        message, hint = message.replace(secret, "***"), hint.replace(secret, "***")
    if (message, hint) == (problem.message, problem.hint):
        return problem
    return Problem(problem.file, problem.line, problem.column, problem.path, message, hint)
