"""The points the API knows: units and descriptions, from the drivers'
point lists and the site file's ``devices[].points`` (which win), plus
points a wildcard driver spec only learns at run time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gateway.config.loader import LoadedSite

__all__ = ["PointCatalog", "PointMeta"]


@dataclass(frozen=True, slots=True)
class PointMeta:
    device: str
    name: str
    unit: str
    description: str

    @property
    def point(self) -> str:
        return f"{self.device}.{self.name}"


class PointCatalog:
    def __init__(self, site: LoadedSite) -> None:
        self.known: dict[str, PointMeta] = {}  # exact names, in site order
        self.wildcards: list[PointMeta] = []
        for spec in site.points:
            meta = PointMeta(spec.device, spec.name, spec.unit, spec.description)
            if "*" in spec.device or "*" in spec.name:
                self.wildcards.append(meta)
            else:
                self.known[spec.point] = meta
        for dev in site.config.devices:
            for name, cfg in dev.points.items():
                point = f"{dev.id}.{name}"
                before = self.known.get(point)
                self.known[point] = PointMeta(
                    dev.id,
                    name,
                    cfg.unit or (before.unit if before else ""),
                    cfg.description or (before.description if before else ""),
                )
        self._learned: dict[str, PointMeta] = {}

    def meta(self, point: str) -> PointMeta:
        """The point's unit and description ('' when nothing declares them)."""
        found = self.known.get(point) or self._learned.get(point)
        if found is None:
            device, _, name = point.partition(".")
            found = PointMeta(device, name, "", "")
            for w in self.wildcards:
                if fnmatchcase(device, w.device) and fnmatchcase(name, w.name):
                    found = PointMeta(device, name, w.unit, w.description)
                    break
            self._learned[point] = found
        return found

    def listing(self, seen: Iterable[str]) -> dict[str, PointMeta]:
        """Every point to list: the declared ones, then those of ``seen`` (live
        points) that a wildcard spec covers, by name."""
        out = dict(self.known)
        if self.wildcards:
            for point in sorted(set(seen) - set(out)):
                device, _, name = point.partition(".")
                if any(
                    fnmatchcase(device, w.device) and fnmatchcase(name, w.name)
                    for w in self.wildcards
                ):
                    out[point] = self.meta(point)
        return out
