"""Cross-reference checks on a validated site file.

Pydantic checks each block on its own; these checks look across blocks:
ids are unique, drivers name devices that exist, rules watch points that
some driver produces (or that ``devices[].points`` declares), and a limit
rule has a sensible high/low. Each problem points at the offending node.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

from gateway.alarms.topology import find_cycle
from gateway.config.effective import effective_rules
from gateway.config.explain import suggest
from gateway.config.problems import Problem
from gateway.config.site import SiteConfig
from gateway.config.yamlpos import Mark, format_path, iter_scalars, locate
from gateway.driver import PointSpec
from gateway.rules import RuleError, UnknownPointError, rule_problems

__all__ = ["semantic_problems"]


class _Checker:
    def __init__(self, config: SiteConfig, tree: Any) -> None:
        self.config = config
        self.tree = tree
        self.problems: list[Problem] = []

    def add(self, path: tuple[Any, ...], message: str, hint: str = "") -> None:
        found = locate(self.tree, path)
        mark = found.mark
        line, column, file = (mark.line, mark.column, mark.file) if mark else (0, 0, "")
        self.problems.append(Problem(file, line, column, format_path(path), message, hint))

    def shown(self, path: tuple[Any, ...], value: str) -> str:
        """``'value'``, or a placeholder if the value came from the environment."""
        mark = locate(self.tree, path).mark
        return "(from the environment)" if mark and mark.from_env else repr(value)

    def unique_ids(self, section: str, ids: list[str], what: str) -> None:
        first: dict[str, int] = {}
        for i, ident in enumerate(ids):
            if ident in first:
                at = _first_at(
                    locate(self.tree, (section, first[ident], "id")).mark,
                    locate(self.tree, (section, i, "id")).mark,
                )
                self.add(
                    (section, i, "id"),
                    f"duplicate {what} id {self.shown((section, i, 'id'), ident)} "
                    f"(first defined at {at})",
                    f"every {what} needs its own id",
                )
            else:
                first[ident] = i

    def driver_devices(self) -> None:
        known = self.config.device_map()
        for i, drv in enumerate(self.config.drivers):
            for device in dict.fromkeys(drv.devices()):
                if device in known:
                    continue
                path = self._find_value(("drivers", i), device)
                name = self.shown(("drivers", i, "id"), drv.id)
                self.add(
                    path,
                    f"driver {name} uses device {self.shown(path, device)}, "
                    "which is not defined under devices:",
                    suggest(device, known) + "add it under devices: or fix the id",
                )

    def _find_value(self, base: tuple[Any, ...], value: str) -> tuple[Any, ...]:
        """The path of the first scalar equal to ``value`` below ``base`` (else ``base``)."""
        node = locate(self.tree, base)
        if not node.complete:
            return base
        sub: Any = self.tree
        for part in base:
            sub = sub[part]
        for path, scalar, _mark in iter_scalars(sub, base):
            if scalar == value:
                return path
        return base

    def rules(self, produced: list[PointSpec]) -> None:
        """Every rule (driver defaults included) can be built: its points exist,
        its patterns match, combos refer to rules that exist, without loops."""
        declared = [f"{d.id}.{p}" for d in self.config.devices for p in d.points]
        known = list(dict.fromkeys([*(s.point for s in produced), *declared]))
        site_index = {r.id: i for i, r in enumerate(self.config.rules)}
        try:
            rules = effective_rules(self.config)
        except RuleError as e:
            self.add(("drivers",), e.reason, "fix the driver's default limit or its profile")
            return
        kinds = {d.id: d.kind.value for d in self.config.devices}
        concrete = sorted(p for p in known if "*" not in p)
        for err in rule_problems(rules, known_points=known, device_kinds=kinds):
            i = site_index.get(err.rule)
            path: tuple[Any, ...] = ("rules", i) if i is not None else ("drivers",)
            if i is not None and err.field:
                path = (*path, err.field)
            hint = ""
            plain = err.pattern and "*" not in err.pattern and "?" not in err.pattern
            if plain and "did you mean" not in err.reason:
                hint = suggest(err.pattern, concrete)
            if isinstance(err, UnknownPointError):
                hint += "declare it under devices[].points if a driver learns it at run time"
            self.add(path, f"rule {err.rule!r}: {err.reason}", hint)

    def channels(self) -> None:
        """Escalation levels name channels that notify.channels defines."""
        known = set(self.config.notify.channels)
        oncall = self.config.oncall
        uses: list[tuple[tuple[Any, ...], str]] = [
            (("oncall", "default_channels", i), name)
            for i, name in enumerate(oncall.default_channels)
        ]
        for key, policy in oncall.policies.items():
            for i, level in enumerate(policy.levels):
                uses += [
                    (("oncall", "policies", key, "levels", i, "channels", j), name)
                    for j, name in enumerate(level.channels)
                ]
        for path, name in uses:
            if name not in known:
                self.add(
                    path,
                    f"channel {name!r} is not defined under notify.channels",
                    suggest(name, known) + "define it, or fix the name",
                )

    def control_rooms(self) -> None:
        """Every rule names a control room that alarms.control_rooms lists."""
        rooms = self.config.alarms.control_rooms
        for i, rule in enumerate(self.config.rules):
            if rule.control_room not in rooms:
                self.add(
                    ("rules", i, "control_room"),
                    f"control room {rule.control_room!r} is not listed in alarms.control_rooms",
                    suggest(rule.control_room, rooms) + "add it there, or fix the name",
                )

    def upstream(self) -> None:
        """Every upstream names a known device other than itself, and no chain loops."""
        known = self.config.device_map()
        for i, dev in enumerate(self.config.devices):
            for j, up in enumerate(dev.upstream):
                path = ("devices", i, "upstream", j)
                if up == dev.id:
                    self.add(path, f"device {dev.id!r} lists itself as its upstream")
                elif up not in known:
                    self.add(
                        path,
                        f"upstream {self.shown(path, up)} of device {dev.id!r} is not defined "
                        "under devices:",
                        suggest(up, known) + "add it under devices: or fix the id",
                    )
        graph = {d.id: [u for u in d.upstream if u in known and u != d.id] for d in known.values()}
        loop = find_cycle(graph)
        if loop:
            i = next(i for i, d in enumerate(self.config.devices) if d.id == loop[0])
            self.add(
                ("devices", i, "upstream"),
                "upstream devices form a loop: " + " -> ".join(loop),
                "a device cannot depend on itself through others; remove one link",
            )

    def access(self, produced: list[PointSpec]) -> None:
        """Doors are door/gate/barrier devices, readers are card readers (or a
        plate camera at a vehicle door), relays and inputs name devices and
        points that exist."""
        devices = self.config.device_map()
        declared = {f"{d.id}.{p}" for d in self.config.devices for p in d.points}
        ids = list(devices)

        def kind_of(path: tuple[Any, ...], device: str, kinds: set[str], what: str) -> None:
            dev = devices.get(device)
            if dev is None:
                self.add(
                    path,
                    f"{what} {self.shown(path, device)} is not defined under devices:",
                    suggest(device, ids) + "add it under devices: or fix the id",
                )
            elif kinds and dev.kind.value not in kinds:
                self.add(
                    path,
                    f"{what} {device!r} is a device of kind {dev.kind.value!r}",
                    f"give it kind {' or '.join(sorted(kinds))}",
                )

        def point(path: tuple[Any, ...], name: str, what: str) -> None:
            device, _, rest = name.partition(".")
            if not rest:
                self.add(path, f"{what} {name!r} is not of the form '<device>.<point>'")
            elif device not in devices:
                kind_of(path, device, set(), f"device of {what}")
            elif name not in declared and not _produced(device, rest, produced):
                known = sorted(
                    {s.point for s in produced if s.device == device and "*" not in s.point}
                    | {p for p in declared if p.startswith(device + ".")}
                )
                self.add(
                    path,
                    f"{what} {name!r}: no driver produces this point",
                    suggest(name, known)
                    + "declare it under devices[].points if a driver learns it at run time",
                )

        for i, door in enumerate(self.config.access.doors):
            base: tuple[Any, ...] = ("access", "doors", i)
            kind_of((*base, "id"), door.id, {"door", "gate", "barrier"}, "door")
            reader_kinds = {"card_reader", "camera"} if door.vehicle else {"card_reader"}
            for j, r in enumerate(door.readers):
                kind_of((*base, "readers", j, "device"), r.device, reader_kinds, "reader")
            if door.relay is not None:
                kind_of((*base, "relay", "device"), door.relay.device, set(), "relay device")
                if door.relay.point is not None:
                    point((*base, "relay", "point"), door.relay.point, "relay point")
            for key in ("contact", "exit_button", "passages"):
                inp = getattr(door, key)
                if inp is None:
                    continue
                if inp.point is not None:
                    point((*base, key, "point"), inp.point, f"{key.replace('_', ' ')} point")
                if inp.device is not None:
                    kind_of((*base, key, "device"), inp.device, set(), f"{key} device")


def _first_at(first: Mark | None, here: Mark | None) -> str:
    if first is None:
        return "earlier"
    if here is not None and here.file == first.file:
        return f"line {first.line}"
    return f"{os.path.basename(first.file)}:{first.line}"


def _produced(device: str, name: str, produced: Iterable[PointSpec]) -> bool:
    return any(fnmatchcase(device, s.device) and fnmatchcase(name, s.name) for s in produced)


def semantic_problems(config: SiteConfig, tree: Any) -> list[Problem]:
    """Every cross-reference problem of a validated ``config`` (``tree``: its YAML)."""
    c = _Checker(config, tree)
    c.unique_ids("devices", [d.id for d in config.devices], "device")
    c.unique_ids("drivers", [d.id for d in config.drivers], "driver")
    c.unique_ids("rules", [r.id for r in config.rules], "rule")
    c.driver_devices()
    c.upstream()
    c.channels()
    c.control_rooms()
    produced = [spec for drv in config.drivers for spec in drv.points()]
    c.rules(produced)
    c.access(produced)
    return c.problems
