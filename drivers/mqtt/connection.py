"""What the ingest and the uplink share: building an aiomqtt client from a
:class:`~drivers.mqtt.config.BrokerConfig` (TLS, credentials, our own
logger), noticing a lost connection, and the reconnect backoff.

aiomqtt 2.5 resets its module logger ("mqtt") to WARNING at import and logs
through it unless given one, so every client here gets the driver's logger.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

import aiomqtt

from drivers.mqtt.config import BrokerConfig, TlsConfig
from gateway.backoff import Backoff

__all__ = [
    "Backoff",
    "MqttDriverError",
    "TlsSetupError",
    "check_cancelled",
    "connect_reason",
    "make_client",
    "tls_context",
    "wait_disconnected",
]


class MqttDriverError(Exception):
    """Base of the MQTT drivers' own errors."""


class TlsSetupError(MqttDriverError):
    """A TLS file named in the config is missing or unusable."""


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """An SSL context for ``tls`` (reads the files: call it off the event loop)."""
    try:
        ctx = ssl.create_default_context(
            cafile=str(tls.ca_file) if tls.ca_file is not None else None
        )
    except (OSError, ssl.SSLError) as e:
        raise TlsSetupError(f"tls.ca_file {tls.ca_file}: {e}") from e
    if tls.cert_file is not None:
        try:
            ctx.load_cert_chain(
                str(tls.cert_file), str(tls.key_file) if tls.key_file is not None else None
            )
        except (OSError, ssl.SSLError) as e:
            raise TlsSetupError(f"tls.cert_file/key_file {tls.cert_file}: {e}") from e
    if tls.insecure:
        ctx.check_hostname = False  # the chain is still verified
    return ctx


def make_client(
    broker: BrokerConfig,
    *,
    logger: logging.Logger,
    ssl_context: ssl.SSLContext | None = None,
    will: aiomqtt.Will | None = None,
    queue_type: type[asyncio.Queue[aiomqtt.Message]] | None = None,
    max_inflight: int | None = None,
) -> aiomqtt.Client:
    """A new (not yet connected) aiomqtt client; must be called on the event loop."""
    kwargs: dict[str, Any] = {}
    if broker.tls is not None:
        if ssl_context is None:
            raise ValueError("broker.tls is set: pass ssl_context=tls_context(broker.tls)")
        kwargs["tls_context"] = ssl_context
    client = aiomqtt.Client(
        broker.host,
        broker.effective_port,
        username=broker.username,
        password=broker.password.get_secret_value() if broker.password is not None else None,
        logger=logger,
        identifier=broker.client_id or None,
        clean_session=broker.clean_session,
        keepalive=broker.keepalive_s,
        timeout=broker.timeout_s,
        will=will,
        queue_type=queue_type,
        max_inflight_messages=max_inflight,
        **kwargs,
    )
    if max_inflight is not None:
        # aiomqtt warns on every call past this many pending; we mean to have them.
        client.pending_calls_threshold = max_inflight + 10
    return client


async def wait_disconnected(client: aiomqtt.Client) -> None:
    """Return only by raising :class:`aiomqtt.MqttError` when the connection is lost.

    It waits on ``client.messages``, which aiomqtt ends with MqttError on a
    disconnect. Callers whose messages go elsewhere (the ingest's inbox) or
    who subscribe to nothing (the uplink) see no message here.
    """
    async for _ in client.messages:
        pass
    raise aiomqtt.MqttError("message iterator ended")  # aiomqtt never ends it otherwise


def check_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop.

    aiomqtt waits with ``asyncio.wait_for``, which on Python 3.11 can swallow
    a cancellation that lands as the awaited answer arrives; call this right
    after such an await so that a stopping driver really stops.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def connect_reason(exc: BaseException) -> str:
    """A short, human reason for a failed or lost connection."""
    text = str(exc)
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}" if text else str(cause)
    return text or type(exc).__name__
