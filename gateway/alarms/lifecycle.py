"""The ISA-18.2 state machine as pure functions over :class:`AlarmRecord`.

Each function takes a record (and what happened) and returns the new record
and the name of the transition (one of :data:`TRANSITIONS`), or raises an
:class:`~gateway.alarms.errors.AlarmActionError` subclass when an operator
action does not apply. Nothing here does I/O or reads a clock; the manager
decides when and stores the results.

States (derived, see :attr:`AlarmRecord.state`): active and unacknowledged ->
UNACKNOWLEDGED; active and acknowledged -> ACKNOWLEDGED; cleared and
unacknowledged -> RTN_UNACKNOWLEDGED; cleared and acknowledged -> NORMAL,
unless latched: a latching alarm stays until acknowledged AND reset.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.alarms.errors import ActionNotAllowed, InvalidAction
from gateway.alarms.record import AlarmRecord
from gateway.model import AlarmState, Priority
from gateway.rules.condition import ConditionChange, RuleInfo, alarm_id

__all__ = [
    "ACKNOWLEDGED",
    "ACTIVATED",
    "CHATTERING",
    "CLEARED",
    "COMMENT",
    "LEVEL_CHANGED",
    "OUT_OF_SERVICE",
    "PRIORITY_RANK",
    "REACTIVATED",
    "RESET",
    "RETURNED_TO_SERVICE",
    "SHELVED",
    "SHELVE_EXPIRED",
    "SUPPRESSED",
    "TRANSITIONS",
    "UNSHELVED",
    "UNSUPPRESSED",
    "acknowledge",
    "activate",
    "clear",
    "comment",
    "expire_shelve",
    "mark_annunciated",
    "remove_from_service",
    "reset",
    "return_to_service",
    "set_chattering",
    "set_suppression",
    "shelve",
    "unshelve",
]

ACTIVATED = "activated"
REACTIVATED = "reactivated"
LEVEL_CHANGED = "level_changed"
CLEARED = "cleared"
ACKNOWLEDGED = "acknowledged"
RESET = "reset"
SHELVED = "shelved"
UNSHELVED = "unshelved"
SHELVE_EXPIRED = "shelve_expired"
SUPPRESSED = "suppressed"
UNSUPPRESSED = "unsuppressed"
OUT_OF_SERVICE = "out_of_service"
RETURNED_TO_SERVICE = "returned_to_service"
COMMENT = "comment"
CHATTERING = "chattering"

TRANSITIONS: tuple[str, ...] = (
    ACTIVATED,
    REACTIVATED,
    LEVEL_CHANGED,
    CLEARED,
    ACKNOWLEDGED,
    RESET,
    SHELVED,
    UNSHELVED,
    SHELVE_EXPIRED,
    SUPPRESSED,
    UNSUPPRESSED,
    OUT_OF_SERVICE,
    RETURNED_TO_SERVICE,
    COMMENT,
    CHATTERING,
)

PRIORITY_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2, Priority.CRITICAL: 3}

Result = tuple[AlarmRecord, str]


def activate(
    rec: AlarmRecord | None, ch: ConditionChange, info: RuleInfo, *, latch_critical: bool
) -> Result | None:
    """The condition is (still) present. New alarm -> ``activated``; an existing
    cleared one -> ``reactivated`` (count + 1, unacknowledged again); an active
    one whose level or priority changed -> ``level_changed`` (a higher priority
    re-annunciates). A repeat of the same active condition -> None."""
    latch = info.latching or (latch_critical and ch.priority is Priority.CRITICAL)
    details: dict[str, Any] = {
        "level": ch.level,
        "value": ch.value,
        "limit": ch.limit,
        "unit": ch.unit,
        "data": dict(ch.data),
        "updated_ts": ch.ts,
        "priority": ch.priority,
        "category": str(info.category),
        "route": info.route,
        "control_room": info.control_room,
        "description": info.description,
    }
    if rec is None:
        new = AlarmRecord(
            id=alarm_id(ch.rule, ch.source),
            rule=ch.rule,
            source=ch.source,
            device=ch.device,
            active=True,
            acked=False,
            latched=latch,
            count=1,
            first_ts=ch.ts,
            activated_ts=ch.ts,
            **details,
        )
        return new, ACTIVATED
    if not rec.active:
        new = replace(
            rec,
            active=True,
            acked=False,
            annunciated=False,
            latched=rec.latched or latch,
            count=rec.count + 1,
            activated_ts=ch.ts,
            cleared_ts=None,
            acked_by="",
            acked_ts=None,
            orphan=False,
            **details,
        )
        return new, REACTIVATED
    if ch.level == rec.level and ch.priority == rec.priority:
        return None
    new = replace(rec, latched=rec.latched or latch, **details)
    if PRIORITY_RANK[ch.priority] > PRIORITY_RANK[rec.priority]:
        new = replace(new, acked=False, annunciated=False, acked_by="", acked_ts=None)
    return new, LEVEL_CHANGED


def clear(rec: AlarmRecord | None, ch: ConditionChange) -> Result | None:
    """The condition went away. An alarm that was hidden (shelved, suppressed,
    out of service) for its whole activation needs neither acknowledgement nor
    reset: nobody was shown it. A clear of an alarm that is not active -> None."""
    if rec is None or not rec.active:
        return None
    new = replace(
        rec,
        active=False,
        cleared_ts=ch.ts,
        updated_ts=ch.ts,
        value=ch.value if ch.value is not None else rec.value,
    )
    if rec.hidden and not rec.annunciated:
        new = replace(new, acked=True, latched=False)
    return new, CLEARED


def acknowledge(rec: AlarmRecord, user: str, ts: int) -> Result:
    if rec.acked:
        raise ActionNotAllowed("alarms.error.already_acked", id=rec.id)
    return replace(rec, acked=True, acked_by=user, acked_ts=ts, updated_ts=ts), ACKNOWLEDGED


def reset(rec: AlarmRecord, ts: int) -> Result:
    """Release a latched alarm: only once its condition is gone and it is
    acknowledged. An orphaned alarm (its rule was removed) can always be reset
    once acknowledged: nothing else will ever clear it."""
    if not rec.latched and not rec.orphan:
        raise ActionNotAllowed("alarms.error.not_latched", id=rec.id)
    if rec.active and not rec.orphan:
        raise ActionNotAllowed("alarms.error.still_active", id=rec.id)
    if not rec.acked:
        raise ActionNotAllowed("alarms.error.reset_unacked", id=rec.id)
    cleared_ts = rec.cleared_ts if not rec.active else ts
    return replace(rec, latched=False, active=False, cleared_ts=cleared_ts, updated_ts=ts), RESET


def shelve(rec: AlarmRecord, user: str, reason: str, until: int, ts: int) -> Result:
    """Shelve (or re-shelve with a new expiry); the manager checks the reason
    and the duration against the config."""
    if rec.out_of_service:
        raise ActionNotAllowed("alarms.error.is_out_of_service", id=rec.id)
    return (
        replace(
            rec, shelved_until=until, shelved_by=user, shelve_reason=reason.strip(), updated_ts=ts
        ),
        SHELVED,
    )


def unshelve(rec: AlarmRecord, ts: int) -> Result:
    if rec.shelved_until is None:
        raise ActionNotAllowed("alarms.error.not_shelved", id=rec.id)
    return _unshelved(rec, ts), UNSHELVED


def expire_shelve(rec: AlarmRecord, ts: int) -> Result:
    return _unshelved(rec, ts), SHELVE_EXPIRED


def _unshelved(rec: AlarmRecord, ts: int) -> AlarmRecord:
    return replace(rec, shelved_until=None, shelved_by="", shelve_reason="", updated_ts=ts)


def remove_from_service(rec: AlarmRecord, user: str, reason: str, ts: int) -> Result:
    """Out of service (a broken instrument): overrides shelving, which it ends."""
    if rec.out_of_service:
        raise ActionNotAllowed("alarms.error.already_out_of_service", id=rec.id)
    if not reason.strip():
        raise InvalidAction("alarms.error.reason_required", action=OUT_OF_SERVICE)
    new = replace(
        rec,
        out_of_service=True,
        oos_by=user,
        oos_reason=reason.strip(),
        shelved_until=None,
        shelved_by="",
        shelve_reason="",
        updated_ts=ts,
    )
    return new, OUT_OF_SERVICE


def return_to_service(rec: AlarmRecord, ts: int) -> Result:
    if not rec.out_of_service:
        raise ActionNotAllowed("alarms.error.not_out_of_service", id=rec.id)
    return replace(rec, out_of_service=False, oos_by="", oos_reason="", updated_ts=ts), (
        RETURNED_TO_SERVICE
    )


def comment(rec: AlarmRecord, note: str, ts: int) -> Result:
    if not note.strip():
        raise InvalidAction("alarms.error.note_required")
    return replace(rec, updated_ts=ts), COMMENT


def set_suppression(
    rec: AlarmRecord, by: tuple[str, ...], ts: int
) -> tuple[AlarmRecord, str | None]:
    """New suppression reasons; a transition only when suppression starts or ends."""
    if by == rec.suppressed_by:
        return rec, None
    new = replace(rec, suppressed_by=by, updated_ts=ts)
    if by and not rec.suppressed_by:
        return new, SUPPRESSED
    if not by:
        return new, UNSUPPRESSED
    return new, None


def set_chattering(rec: AlarmRecord, on: bool, ts: int) -> Result:
    return replace(rec, chattering=on, updated_ts=ts), CHATTERING


def mark_annunciated(rec: AlarmRecord) -> AlarmRecord:
    """Remember that the present activation is (now) shown to an operator."""
    if rec.state is AlarmState.UNACKNOWLEDGED and not rec.annunciated:
        return replace(rec, annunciated=True)
    return rec
