"""What the chat-group robots (WeCom, DingTalk, Feishu) share: one JSON POST
per message to a URL that carries the robot's key, answered HTTP 200 with a
vendor code in the body (see :func:`~gateway.notify.channels.http.robot_error`).
A robot module gives its URL, its payload and its vendor codes."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

from gateway.clock import Clock
from gateway.notify.channels.base import Channel, ChannelPolicy
from gateway.notify.channels.http import HttpClient, robot_error
from gateway.notify.config import ChannelSettings
from gateway.notify.message import Notification, Rendered, dumps

__all__ = ["RobotChannel"]

C = TypeVar("C", bound=ChannelSettings)


class RobotChannel(Channel, Generic[C]):
    vendor: ClassVar[str]
    code_keys: ClassVar[tuple[str, ...]] = ("errcode",)
    message_keys: ClassVar[tuple[str, ...]] = ("errmsg",)
    rate_limited: ClassVar[frozenset[int]]  # codes retryable after the per-minute limit
    busy: ClassVar[frozenset[int]] = frozenset({-1})  # codes retryable at once
    address_kind = None  # a group robot; the recipient is only @-mentioned

    def __init__(self, name: str, config: C, clock: Clock) -> None:
        super().__init__(name, ChannelPolicy.of(config))
        self.config = config
        self._clock = clock
        self._http = HttpClient(config.timeout_s, self.redact)

    @abstractmethod
    def url(self) -> str:
        """Where this message goes (with the key, and a fresh signature if any)."""

    @abstractmethod
    def payload(self, n: Notification, rendered: Rendered) -> dict[str, Any]: ...

    async def send(self, n: Notification, rendered: Rendered) -> None:
        answer = await self._http.request(
            "POST",
            self.url(),
            data=dumps(self.payload(n, rendered)),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        error = robot_error(
            answer,
            vendor=self.vendor,
            code_keys=self.code_keys,
            message_keys=self.message_keys,
            rate_limited=self.rate_limited,
            busy=self.busy,
            redact=self.redact,
            now_s=self._clock.time_ns() / 1e9,
        )
        if error is not None:
            raise error

    async def close(self) -> None:
        await self._http.close()
