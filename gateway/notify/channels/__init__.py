"""Notification channels: one module per channel type, all behind the
:class:`~gateway.notify.channels.base.Channel` contract. Channel modules are
imported by :func:`build_channel` when a config needs them, so an optional
package (aiomqtt, apprise) is only needed by a site that uses it."""

from gateway.notify.channels.base import (
    Channel,
    ChannelConfigError,
    ChannelError,
    ChannelPolicy,
    NoAddress,
    build_channel,
    build_channels,
)

__all__ = [
    "Channel",
    "ChannelConfigError",
    "ChannelError",
    "ChannelPolicy",
    "NoAddress",
    "build_channel",
    "build_channels",
]
