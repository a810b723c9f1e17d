"""Device profiles: reusable register maps a site file references by name.

A profile is ``<name>.yaml`` in a profiles directory::

    name: dry_type_tc            # must equal the file name
    kind: transformer            # the device kind it describes
    title: {en: ..., zh-CN: ...}
    description: what the device is, which models it fits
    source: where the map comes from (a vendor manual, a published map)
    order: ABCD                  # optional default byte/word order
    params: {rated_current_a: null}   # parameters; null = the site must give it
    points: {<name>: <point>, ...}    # as a device's points: in the site file
    derived: {<name>: <derived>, ...}
    limits: {<name>: {point, high, low, priority, description}}

Lookup: the site's ``profiles_dir`` (relative to the site file) first, then
the library shipped with the gateway (``config/profiles/`` of the source
tree). A site can therefore copy a profile, change it, and keep its name.
Every problem names the profile file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from drivers.modbus.config import LimitConfig, ModbusPointConfig
from drivers.modbus.datatypes import ByteOrder
from drivers.modbus.derived import DerivedSpec
from gateway.config.site import DeviceKind
from gateway.driver import StrictModel

__all__ = ["LIBRARY_DIR", "Profile", "ProfileError", "ProfileLibrary"]

LIBRARY_DIR = Path(__file__).resolve().parents[2] / "config" / "profiles"
"""The profiles shipped with the gateway."""


class ProfileError(ValueError):
    """A profile is missing or invalid (a ValueError: the site file's validation reports it)."""


class Profile(StrictModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Equals the file name.")
    kind: DeviceKind = Field(description="Kind of device the map describes.")
    title: dict[str, str] = Field(description="Display title per language (en, zh-CN).")
    description: str = Field(min_length=1, description="What the device is; which models fit.")
    source: str = Field(min_length=1, description="Where the register map comes from.")
    order: ByteOrder | None = Field(None, description="Default byte/word order.")
    params: dict[str, float | None] = Field(
        default_factory=dict, description="Device parameters; null: the site must give it."
    )
    points: dict[str, ModbusPointConfig] = Field(min_length=1)
    derived: dict[str, DerivedSpec] = Field(default_factory=dict)
    limits: dict[str, LimitConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _titles(self) -> Profile:
        missing = {"en", "zh-CN"} - set(self.title)
        if missing:
            raise ValueError(f"title needs {', '.join(sorted(missing))}")
        return self

    def defaults(self) -> dict[str, float]:
        """The parameters the profile gives a value."""
        return {k: v for k, v in self.params.items() if v is not None}


class ProfileLibrary:
    """Finds and parses profiles; each file is read once per library."""

    def __init__(self, dirs: Sequence[Path]) -> None:
        self.dirs = tuple(dirs)
        self._cache: dict[str, Profile] = {}

    @classmethod
    def for_site(cls, base_dir: Path | None, profiles_dir: str) -> ProfileLibrary:
        dirs: list[Path] = []
        if base_dir is not None:
            site_dir = Path(profiles_dir).expanduser()
            dirs.append(site_dir if site_dir.is_absolute() else base_dir / site_dir)
        if LIBRARY_DIR not in dirs:
            dirs.append(LIBRARY_DIR)
        return cls(dirs)

    def names(self) -> list[str]:
        """Every profile name found, first directory winning."""
        found: set[str] = set()
        for d in self.dirs:
            if d.is_dir():
                found.update(p.stem for p in d.glob("*.yaml"))
        return sorted(found)

    def path_of(self, name: str) -> Path:
        for d in self.dirs:
            candidate = d / f"{name}.yaml"
            if candidate.is_file():
                return candidate
        known = ", ".join(self.names()) or "none"
        where = ", ".join(str(d) for d in self.dirs)
        raise ProfileError(f"unknown profile {name!r} (looked in {where}; found: {known})")

    def load(self, name: str) -> Profile:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        path = self.path_of(name)
        profile = load_profile(path)
        if profile.name != name:
            raise ProfileError(f"profile {path}: name is {profile.name!r}, expected {name!r}")
        self._cache[name] = profile
        return profile


def load_profile(path: Path) -> Profile:
    """Parse and validate one profile file; :class:`ProfileError` names the file and key."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile {path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile {path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"profile {path}: expected a mapping at the top")
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(x) for x in err["loc"])
            lines.append(f"{loc}: {err['msg']}" if loc else err["msg"])
        raise ProfileError(f"profile {path}: " + "; ".join(lines)) from None
    _check_references(profile, path)
    return profile


def _check_references(profile: Profile, path: Path) -> None:
    names: set[str] = set()
    for name, point in profile.points.items():
        names.update(point.names(name))
    names.update(profile.derived)
    for name, d in profile.derived.items():
        for source in d.inputs:
            if source not in names:
                raise ProfileError(f"profile {path}: derived.{name}: unknown input {source!r}")
        if isinstance(d.rating, str) and d.rating not in profile.params:
            raise ProfileError(
                f"profile {path}: derived.{name}: rating names {d.rating!r}; declare it in params"
            )
    for name, limit in profile.limits.items():
        if limit.point not in names:
            raise ProfileError(f"profile {path}: limits.{name}: unknown point {limit.point!r}")
