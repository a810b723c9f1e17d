"""Notifications: channels (WeCom, DingTalk, Feishu, e-mail, webhook, MQTT,
SMS, apprise), message templates in zh-CN and en, and the dispatcher that
retries, rate-limits, falls back and records every delivery.

Who is told, when, and the signed ack links are the on-call part of this
package (``oncall_config``, ``roster``, ``escalation``, ``acklink``,
``ack_router``); they build :class:`Notification` values and hand them to
:meth:`Dispatcher.deliver` / :meth:`Dispatcher.submit`.
"""

from gateway.notify.channels.base import (
    Channel,
    ChannelConfigError,
    ChannelError,
    ChannelPolicy,
    NoAddress,
    build_channel,
    build_channels,
)
from gateway.notify.config import ChannelConfig, NotifyConfig
from gateway.notify.dispatcher import Attempt, DeliveryResult, Dispatcher
from gateway.notify.message import (
    ADDRESS_KINDS,
    ALARM_VIEW_KEYS,
    KINDS,
    Kind,
    Notification,
    Recipient,
    Rendered,
    new_id,
)
from gateway.notify.ratelimit import TokenBucket
from gateway.notify.templates import render

__all__ = [
    "ADDRESS_KINDS",
    "ALARM_VIEW_KEYS",
    "KINDS",
    "Attempt",
    "Channel",
    "ChannelConfig",
    "ChannelConfigError",
    "ChannelError",
    "ChannelPolicy",
    "DeliveryResult",
    "Dispatcher",
    "Kind",
    "NoAddress",
    "Notification",
    "NotifyConfig",
    "Recipient",
    "Rendered",
    "TokenBucket",
    "build_channel",
    "build_channels",
    "new_id",
    "render",
]
