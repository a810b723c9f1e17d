"""Access control: doors, readers, credentials, passages and their supervision.

The parts, each in its own module:

- :mod:`~gateway.access.config`: the ``access:`` block of the site file;
- :mod:`~gateway.access.cards`: canonical card values, keyed hashes, masking;
- :mod:`~gateway.access.credentials`, :mod:`~gateway.access.presence`,
  :mod:`~gateway.access.profiles`, :mod:`~gateway.access.decision`: who may
  pass where and when, decided in memory;
- :mod:`~gateway.access.visitors`, :mod:`~gateway.access.csvio`: visitor QR
  passes, credential import and export;
- :mod:`~gateway.access.passages`, :mod:`~gateway.access.report`: the passage
  log and the daily report;
- :mod:`~gateway.access.supervision`, :mod:`~gateway.access.rules`: forced and
  held doors, tailgating, and the default alarm rules;
- :mod:`~gateway.access.service`: the service the gateway runs
  (``Gateway.access``).
"""

from __future__ import annotations

from gateway.access.cards import CardHasher, canonical_plate, canonical_uid, mask_value
from gateway.access.config import AccessConfig, DoorConfig
from gateway.access.credentials import Credential, CredentialIndex, CredentialStore
from gateway.access.decision import CardRead, Decider, Decision, Reason
from gateway.access.passages import Passage, PassageLog
from gateway.access.presence import Presence, PresenceEntry
from gateway.access.report import DailyReport, DoorDay, daily_report, render_text
from gateway.access.rules import default_rules
from gateway.access.service import AccessService, AccessServiceError
from gateway.access.supervision import DoorSupervisor

__all__ = [
    "AccessConfig",
    "AccessService",
    "AccessServiceError",
    "CardHasher",
    "CardRead",
    "Credential",
    "CredentialIndex",
    "CredentialStore",
    "DailyReport",
    "Decider",
    "Decision",
    "DoorConfig",
    "DoorDay",
    "DoorSupervisor",
    "Passage",
    "PassageLog",
    "Presence",
    "PresenceEntry",
    "Reason",
    "canonical_plate",
    "canonical_uid",
    "daily_report",
    "default_rules",
    "mask_value",
    "render_text",
]
