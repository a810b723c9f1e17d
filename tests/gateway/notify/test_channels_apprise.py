"""The apprise channel: apprise's json:// into the local receiver, a failure
as a retryable error, and clear config errors when apprise is missing."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError

from gateway.notify.channels.base import ChannelConfigError, ChannelError, build_channel
from gateway.notify.config import AppriseChannelConfig, NotifyConfig
from gateway.notify.message import Notification, Recipient, new_id
from gateway.notify.templates import render
from tests.fixtures import receivers
from tests.fixtures.receivers import Receiver
from tests.gateway.notify.test_templates import VIEW

receiver = receivers.receiver

N = Notification(new_id(), "alarm", Recipient("zhang", "张伟"), VIEW, ack_url="http://gw/ack/t1")


def config(*urls: str, **over: object) -> AppriseChannelConfig:
    return AppriseChannelConfig.model_validate(
        {"type": "apprise", "urls": list(urls), "timeout_s": 5, **over}
    )


async def test_json_url_reaches_the_receiver(receiver: Receiver) -> None:
    ch = build_channel("ap", config(f"json://127.0.0.1:{receiver.port}/apprise/hook"))
    await ch.send(N, render(N))
    (req,) = receiver.requests_to("/apprise/hook")
    doc = req.json
    assert doc["title"] == render(N).subject
    assert "128.4 °C ≥ 120 °C (H)" in doc["message"]
    assert doc["message"].endswith("确认报警：http://gw/ack/t1")


async def test_markdown_form(receiver: Receiver) -> None:
    ch = build_channel(
        "ap", config(f"json://127.0.0.1:{receiver.port}/apprise/md", body_format="markdown")
    )
    await ch.send(N, render(N))
    (req,) = receiver.requests_to("/apprise/md")
    assert "[确认报警](http://gw/ack/t1)" in req.json["message"]


async def test_failure_is_retryable_with_a_generic_reason(receiver: Receiver) -> None:
    url = receiver.refused_url.replace("http://", "json://")
    ch = build_channel("ap", config(url, timeout_s=5))
    with pytest.raises(ChannelError) as info:
        await ch.send(N, render(N))
    assert info.value.retryable and "apprise reported a failure" in info.value.reason


def test_invalid_url_is_a_config_error() -> None:
    with pytest.raises(ChannelConfigError, match=r"URL #2 \(scheme 'nosuch'\)"):
        build_channel("ap", config("json://127.0.0.1:9/x", "nosuch://secret-token@host"))


def test_missing_apprise_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config("json://127.0.0.1:9/x")
    monkeypatch.setitem(sys.modules, "apprise", None)  # import apprise -> ImportError
    with pytest.raises(ValidationError, match=r"estate-gateway\[apprise\]"):
        NotifyConfig.model_validate({"channels": {"ap": {"type": "apprise", "urls": ["x://"]}}})
    with pytest.raises(ChannelConfigError, match=r"pip install 'estate-gateway\[apprise\]'"):
        build_channel("ap", cfg)
