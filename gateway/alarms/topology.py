"""Device topology: which devices feed which, for inhibition by a parent outage.

The site's devices name their ``upstream:`` (a feeder, a switch, the gateway
link). When an upstream device is down, its dependants' offline and low-value
alarms are suppressed by design. The relation is transitive (a feeder feeds a
switch that feeds a sensor) and must not loop; a loop is refused when the
manager is built, naming the devices on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.alarms.errors import AlarmConfigError

__all__ = ["Topology", "find_cycle"]


class Topology:
    """Transitive upstream and dependant sets, computed once at construction."""

    def __init__(self, upstream: Mapping[str, Sequence[str]]) -> None:
        direct: dict[str, tuple[str, ...]] = {}
        for device, ups in upstream.items():
            if not isinstance(device, str) or not device:
                raise AlarmConfigError(f"upstream: device id {device!r} must be a non-empty str")
            if isinstance(ups, str):
                raise AlarmConfigError(
                    f"upstream of {device!r} must be a list of device ids, got the string {ups!r}"
                )
            for up in ups:
                if not isinstance(up, str) or not up:
                    raise AlarmConfigError(
                        f"upstream of {device!r}: {up!r} is not a device id (a non-empty str)"
                    )
            direct[device] = tuple(dict.fromkeys(ups))
        _refuse_cycles(direct)
        closure: dict[str, frozenset[str]] = {}
        for device in direct:
            _close(device, direct, closure)
        self._upstream = closure
        dependants: dict[str, set[str]] = {}
        for device, ups_of in closure.items():
            for up in ups_of:
                dependants.setdefault(up, set()).add(device)
        self._dependants = {d: frozenset(s) for d, s in dependants.items()}

    def upstream_of(self, device: str) -> frozenset[str]:
        """Every device ``device`` depends on, directly or through others."""
        return self._upstream.get(device, frozenset())

    def dependants_of(self, device: str) -> frozenset[str]:
        """Every device that depends on ``device``, directly or through others."""
        return self._dependants.get(device, frozenset())


def _close(
    device: str, direct: Mapping[str, tuple[str, ...]], closure: dict[str, frozenset[str]]
) -> frozenset[str]:
    done = closure.get(device)
    if done is not None:
        return done
    # Iterative post-order walk (deep feeder chains must not hit the recursion limit).
    stack: list[tuple[str, int]] = [(device, 0)]
    while stack:
        node, i = stack.pop()
        ups = direct.get(node, ())
        if i < len(ups):
            stack.append((node, i + 1))
            if ups[i] not in closure:
                stack.append((ups[i], 0))
            continue
        acc: set[str] = set()
        for up in ups:
            acc.add(up)
            acc |= closure[up]
        closure[node] = frozenset(acc)
    return closure[device]


def find_cycle(direct: Mapping[str, Sequence[str]]) -> list[str]:
    """A loop of ``upstream`` links, closed (``[a, b, a]``), or ``[]`` when there
    is none. Roots are taken in sorted order, so the answer is stable."""
    white, grey, black = 0, 1, 2
    colour: dict[str, int] = {}
    for root in sorted(direct):
        if colour.get(root, white) != white:
            continue
        path: list[str] = [root]
        colour[root] = grey
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, i = stack.pop()
            ups = direct.get(node, ())
            if i == len(ups):
                colour[node] = black
                path.pop()
                continue
            stack.append((node, i + 1))
            nxt = ups[i]
            state = colour.get(nxt, white)
            if state == grey:
                return [*path[path.index(nxt) :], nxt]
            if state == white:
                colour[nxt] = grey
                path.append(nxt)
                stack.append((nxt, 0))
    return []


def _refuse_cycles(direct: Mapping[str, tuple[str, ...]]) -> None:
    loop = find_cycle(direct)
    if loop:
        raise AlarmConfigError(
            "device topology has a cycle: "
            + " -> ".join(loop)
            + " (each arrow reads 'is fed by'); a device cannot be upstream of itself, "
            "remove one of these upstream entries"
        )
