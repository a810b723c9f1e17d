"""Any service apprise knows (Telegram, Slack, Matrix, ntfy, Bark, ...), by
apprise URL. Needs the optional extra: ``pip install 'estate-gateway[apprise]'``.

apprise is synchronous, so a send runs in a worker thread with a timeout.
It reports only success or failure (no reason, no retry-after), so a failure
is a retryable :class:`ChannelError` with a generic reason; the chat robots,
e-mail, webhooks, MQTT and SMS have native channels that say more.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any
from urllib.parse import urlsplit

from gateway.notify.channels.base import Channel, ChannelConfigError, ChannelError, ChannelPolicy
from gateway.notify.config import AppriseChannelConfig
from gateway.notify.message import Notification, Rendered

__all__ = ["AppriseChannel"]


def _import_apprise(channel: str) -> Any:
    try:
        return importlib.import_module("apprise")
    except ImportError:
        raise ChannelConfigError(
            f"channel {channel!r} is of type apprise, but the apprise package is not "
            "installed: pip install 'estate-gateway[apprise]'"
        ) from None


class AppriseChannel(Channel):
    kind = "apprise"
    address_kind = None

    def __init__(self, name: str, config: AppriseChannelConfig) -> None:
        super().__init__(name, ChannelPolicy.of(config))
        self.config = config
        module = _import_apprise(name)
        self._apprise = module
        self._target = module.Apprise()
        for i, url in enumerate(config.urls, 1):
            if not self._target.add(url.get_secret_value()):
                scheme = urlsplit(url.get_secret_value()).scheme or "?"
                raise ChannelConfigError(
                    f"channel {name!r}: apprise URL #{i} (scheme {scheme!r}) is not one "
                    "apprise understands"
                )

    def secrets(self) -> list[str]:
        return [u.get_secret_value() for u in self.config.urls]

    def _notify(self, title: str, body: str) -> Any:
        fmt = self._apprise.NotifyFormat
        body_format = fmt.MARKDOWN if self.config.body_format == "markdown" else fmt.TEXT
        return self._target.notify(body=body, title=title, body_format=body_format)

    async def send(self, n: Notification, rendered: Rendered) -> None:
        body = rendered.markdown if self.config.body_format == "markdown" else rendered.text
        try:
            result = await asyncio.wait_for(
                asyncio.to_thread(self._notify, rendered.subject, body), self.config.timeout_s
            )
        except TimeoutError:
            raise ChannelError(
                f"apprise did not finish within {self.config.timeout_s:g} s", retryable=True
            ) from None
        if not result:
            status = getattr(getattr(result, "status", None), "value", None)
            detail = f" (status {status})" if status else ""
            raise ChannelError(
                f"apprise reported a failure{detail}; it gives no reason (see its log)",
                retryable=True,
            )
