"""Access controllers and ANPR cameras that publish to MQTT (``type: card_mqtt``).

The broker layer is the MQTT ingest's (drivers/mqtt/connection.py): same
client settings, TLS, jittered reconnect, and the broker is device ``<driver
id>`` in the health (``device.offline`` with the reason while it is away).
Messages are mapped by :class:`~drivers.cards.push_map.EventMap`; a bad one
is counted and reported as ``mqtt.malformed`` (at most one event per topic
per minute, by the ingest's :class:`~drivers.mqtt.malformed.MalformedReporter`)
and the next one is mapped as usual.

Commands (``feedback``, ``pulse``) to a device of this driver are published
as JSON on ``commands.topic``; ``command.result`` says ``done`` once the
broker accepted the message (QoS 1: its PUBACK), ``failed`` when the broker
is away (a door must not open minutes later, so nothing is queued) and
``refused`` for an action or arguments this driver cannot send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiomqtt
from pydantic import Field, field_validator, model_validator

from drivers.cards import events as ev
from drivers.cards.push_config import PushDriverConfig, check_mqtt_entries
from drivers.cards.push_map import EventMap, MapResult, command_result
from drivers.mqtt.config import BrokerConfig
from drivers.mqtt.connection import (
    Backoff,
    MqttDriverError,
    check_cancelled,
    connect_reason,
    make_client,
    tls_context,
)
from drivers.mqtt.malformed import MalformedReporter
from drivers.mqtt.mapping import validate_topic_name
from drivers.mqtt.topics import level
from gateway.driver import Driver, DriverContext, StrictModel
from gateway.model import Command

__all__ = [
    "CommandError",
    "CommandsConfig",
    "ControllerStats",
    "MqttControllerConfig",
    "MqttControllerDriver",
    "render_command",
]

_NAME = re.compile(r"\{(\w+)\}")
_TOPIC_NAMES = frozenset({"device", "name"})
_PAYLOAD_NAMES = _TOPIC_NAMES | {"action", "id", "result", "output", "seconds"}
SUMMARY_INTERVAL_S = 60.0

_DEFAULT_PAYLOADS: dict[str, dict[str, Any]] = {
    ev.COMMAND_FEEDBACK: {
        "action": "feedback",
        "result": "{result}",
        "seconds": "{seconds}",
        "id": "{id}",
    },
    ev.COMMAND_PULSE: {
        "action": "pulse",
        "output": "{output}",
        "seconds": "{seconds}",
        "id": "{id}",
    },
}


class CommandError(MqttDriverError):
    """A command this driver will not send; the message says why (``refused``)."""


def _names(template: Any) -> set[str]:
    if isinstance(template, str):
        return set(_NAME.findall(template))
    if isinstance(template, dict):
        return set().union(*(_names(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(_names(v) for v in template)) if template else set()
    return set()


class CommandsConfig(StrictModel):
    topic: str = Field(
        description="Topic to publish a command on; '{device}' is our device id, "
        "'{name}' the controller's name for it (its key in the devices table, else our id), "
        "e.g. 'ctrl/{name}/cmd'."
    )
    qos: Literal[0, 1, 2] = Field(1, description="QoS of command messages.")
    payloads: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: dict(_DEFAULT_PAYLOADS),
        description="JSON sent per action. A text that is exactly '{name}' becomes the value "
        "with its type (number, null); inside other text it is written as text. Names: "
        "device, name, action, id, result (grant/deny), output, seconds. An action "
        "left out is refused.",
    )

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        bad = _names(v) - _TOPIC_NAMES
        if bad:
            raise ValueError(f"commands.topic: unknown placeholder {{{sorted(bad)[0]}}}")
        validate_topic_name(_NAME.sub("x", v), "commands.topic")
        return v

    @field_validator("payloads")
    @classmethod
    def _payload_names(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for action, template in v.items():
            if action not in _DEFAULT_PAYLOADS:
                raise ValueError(f"payloads.{action}: only feedback and pulse are commands")
            bad = _names(template) - _PAYLOAD_NAMES
            if bad:
                raise ValueError(f"payloads.{action}: unknown placeholder {{{sorted(bad)[0]}}}")
        return v


class MqttControllerConfig(PushDriverConfig):
    type: Literal["card_mqtt"] = Field(
        description="Access controllers and ANPR cameras publishing JSON events to MQTT."
    )
    broker: BrokerConfig = Field(description="The broker the controllers publish to.")
    qos: Literal[0, 1, 2] = Field(1, description="QoS of the subscriptions to the events' topics.")
    commands: CommandsConfig | None = Field(
        None, description="Where feedback/pulse commands are published (omit: refused)."
    )

    @model_validator(mode="after")
    def _compiles(self) -> MqttControllerConfig:
        check_mqtt_entries(self.events)
        EventMap(self.events, self.device_table, "mqtt")  # raises ValueError with the entry
        return self


def _number(args: Mapping[str, Any], key: str, default: float | None) -> float | None:
    v = args.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 3600:
        raise CommandError(f"'{key}' must be a positive number of seconds, got {v!r}")
    return float(v)


def _fill(template: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(template, str):
        whole = _NAME.fullmatch(template)
        if whole is not None:
            return values.get(whole.group(1))
        return _NAME.sub(lambda m: "" if values[m[1]] is None else str(values[m[1]]), template)
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    return template


def render_command(cfg: CommandsConfig, cmd: Command, name: str) -> tuple[str, bytes]:
    """(topic, JSON payload) for one command; raises :class:`CommandError`."""
    template = cfg.payloads.get(cmd.action)
    if template is None:
        raise CommandError(f"action {cmd.action!r} is not configured under commands.payloads")
    values: dict[str, Any] = {
        "device": cmd.target,
        "name": name,
        "action": cmd.action,
        "id": cmd.id,
        "result": None,
        "output": None,
        "seconds": None,
    }
    if cmd.action == ev.COMMAND_FEEDBACK:
        result = cmd.args.get("result")
        if result not in ("grant", "deny"):
            raise CommandError(f"'result' must be 'grant' or 'deny', got {result!r}")
        values["result"] = result
        values["seconds"] = _number(cmd.args, "seconds", None)
    else:
        output = cmd.args.get("output", 0)
        if isinstance(output, bool) or not isinstance(output, int) or output < 0:
            raise CommandError(f"'output' must be a whole number >= 0, got {output!r}")
        values["output"] = output
        values["seconds"] = _number(cmd.args, "seconds", None)
        if values["seconds"] is None:
            raise CommandError("'seconds' is required for pulse")
    topic = _NAME.sub(lambda m: level(str(values[m[1]])), cfg.topic)
    payload = json.dumps(_fill(template, values), ensure_ascii=False, separators=(",", ":"))
    return topic, payload.encode()


@dataclass(frozen=True, slots=True)
class ControllerStats:
    received: int  # messages taken from the broker
    events: int  # mapped events emitted
    malformed: int  # messages with at least one problem
    ignored: int  # messages that fit no entry's `when`
    commands_done: int
    commands_refused: int
    commands_failed: int
    reconnects: int
    connected: bool


class MqttControllerDriver(Driver):
    config_model = MqttControllerConfig

    def __init__(self, config: MqttControllerConfig) -> None:
        super().__init__(config)
        self.config: MqttControllerConfig = config
        self._map = EventMap(config.events, config.device_table, "mqtt")
        self._topics: list[tuple[str, int]] = [
            (t, config.qos) for t in dict.fromkeys(e.match for e in config.events)
        ]
        self._names = {dev: key for key, dev in reversed(config.device_table.items())}
        self._client: aiomqtt.Client | None = None
        self._counts = dict.fromkeys(
            ("received", "events", "malformed", "ignored", "done", "refused", "failed"), 0
        )
        self._connects = 0

    def stats(self) -> ControllerStats:
        c = self._counts
        return ControllerStats(
            c["received"],
            c["events"],
            c["malformed"],
            c["ignored"],
            c["done"],
            c["refused"],
            c["failed"],
            max(0, self._connects - 1),
            self._client is not None,
        )

    async def run(self, ctx: DriverContext) -> None:
        cfg = self.config
        reporter = MalformedReporter(cfg.id, ctx.clock, ctx.log)
        helpers = [
            asyncio.create_task(self._commands(ctx)),
            asyncio.create_task(self._summaries(ctx, reporter)),
        ]
        backoff = Backoff(cfg.broker.reconnect_min_s, cfg.broker.reconnect_max_s)
        try:
            while True:
                try:
                    await self._connected(ctx, reporter, backoff)
                    why = "connection closed"
                except (aiomqtt.MqttError, MqttDriverError) as e:
                    why = connect_reason(e)
                self._client = None
                await ctx.health.device_offline(cfg.id, f"broker: {why}", driver=cfg.id)
                await ctx.clock.sleep(backoff.next())
        finally:
            self._client = None
            for t in helpers:
                t.cancel()
            for t in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    async def _connected(
        self, ctx: DriverContext, reporter: MalformedReporter, backoff: Backoff
    ) -> None:
        """One broker connection: subscribe, then map messages until it is lost."""
        broker = self.config.broker
        ssl_ctx = await asyncio.to_thread(tls_context, broker.tls) if broker.tls else None
        client = make_client(broker, logger=ctx.log.getChild("mqtt"), ssl_context=ssl_ctx)
        async with client:
            check_cancelled()
            await client.subscribe(self._topics)
            check_cancelled()
            self._client = client
            self._connects += 1
            backoff.reset()
            ctx.log.info("connected to %s:%s", broker.host, broker.effective_port)
            await ctx.health.device_online(self.config.id, driver=self.config.id)
            async for msg in client.messages:  # ends with MqttError when the link is lost
                raw = msg.payload
                payload = raw if isinstance(raw, bytes) else str(raw or "").encode()
                topic = msg.topic.value
                self._counts["received"] += 1
                result = self._map.map(topic, payload, ctx.clock.time_ns())
                await self._deliver(ctx, reporter, topic, payload, result)

    async def _deliver(
        self,
        ctx: DriverContext,
        reporter: MalformedReporter,
        topic: str,
        payload: bytes,
        result: MapResult,
    ) -> None:
        for event in result.events:
            await ctx.emit(event)
        self._counts["events"] += len(result.events)
        self._counts["ignored"] += result.ignored
        self._counts["malformed"] += bool(result.problems)
        for label, reason in result.problems:
            note = reporter.note(topic, label, reason, payload)
            if note is not None:
                await ctx.emit(note)

    async def _commands(self, ctx: DriverContext) -> None:
        async for cmd in ctx.commands():
            outcome, reason = await self._execute(cmd)
            self._counts[outcome] += 1
            await ctx.emit(command_result(cmd, outcome, reason, ctx.clock.time_ns()))

    async def _execute(self, cmd: Command) -> tuple[str, str]:
        cfg = self.config
        if cfg.commands is None:
            return "refused", "this card_mqtt driver has no commands: section"
        try:
            topic, payload = render_command(
                cfg.commands, cmd, self._names.get(cmd.target, cmd.target)
            )
        except CommandError as e:
            return "refused", str(e)
        client = self._client
        if client is None:
            return "failed", "broker not connected"
        try:
            await client.publish(topic, payload, qos=cfg.commands.qos, timeout=cfg.broker.timeout_s)
        except aiomqtt.MqttError as e:
            return "failed", f"publish to {topic}: {connect_reason(e)}"
        return "done", ""

    async def _summaries(self, ctx: DriverContext, reporter: MalformedReporter) -> None:
        while True:
            await ctx.clock.sleep(SUMMARY_INTERVAL_S)
            reporter.summary()
