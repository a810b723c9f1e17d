"""The channel contract: ``async send(n, rendered)`` or a typed error.

A channel delivers one :class:`~gateway.notify.message.Notification` (already
rendered) to one recipient, once. Retries, backoff, rate limits and fallback
belong to the :class:`~gateway.notify.dispatcher.Dispatcher`; a channel only
says what went wrong:

* :class:`ChannelError` with ``retryable`` (try again later: a timeout, HTTP
  5xx, a vendor's "too many requests") and ``retry_after_s`` when the other
  side said how long to wait;
* :class:`NoAddress` when the recipient has no address for this channel (not
  retryable: the dispatcher goes on to the next channel at once).

Error texts never contain secrets (keys, tokens, passwords): channels build
them from status codes and vendor messages, and :meth:`Channel.redact` masks
any secret that might still slip in.

:func:`build_channel` makes a channel from its config; it raises
:class:`ChannelConfigError` for a channel that cannot work (an optional
package that is not installed, an invalid apprise URL).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from gateway.clock import Clock, SystemClock
from gateway.notify.message import Notification, Rendered

if TYPE_CHECKING:
    from gateway.notify.config import ChannelConfig, ChannelSettings

__all__ = [
    "Channel",
    "ChannelConfigError",
    "ChannelError",
    "ChannelPolicy",
    "NoAddress",
    "build_channel",
    "build_channels",
]


class ChannelError(Exception):
    """A send failed. ``retryable``: the same message may succeed later;
    ``retry_after_s``: the other side asked to wait this long."""

    def __init__(self, reason: str, *, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class NoAddress(ChannelError):
    """The recipient has no address this channel can use (never retryable)."""

    def __init__(self, recipient: str, kind: str) -> None:
        super().__init__(f"recipient {recipient!r} has no {kind} address", retryable=False)
        self.recipient = recipient
        self.kind = kind


class ChannelConfigError(ValueError):
    """A channel cannot be built from its config (missing package, bad URL)."""


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """How the dispatcher treats a channel (from :class:`ChannelSettings`)."""

    retries: int = 2
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    rate_per_min: float | None = None
    burst: int | None = None
    rate_wait_s: float = 10.0
    timeout_s: float = 10.0
    concurrency: int = 4

    @classmethod
    def of(cls, settings: ChannelSettings) -> ChannelPolicy:
        return cls(
            retries=settings.retries,
            backoff_s=settings.backoff_s,
            backoff_max_s=settings.backoff_max_s,
            rate_per_min=settings.rate_per_min,
            burst=settings.burst,
            rate_wait_s=settings.rate_wait_s,
            timeout_s=settings.timeout_s,
            concurrency=settings.concurrency,
        )


class Channel(ABC):
    """Base of every channel. ``kind`` is the config ``type``; ``address_kind``
    the :attr:`Recipient.addresses` key it needs (None: a group channel that
    needs none)."""

    kind: ClassVar[str] = "custom"
    address_kind: ClassVar[str | None] = None

    def __init__(self, name: str, policy: ChannelPolicy | None = None) -> None:
        self.name = name
        self.policy = policy or ChannelPolicy()

    @abstractmethod
    async def send(self, n: Notification, rendered: Rendered) -> None:
        """Deliver once; raise :class:`ChannelError` / :class:`NoAddress`."""

    async def close(self) -> None:
        """Release connections (the dispatcher calls it on shutdown)."""
        return None

    def secrets(self) -> Iterable[str]:
        """Secret values this channel holds (masked in any error text)."""
        return ()

    def redact(self, text: str) -> str:
        for secret in self.secrets():
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def require(self, n: Notification, kind: str | None = None) -> str:
        """The recipient's address of ``kind`` (default: :attr:`address_kind`), or NoAddress."""
        kind = kind or self.address_kind
        if kind is None:
            raise TypeError(f"channel {self.name!r} needs no address")
        address = n.recipient.address(kind)
        if address is None:
            raise NoAddress(n.recipient.id, kind)
        return address

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def build_channel(name: str, config: ChannelConfig, *, clock: Clock | None = None) -> Channel:
    """The channel for one ``notify.channels`` entry (no I/O happens here).

    ``clock`` stamps signed requests (DingTalk, Feishu, webhook) and e-mail
    dates; it defaults to the system clock (the other side checks the time).
    """
    from gateway.notify import config as cfg

    clock = clock or SystemClock()
    if isinstance(config, cfg.WeComChannelConfig):
        from gateway.notify.channels.wecom import WeComChannel

        return WeComChannel(name, config, clock)
    if isinstance(config, cfg.DingTalkChannelConfig):
        from gateway.notify.channels.dingtalk import DingTalkChannel

        return DingTalkChannel(name, config, clock)
    if isinstance(config, cfg.FeishuChannelConfig):
        from gateway.notify.channels.feishu import FeishuChannel

        return FeishuChannel(name, config, clock)
    if isinstance(config, cfg.EmailChannelConfig):
        from gateway.notify.channels.email import EmailChannel

        return EmailChannel(name, config, clock)
    if isinstance(config, cfg.WebhookChannelConfig):
        from gateway.notify.channels.webhook import WebhookChannel

        return WebhookChannel(name, config, clock)
    if isinstance(config, cfg.MqttChannelConfig):
        try:
            from gateway.notify.channels.mqtt import MqttChannel
        except ImportError as exc:
            raise ChannelConfigError(
                f"channel {name!r}: the mqtt channel needs aiomqtt "
                f"(pip install 'estate-gateway[mqtt]'): {exc}"
            ) from exc
        return MqttChannel(name, config)
    if isinstance(config, cfg.SmsChannelConfig):
        from gateway.notify.channels.sms import SmsChannel

        return SmsChannel(name, config, clock)
    if isinstance(config, cfg.AppriseChannelConfig):
        from gateway.notify.channels.apprise import AppriseChannel

        return AppriseChannel(name, config)
    raise ChannelConfigError(f"channel {name!r}: unknown config {type(config).__name__}")


def build_channels(
    configs: Mapping[str, ChannelConfig], *, clock: Clock | None = None
) -> dict[str, Channel]:
    """Every channel of ``notify.channels`` by name (raises on the first bad one)."""
    return {name: build_channel(name, c, clock=clock) for name, c in configs.items()}
