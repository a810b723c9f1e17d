"""ISA-18.2 alarm management: lifecycle, persistence, chattering, floods,
inhibition by topology and maintenance, and EEMUA 191 figures.

The rule engine (:mod:`gateway.rules`) reports condition changes; the
:class:`AlarmManager` turns them and operator actions into alarm transitions,
stores each one in the event store and only then publishes it as a
:class:`gateway.model.Alarm`.
"""

from gateway.alarms.commands import (
    ACTIONS,
    COMMAND_REFUSED,
    ROLE_PERMISSIONS,
    CommandOutcome,
    RolePermission,
)
from gateway.alarms.config import (
    AlarmsConfig,
    ChatteringConfig,
    FloodConfig,
    ShelveConfig,
    StoreRetryConfig,
)
from gateway.alarms.errors import (
    ActionNotAllowed,
    AlarmActionError,
    AlarmConfigError,
    AlarmError,
    AlarmNotFound,
    AlarmStoreUnavailable,
    InvalidAction,
)
from gateway.alarms.kpi import (
    BadActor,
    ChatteringAlarm,
    KpiFigures,
    PriorityShare,
    RoomRate,
    StaleAlarm,
    compute_kpis,
    render_text,
)
from gateway.alarms.lifecycle import TRANSITIONS
from gateway.alarms.manager import AlarmManager
from gateway.alarms.record import AlarmRecord
from gateway.alarms.topology import Topology
from gateway.alarms.trackers import FloodState

__all__ = [
    "ACTIONS",
    "COMMAND_REFUSED",
    "ROLE_PERMISSIONS",
    "TRANSITIONS",
    "ActionNotAllowed",
    "AlarmActionError",
    "AlarmConfigError",
    "AlarmError",
    "AlarmManager",
    "AlarmNotFound",
    "AlarmRecord",
    "AlarmStoreUnavailable",
    "AlarmsConfig",
    "BadActor",
    "ChatteringAlarm",
    "ChatteringConfig",
    "CommandOutcome",
    "FloodConfig",
    "FloodState",
    "InvalidAction",
    "KpiFigures",
    "PriorityShare",
    "RolePermission",
    "RoomRate",
    "ShelveConfig",
    "StaleAlarm",
    "StoreRetryConfig",
    "Topology",
    "compute_kpis",
    "render_text",
]
