"""Errors of the alarm manager.

Two families: :class:`AlarmConfigError` when the manager cannot be built as
configured (a topology cycle, a rule naming an unknown control room), and
:class:`AlarmActionError` when an operator action is refused. An action error
carries an i18n key and its fields, so the API and the ack page can show the
reason in the operator's language (``exc.text("zh-CN")``); ``str(exc)`` is
the English text.
"""

from __future__ import annotations

from typing import Any

from gateway.i18n import t

__all__ = [
    "ActionNotAllowed",
    "AlarmActionError",
    "AlarmConfigError",
    "AlarmError",
    "AlarmNotFound",
    "AlarmStoreUnavailable",
    "InvalidAction",
]


class AlarmError(Exception):
    """Base of every error of :mod:`gateway.alarms`."""


class AlarmConfigError(AlarmError, ValueError):
    """The alarm manager cannot be built as configured; the message says what to fix."""


class AlarmActionError(AlarmError):
    """An operator action (or a bus command) was refused; nothing was changed."""

    def __init__(self, key: str, /, **fields: Any) -> None:
        self.key = key
        self.fields = dict(fields)
        super().__init__(t(key, "en", **fields))

    def text(self, locale: str) -> str:
        """The reason in ``locale`` (``"zh-CN"`` or ``"en"``)."""
        return t(self.key, locale, **self.fields)


class AlarmNotFound(AlarmActionError):
    """No alarm with that id is known (it is normal, or it never existed)."""


class ActionNotAllowed(AlarmActionError):
    """The action does not apply to the alarm in its present state, or the role may not do it."""

    @property
    def reason(self) -> str:
        return str(self)


class InvalidAction(AlarmActionError):
    """The request itself is malformed: unknown action, missing reason, bad duration."""


class AlarmStoreUnavailable(AlarmActionError):
    """The event store cannot be written; the action was not taken (try again)."""
