"""The roles of the control room, in rank order.

A route asks for a minimum role (``require_role("guard")``); the alarm
manager's own table (:data:`gateway.alarms.ROLE_PERMISSIONS`) then refines
what each role may do to a given alarm (a guard may not shelve a fire alarm).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["ROLES", "Role", "at_least", "rank"]

Role = Literal["viewer", "guard", "engineer", "supervisor", "admin"]
ROLES: tuple[str, ...] = get_args(Role)


def rank(role: str) -> int:
    """0 for viewer up to 4 for admin; -1 for anything else (no rights at all)."""
    try:
        return ROLES.index(role)
    except ValueError:
        return -1


def at_least(role: str, minimum: str) -> bool:
    if minimum not in ROLES:
        raise ValueError(f"unknown role {minimum!r}; use one of {', '.join(ROLES)}")
    return rank(role) >= rank(minimum)
