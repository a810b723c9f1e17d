"""The live stream's messages as JSON text, rendered once and shared.

Fifty clients on one alarm transition cost one rendering, not fifty: seq'd
messages are cached by (seq, role) (events are masked per role, alarms are
the same for everyone), a point's reading is rendered once per reading
interval however many clients subscribe to it, and the clients of every
point share one ``readings`` message per interval. The shapes are the models of
:mod:`gateway.api.live.protocol` and the REST API's (``AlarmOut``,
``EventOut``, ``PointOut``).
"""

from __future__ import annotations

import json
import logging
import math

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from gateway.api.context import ApiContext
from gateway.api.live.hub import SeqMessage
from gateway.api.live.protocol import (
    AlarmMessage,
    ErrorMessage,
    EventMessage,
    PongMessage,
    SnapshotMessage,
    WelcomeMessage,
)
from gateway.api.points import PointMeta
from gateway.api.schemas.alarms import alarm_from_message, alarm_from_record
from gateway.api.schemas.events import event_out
from gateway.model import Alarm, Reading, Value, to_datetime

__all__ = ["PONG", "Renderer"]

log = logging.getLogger("gateway.api.live")

PONG = PongMessage().model_dump_json()
_NS = 1_000_000_000


class Renderer:
    def __init__(self, ctx: ApiContext, cache_size: int = 4_096) -> None:
        self.ctx = ctx
        self.cache_size = cache_size
        self._messages: dict[tuple[int, str], str] = {}
        self._tick = 0  # the tick the fragments were rendered for (age_s depends on it)
        self._fragments: dict[str, tuple[Reading, str]] = {}  # point -> its reading, rendered
        self._last: tuple[dict[str, Reading], int, str] | None = None  # the last message
        self._prefixes: dict[str, str] = {}  # point -> its constant JSON head

    # -- control messages -----------------------------------------------------
    @staticmethod
    def welcome(epoch: str, seq: int, resumed: bool) -> str:
        return WelcomeMessage(epoch=epoch, seq=seq, resumed=resumed).model_dump_json()

    @staticmethod
    def error(detail: str) -> str:
        return ErrorMessage(detail=detail).model_dump_json()

    def snapshot(self, seq: int) -> str:
        """The alarm records as they are now: call in the same step as the pull
        that gave ``seq``, so no transition slips between the two."""
        ctx = self.ctx
        alarms = []
        for rec in ctx.alerting.manager.records():
            try:
                alarms.append(alarm_from_record(ctx, rec))
            except ValidationError:
                log.exception("alarm %s left out of the live snapshot", rec.id)
        return SnapshotMessage(seq=seq, alarms=alarms).model_dump_json()

    # -- seq'd messages -------------------------------------------------------
    def message(self, seq: int, msg: SeqMessage, role: str) -> str:
        key = (seq, "" if isinstance(msg, Alarm) else role)
        text = self._messages.get(key)
        if text is None:
            try:
                text = self._render(seq, msg, role)
            except (ValidationError, PydanticSerializationError):
                # Skipped, not fatal: a message that cannot be rendered must not end
                # every stream (each reconnect would stop at it again).
                log.exception("live message %d (%s) cannot be rendered", seq, type(msg).__name__)
                skipped = ErrorMessage(detail="this message could not be rendered", seq=seq)
                text = skipped.model_dump_json()
            cache = self._messages
            cache[key] = text
            if len(cache) > self.cache_size:
                del cache[next(iter(cache))]  # the oldest rendering
        return text

    def _render(self, seq: int, msg: SeqMessage, role: str) -> str:
        if isinstance(msg, Alarm):
            return AlarmMessage(
                seq=seq,
                alarm=alarm_from_message(self.ctx, msg),
                transition=msg.transition,
                user=msg.user,
                note=msg.note,
            ).model_dump_json()
        return EventMessage(seq=seq, event=event_out(None, msg, role)).model_dump_json()

    # -- readings -------------------------------------------------------------
    def readings(self, readings: dict[str, Reading], now_ns: int) -> str:
        """A ``readings`` message; ``now_ns`` (the hub's tick) gives ``age_s``.

        The clients of every point get the same dict from the hub each
        interval: it is rendered once for all of them."""
        last = self._last
        if last is not None and last[0] is readings and last[1] == now_ns:
            return last[2]
        if now_ns != self._tick:
            self._tick = now_ns
            self._fragments = {}
        frags = self._fragments
        out = []
        for point, reading in readings.items():
            cached = frags.get(point)
            if cached is None or cached[0] is not reading:
                cached = frags[point] = (reading, self._render_point(reading, now_ns))
            out.append(cached[1])
        text = '{"type":"readings","readings":[' + ",".join(out) + "]}"
        self._last = (readings, now_ns, text)
        return text

    def _render_point(self, reading: Reading, now_ns: int) -> str:
        """``PointOut`` as JSON, by hand: the live stream renders thousands a
        second and pydantic costs ten times more here (the tests check that
        both give the same document)."""
        prefix = self._prefixes.get(reading.point)
        if prefix is None:
            meta = self.point_meta(reading.point)
            head = {
                "point": reading.point,
                "device": meta.device,
                "name": meta.name,
                "unit": meta.unit,
                "description": meta.description,
            }
            prefix = self._prefixes[reading.point] = _dumps(head)[:-1]
        try:
            ts = '"' + to_datetime(reading.ts).isoformat()[:-6] + 'Z"'
            age = repr(round((now_ns - reading.ts) / _NS, 3))
        except (OverflowError, ValueError, OSError):
            ts = age = "null"  # a driver's nonsense timestamp must not break the stream
        value = _value_json(reading.value)
        quality = reading.quality.value
        return f'{prefix},"value":{value},"quality":"{quality}","ts":{ts},"age_s":{age}}}'

    def point_meta(self, point: str) -> PointMeta:
        return self.ctx.points.meta(point)


def _dumps(doc: object) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _value_json(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"  # JSON has no NaN
    if isinstance(value, int):
        return str(value)
    return _dumps(str(value))
