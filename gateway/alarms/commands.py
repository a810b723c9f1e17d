"""Operator commands from the bus: who may do what, and the parsing of their
arguments.

A :class:`~gateway.model.Command` with ``target="alarms"`` names an action
(:data:`ACTIONS`) and carries its arguments in ``args``:

=====================  ==============================================================
action                 args
=====================  ==============================================================
acknowledge            ``id``, ``note`` (optional)
reset                  ``id``, ``note`` (optional)
shelve                 ``id``, ``reason``, ``duration_s`` (or ``duration_min``)
unshelve               ``id``, ``note`` (optional)
comment                ``id``, ``note``
out_of_service         ``id``, ``reason``
return_to_service      ``id``, ``note`` (optional)
maintenance            ``device``, ``on`` (bool), ``reason`` (needed to switch on)
=====================  ==============================================================

:data:`ROLE_PERMISSIONS` is the role table. Shelving and taking out of
service hide an alarm from everyone, so they are limited further by the
alarm's category and priority: a guard may not hide fire or critical alarms,
an engineer may not hide fire alarms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gateway.alarms.errors import ActionNotAllowed, AlarmActionError, InvalidAction
from gateway.alarms.record import AlarmRecord, jsonable
from gateway.model import Alarm, Category, Command, Event, Priority

__all__ = [
    "ACTIONS",
    "COMMAND_REFUSED",
    "HIDING_ACTIONS",
    "ROLE_PERMISSIONS",
    "CommandOutcome",
    "ParsedCommand",
    "RolePermission",
    "authorize",
    "check_scope",
    "parse_command",
    "refusal_event",
]

ACTIONS: tuple[str, ...] = (
    "acknowledge",
    "reset",
    "shelve",
    "unshelve",
    "comment",
    "out_of_service",
    "return_to_service",
    "maintenance",
)
HIDING_ACTIONS = frozenset({"shelve", "out_of_service"})
COMMAND_REFUSED = "alarm.command_refused"


@dataclass(frozen=True, slots=True)
class RolePermission:
    """What one role may do."""

    actions: frozenset[str]
    hide_fire: bool = False  # may shelve / take out of service fire alarms
    hide_critical: bool = False  # may shelve / take out of service critical alarms


_GUARD = frozenset({"acknowledge", "comment", "shelve", "unshelve"})
_ENGINEER = _GUARD | {"reset", "out_of_service", "return_to_service", "maintenance"}

ROLE_PERMISSIONS: Mapping[str, RolePermission] = MappingProxyType(
    {
        "viewer": RolePermission(frozenset()),
        "guard": RolePermission(_GUARD),
        "engineer": RolePermission(_ENGINEER, hide_critical=True),
        "supervisor": RolePermission(frozenset(ACTIONS), hide_fire=True, hide_critical=True),
        "admin": RolePermission(frozenset(ACTIONS), hide_fire=True, hide_critical=True),
        "oncall": RolePermission(frozenset({"acknowledge"})),  # the signed link in a message
    }
)


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What :meth:`AlarmManager.handle_command` did: the announced transitions,
    or the refusal (also stored as an ``alarm.command_refused`` event)."""

    ok: bool
    alarms: tuple[Alarm, ...] = ()
    error: AlarmActionError | None = None


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    action: str
    id: str = ""
    device: str = ""
    on: bool = False
    note: str = ""
    reason: str = ""
    duration_s: float = 0.0


def authorize(role: str, action: str) -> RolePermission:
    """The role's permission, or ActionNotAllowed when it may not do ``action`` at all."""
    perm = ROLE_PERMISSIONS.get(role)
    if perm is None:
        raise ActionNotAllowed("alarms.error.unknown_role", role=role or "-")
    if action not in perm.actions:
        raise ActionNotAllowed("alarms.error.role", role=role, action=action)
    return perm


def check_scope(role: str, perm: RolePermission, action: str, rec: AlarmRecord) -> None:
    """Refuse hiding an alarm the role may not hide."""
    if action not in HIDING_ACTIONS:
        return
    fire = rec.category == Category.FIRE.value
    critical = rec.priority is Priority.CRITICAL
    if (fire and not perm.hide_fire) or (critical and not perm.hide_critical):
        raise ActionNotAllowed(
            "alarms.error.role_scope",
            role=role,
            action=action,
            category=rec.category,
            priority=rec.priority.value,
            id=rec.id,
        )


def parse_command(cmd: Command) -> ParsedCommand:
    """Validate the target, the action and its arguments (InvalidAction if wrong)."""
    if cmd.target != "alarms":
        raise InvalidAction("alarms.error.wrong_target", target=cmd.target)
    if cmd.action not in ACTIONS:
        raise InvalidAction(
            "alarms.error.unknown_action", action=cmd.action, actions=", ".join(ACTIONS)
        )
    args = cmd.args if isinstance(cmd.args, Mapping) else {}
    if cmd.action == "maintenance":
        on = args.get("on")
        if not isinstance(on, bool):
            raise InvalidAction("alarms.error.bad_argument", name="on")
        return ParsedCommand(
            "maintenance",
            device=_text(args, "device", required=True),
            on=on,
            reason=_text(args, "reason"),
        )
    parsed = ParsedCommand(
        cmd.action,
        id=_text(args, "id", required=True),
        note=_text(args, "note"),
        reason=_text(args, "reason"),
    )
    if cmd.action == "shelve":
        return ParsedCommand(
            parsed.action,
            id=parsed.id,
            note=parsed.note,
            reason=parsed.reason,
            duration_s=_duration(args),
        )
    return parsed


def _text(args: Mapping[str, Any], name: str, *, required: bool = False) -> str:
    value = args.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidAction("alarms.error.bad_argument", name=name)
    return value


def _duration(args: Mapping[str, Any]) -> float:
    if "duration_s" in args:
        value, scale = args["duration_s"], 1.0
    elif "duration_min" in args:
        value, scale = args["duration_min"], 60.0
    else:
        raise InvalidAction("alarms.error.bad_argument", name="duration_s")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidAction("alarms.error.bad_argument", name="duration_s")
    return float(value) * scale


def refusal_event(cmd: Command, exc: AlarmActionError, rec: AlarmRecord | None, ts: int) -> Event:
    """The ``alarm.command_refused`` event of a refused command: who asked, from
    where, what, and why (English text plus the i18n key and fields)."""
    args = cmd.args if isinstance(cmd.args, Mapping) else {}
    source = rec.source if rec is not None else str(args.get("device") or "alarms")
    return Event(
        COMMAND_REFUSED,
        source[:255] or "alarms",
        ts,
        jsonable(
            {
                "command_id": cmd.id,
                "target": cmd.target,
                "action": cmd.action,
                "alarm": rec.id if rec is not None else args.get("id", ""),
                "user": cmd.user,
                "role": cmd.role,
                "origin": cmd.origin,
                "error": type(exc).__name__,
                "reason": str(exc),
                "reason_key": exc.key,
                "reason_fields": exc.fields,
            }
        ),
    )
