"""The messages of the live stream (``GET /api/v1/live``, WebSocket), both ways.

Client -> server, one JSON object per text frame::

    {"type": "hello", "resume": {"epoch": "...", "seq": 41} | null, "points": ["tx1.*"]}
    {"type": "subscribe", "points": ["*.temp", "pump1.pressure"]}   # replaces the list
    {"type": "ping"}

``hello`` must be the first message. Server -> client: ``welcome``, then a
``snapshot`` unless resumed; then ``alarm`` and ``event`` messages with
consecutive ``seq`` numbers, ``readings`` (no seq, coalesced: the latest per
point), ``pong``, and ``error`` for a message the server could not use (the
connection stays open; nothing the client sent before is affected).

Close codes: 1001 the gateway is stopping; 4400 the first message was not a
valid ``hello``; 4401 not authenticated (or the session/token has ended: the
server accepts the handshake and then closes, so a browser can see the code);
4403 a cookie sent from another origin; 4408 no ``hello`` in time.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gateway.api.schemas.alarms import AlarmOut
from gateway.api.schemas.devices import PointOut
from gateway.api.schemas.events import EventOut

__all__ = [
    "BAD_HELLO",
    "FORBIDDEN_ORIGIN",
    "HELLO_TIMEOUT",
    "MAX_MESSAGE_CHARS",
    "MAX_PATTERNS",
    "UNAUTHENTICATED",
    "AlarmMessage",
    "ClientMessage",
    "ErrorMessage",
    "EventMessage",
    "HelloIn",
    "PingIn",
    "PongMessage",
    "ProtocolError",
    "ReadingsMessage",
    "ResumeIn",
    "SnapshotMessage",
    "SubscribeIn",
    "WelcomeMessage",
    "parse_client_message",
]

BAD_HELLO = 4400
UNAUTHENTICATED = 4401
FORBIDDEN_ORIGIN = 4403
HELLO_TIMEOUT = 4408

MAX_PATTERNS = 1_000
MAX_MESSAGE_CHARS = 64_000


class ProtocolError(ValueError):
    """A client message the server cannot use; the text says why."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


Pattern = Annotated[str, Field(min_length=1, max_length=200)]
Points = Annotated[
    list[Pattern],
    Field(
        max_length=MAX_PATTERNS,
        description="Point names or globs ('tx1.*', '*' for all); replaces the previous list.",
    ),
]


class ResumeIn(_In):
    epoch: str = Field(max_length=64, description="The epoch of the last welcome.")
    seq: int = Field(ge=0, description="The last seq the client received.")


class HelloIn(_In):
    type: Literal["hello"]
    resume: ResumeIn | None = None
    points: Points = Field(default_factory=list)


class SubscribeIn(_In):
    type: Literal["subscribe"]
    points: Points


class PingIn(_In):
    type: Literal["ping"]


ClientMessage = Annotated[HelloIn | SubscribeIn | PingIn, Field(discriminator="type")]
_client_message: TypeAdapter[HelloIn | SubscribeIn | PingIn] = TypeAdapter(ClientMessage)


def parse_client_message(text: str) -> HelloIn | SubscribeIn | PingIn:
    """The message in ``text``; raises :class:`ProtocolError` with a short reason."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise ProtocolError(f"message longer than {MAX_MESSAGE_CHARS} characters")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProtocolError(f"not JSON: {e.msg} at character {e.pos}") from None
    if not isinstance(doc, dict) or "type" not in doc:
        raise ProtocolError("expected an object with a 'type': hello, subscribe or ping")
    try:
        return _client_message.validate_python(doc)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProtocolError(f"{where}: {first['msg']}" if where else first["msg"]) from None


# -- server -> client (documentation and rendering) ----------------------------


class WelcomeMessage(BaseModel):
    type: Literal["welcome"] = "welcome"
    epoch: str = Field(description="Changes when the gateway restarts; send it back to resume.")
    seq: int = Field(description="The newest seq when the stream started.")
    resumed: bool = Field(description="True: what was missed follows; false: a snapshot follows.")


class SnapshotMessage(BaseModel):
    type: Literal["snapshot"] = "snapshot"
    seq: int = Field(description="The alarms as of this seq; later transitions follow.")
    alarms: list[AlarmOut]


class AlarmMessage(BaseModel):
    type: Literal["alarm"] = "alarm"
    seq: int
    alarm: AlarmOut
    transition: str = Field(description="activated, cleared, acknowledged, shelved ...")
    user: str
    note: str


class EventMessage(BaseModel):
    type: Literal["event"] = "event"
    seq: int
    event: EventOut


class ReadingsMessage(BaseModel):
    type: Literal["readings"] = "readings"
    readings: list[PointOut] = Field(description="The latest reading of each point that changed.")


class PongMessage(BaseModel):
    type: Literal["pong"] = "pong"


class ErrorMessage(BaseModel):
    type: Literal["error"] = "error"
    detail: str
    seq: int | None = Field(
        None, description="Set when a seq'd message could not be rendered (it is skipped)."
    )
