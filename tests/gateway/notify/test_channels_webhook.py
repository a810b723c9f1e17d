"""The generic webhook: the JSON document, its HMAC signature verified by the
receiver, replay protection, and what each answer means."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from gateway.model import Priority
from gateway.notify.channels.base import Channel, ChannelError, build_channel
from gateway.notify.channels.webhook import WebhookChannel, sign, verify_signature
from gateway.notify.config import WebhookChannelConfig
from gateway.notify.message import Notification, Recipient, new_id
from gateway.notify.templates import render
from tests.fixtures import receivers
from tests.fixtures.receivers import Receiver, Reply
from tests.gateway.notify.test_templates import VIEW

receiver = receivers.receiver

ZHANG = Recipient("zhang", "张伟", "zh-CN", {"mobile": "13800000001"})


def alarm() -> Notification:
    return Notification(
        new_id(),
        "escalated",
        ZHANG,
        VIEW,
        ack_url="http://gw/ack/t1",
        ts=123,
        priority=Priority.CRITICAL,
        level=2,
        site="estate-a",
    )


def webhook(rx: Receiver, **over: Any) -> Channel:
    cfg = {"type": "webhook", "url": rx.webhook_url, "secret": rx.webhook_secret, **over}
    return build_channel("hook", WebhookChannelConfig.model_validate(cfg))


async def send(ch: Channel, n: Notification) -> None:
    try:
        await ch.send(n, render(n))
    finally:
        await ch.close()


async def test_signed_json_document_verified_by_the_receiver(receiver: Receiver) -> None:
    n = alarm()
    await send(webhook(receiver, headers={"Authorization": "Bearer tok-123456"}), n)
    (req,) = receiver.requests_to("/webhook")
    assert req.verified
    assert req.headers["X-Gateway-Notification"] == n.id
    assert req.headers["Authorization"] == "Bearer tok-123456"
    assert req.headers["X-Gateway-Signature"].startswith("sha256=")
    doc = req.json
    assert doc["kind"] == "escalated" and doc["level"] == 2 and doc["site"] == "estate-a"
    assert doc["alarm"]["id"] == "tx1-hot@tx1.winding_temp_a"
    assert doc["alarm"]["value"] == 128.4
    assert doc["ack_url"] == "http://gw/ack/t1"
    assert doc["subject"] == render(n).subject
    assert "张伟".encode() in req.body


async def test_wrong_secret_is_refused_and_not_retried(receiver: Receiver) -> None:
    with pytest.raises(ChannelError) as info:
        await send(webhook(receiver, secret="another-secret-000"), alarm())
    assert not info.value.retryable and "HTTP 401" in info.value.reason
    (req,) = receiver.requests_to("/webhook")
    assert req.verified is False


@pytest.mark.parametrize(
    ("reply", "retryable", "after"),
    [
        (Reply(status=429, headers={"Retry-After": "12"}), True, 12.0),
        (Reply(status=503), True, None),
        (Reply(status=408), True, None),
        (Reply(status=400, json={"error": "bad"}), False, None),
        (Reply(status=410), False, None),
    ],
)
async def test_answers(
    receiver: Receiver, reply: Reply, retryable: bool, after: float | None
) -> None:
    receiver.script("/webhook", reply)
    with pytest.raises(ChannelError) as info:
        await send(webhook(receiver), alarm())
    assert (info.value.retryable, info.value.retry_after_s) == (retryable, after)


async def test_any_2xx_is_success(receiver: Receiver) -> None:
    receiver.script("/webhook", Reply(status=204, body=b""))
    await send(webhook(receiver), alarm())


def test_verify_signature() -> None:
    body = json.dumps({"a": "报警"}, ensure_ascii=False).encode()
    now = time.time()
    ts = str(int(now))
    header = sign("k3y", ts, body)
    assert verify_signature("k3y", ts, body, header, now)
    assert verify_signature(b"k3y", ts, body.decode(), header, now)
    assert not verify_signature("k3y", ts, body + b" ", header, now)  # tampered body
    assert not verify_signature("other", ts, body, header, now)  # wrong secret
    assert not verify_signature("k3y", str(int(now) - 1), body, header, now)  # other time
    assert not verify_signature("k3y", ts, body, header, now + 301)  # replayed later
    assert verify_signature("k3y", ts, body, header, now + 301, tolerance_s=600)
    assert not verify_signature("k3y", "abc", body, header, now)
    assert not verify_signature("k3y", ts, body, "", now)


def test_signature_is_hmac_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"s", b"1700000000." + b'{"x":1}', hashlib.sha256).hexdigest()
    assert sign("s", "1700000000", b'{"x":1}') == f"sha256={expected}"


def test_unsigned_webhook_and_secrets_in_repr(receiver: Receiver) -> None:
    ch = webhook(receiver, secret=None, headers={"X-Api-Key": "k-99999999"})
    assert isinstance(ch, WebhookChannel)
    _, headers = ch.request(alarm(), render(alarm()))
    assert "X-Gateway-Signature" not in headers and "X-Gateway-Timestamp" in headers
    assert "k-99999999" not in repr(ch.config)
    assert ch.redact("key k-99999999 leaked") == "key *** leaked"
