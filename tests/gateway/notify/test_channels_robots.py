"""WeCom, DingTalk and Feishu robots against a local receiver that checks keys,
signatures and size limits the way the vendors do; vendor error codes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.model import Priority
from gateway.notify.channels.base import Channel, ChannelError, build_channel, build_channels
from gateway.notify.channels.dingtalk import sign as ding_sign
from gateway.notify.config import (
    DingTalkChannelConfig,
    FeishuChannelConfig,
    NotifyConfig,
    WeComChannelConfig,
)
from gateway.notify.message import Notification, Recipient, new_id
from gateway.notify.templates import render
from tests.fixtures import receivers
from tests.fixtures.receivers import Receiver, Reply
from tests.gateway.notify.test_templates import VIEW, digest

receiver = receivers.receiver

ZHANG = Recipient(
    "zhang",
    "张伟",
    "zh-CN",
    {
        "mobile": "13800000001",
        "wecom_userid": "ZhangWei",
        "dingtalk_userid": "zw01",
        "feishu_open_id": "ou_123",
    },
)


def alarm(**over: Any) -> Notification:
    fields: dict[str, Any] = {"ack_url": "http://gw/ack/t1", "priority": Priority.CRITICAL}
    return Notification(new_id(), "alarm", ZHANG, VIEW, **{**fields, **over})


def wecom(rx: Receiver, **over: Any) -> Channel:
    cfg = {"type": "wecom", "key": rx.wecom_key, "url": rx.wecom_url, "timeout_s": 2, **over}
    return build_channel("wecom", WeComChannelConfig.model_validate(cfg))


def dingtalk(rx: Receiver, **over: Any) -> Channel:
    cfg = {
        "type": "dingtalk",
        "access_token": rx.dingtalk_token,
        "secret": rx.dingtalk_secret,
        "url": rx.dingtalk_url,
        **over,
    }
    return build_channel("ding", DingTalkChannelConfig.model_validate(cfg))


def feishu(rx: Receiver, **over: Any) -> Channel:
    cfg = {
        "type": "feishu",
        "token": rx.feishu_token,
        "secret": rx.feishu_secret,
        "url": rx.feishu_url,
        **over,
    }
    return build_channel("feishu", FeishuChannelConfig.model_validate(cfg))


async def send(ch: Channel, n: Notification) -> None:
    try:
        await ch.send(n, render(n))
    finally:
        await ch.close()


async def failure(ch: Channel, n: Notification | None = None) -> ChannelError:
    n = n or alarm()
    with pytest.raises(ChannelError) as info:
        await send(ch, n)
    for secret in ch.secrets():
        assert secret not in str(info.value)
    return info.value


# -- WeCom ---------------------------------------------------------------------------


async def test_wecom_markdown_with_mention(receiver: Receiver) -> None:
    await send(wecom(receiver), alarm())
    (req,) = receiver.requests_to("/wecom/send")
    assert req.verified
    content = req.json["markdown"]["content"]
    assert req.json["msgtype"] == "markdown"
    assert "**【紧急】报警：1号变压器绕组温度过高" in content
    assert "128.4 °C ≥ 120 °C (H)" in content
    assert "[确认报警](http://gw/ack/t1)" in content
    assert content.endswith("\n<@ZhangWei>")


async def test_wecom_text_mentions_by_mobile(receiver: Receiver) -> None:
    await send(wecom(receiver, msgtype="text", mentioned_mobiles=["@all"]), alarm())
    (req,) = receiver.requests_to("/wecom/send")
    text = req.json["text"]
    assert text["mentioned_list"] == ["ZhangWei"]
    assert text["mentioned_mobile_list"] == ["13800000001", "@all"]
    assert text["content"].endswith("确认报警：http://gw/ack/t1")


async def test_wecom_big_digest_fits_the_4096_byte_limit(receiver: Receiver) -> None:
    n = digest(100)
    assert len(render(n).markdown.encode()) > 4096
    await send(wecom(receiver), n)  # the receiver answers 40058 when it is too long
    (req,) = receiver.requests_to("/wecom/send")
    content = req.json["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert "……另有" in content


async def test_wecom_wrong_key_is_not_retryable_and_not_shown(receiver: Receiver) -> None:
    ch = wecom(receiver, key="wrong-key-987654")
    err = await failure(ch)
    assert not err.retryable
    assert "WeCom error 93000" in err.reason


@pytest.mark.parametrize(
    ("reply", "retryable", "after"),
    [
        (Reply(json={"errcode": 45009, "errmsg": "api freq out of limit"}), True, 60.0),
        (
            Reply(json={"errcode": 45009, "errmsg": "freq"}, headers={"Retry-After": "7"}),
            True,
            7.0,
        ),
        (Reply(json={"errcode": -1, "errmsg": "system busy"}), True, None),
        (Reply(json={"errcode": 40008, "errmsg": "invalid message type"}), False, None),
        (Reply(status=502, body=b"<html>bad gateway</html>"), True, None),
        (Reply(status=404, body=b"not found"), False, None),
        (Reply(status=200, body=b"<html>captive portal</html>"), False, None),
    ],
)
async def test_wecom_answers(
    receiver: Receiver, reply: Reply, retryable: bool, after: float | None
) -> None:
    receiver.script("/wecom/send", reply)
    err = await failure(wecom(receiver))
    assert err.retryable is retryable
    assert err.retry_after_s == after


async def test_connection_refused_and_timeout_are_retryable(receiver: Receiver) -> None:
    err = await failure(wecom(receiver, url=receiver.refused_url))
    assert err.retryable and "cannot connect to 127.0.0.1" in err.reason
    receiver.script("/wecom/send", Reply(json={"errcode": 0}, delay=2))
    err = await failure(wecom(receiver, timeout_s=0.2))
    assert err.retryable and "no answer within 0.2 s" in err.reason


# -- DingTalk ------------------------------------------------------------------------


async def test_dingtalk_signed_markdown_with_at(receiver: Receiver) -> None:
    await send(dingtalk(receiver), alarm())
    (req,) = receiver.requests_to("/dingtalk/send")
    assert req.verified, "the receiver checks timestamp + sign"
    doc = req.json
    assert doc["msgtype"] == "markdown"
    assert doc["markdown"]["title"].startswith("【紧急】报警")
    text = doc["markdown"]["text"]
    assert "128.4 °C ≥ 120 °C (H)\n\n" in text  # a paragraph per line
    assert text.endswith("@13800000001 @zw01")
    assert doc["at"] == {"atMobiles": ["13800000001"], "atUserIds": ["zw01"], "isAtAll": False}


def test_dingtalk_signature_matches_the_documented_example() -> None:
    # The algorithm of DingTalk's documentation, computed independently.
    import base64
    import hashlib
    import hmac
    import urllib.parse

    secret, ts = "SEC000000", 1577262236757
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    assert ding_sign(secret, ts) == urllib.parse.quote_plus(base64.b64encode(mac))
    assert "%" in ding_sign(secret, ts) or ding_sign(secret, ts).isalnum()


async def test_dingtalk_wrong_secret_is_not_retryable(receiver: Receiver) -> None:
    err = await failure(dingtalk(receiver, secret="SECwrong-secret-000"))
    assert not err.retryable and "310000" in err.reason


async def test_dingtalk_rate_limit_code(receiver: Receiver) -> None:
    receiver.script("/dingtalk/send", Reply(json={"errcode": 130101, "errmsg": "send too fast"}))
    err = await failure(dingtalk(receiver))
    assert err.retryable and err.retry_after_s == 60.0


async def test_dingtalk_without_signing(receiver: Receiver) -> None:
    receiver.dingtalk_secret = None
    await send(dingtalk(receiver, secret=None, mention=False), alarm())
    (req,) = receiver.requests_to("/dingtalk/send")
    assert set(req.query) == {"access_token"}
    assert req.json["at"] == {"atMobiles": [], "atUserIds": [], "isAtAll": False}


async def test_dingtalk_big_message_fits(receiver: Receiver) -> None:
    await send(dingtalk(receiver), digest(400))
    (req,) = receiver.requests_to("/dingtalk/send")
    assert len(req.json["markdown"]["text"].encode()) <= 20_000


# -- Feishu --------------------------------------------------------------------------


async def test_feishu_signed_card(receiver: Receiver) -> None:
    await send(feishu(receiver), alarm())
    (req,) = receiver.requests_to("/feishu/hook")
    assert req.verified
    card = req.json["card"]
    assert req.json["msg_type"] == "interactive"
    assert card["header"]["template"] == "red"
    assert card["header"]["title"]["content"].startswith("【紧急】报警")
    content = card["elements"][0]["text"]["content"]
    assert "[确认报警](http://gw/ack/t1)" in content
    assert content.endswith("<at id=ou_123></at>")


async def test_feishu_without_secret_sends_no_signature(receiver: Receiver) -> None:
    receiver.feishu_secret = None
    await send(feishu(receiver, secret=None, mention=False), alarm(priority=Priority.LOW))
    (req,) = receiver.requests_to("/feishu/hook")
    assert "sign" not in req.json and "timestamp" not in req.json
    assert req.json["card"]["header"]["template"] == "blue"
    assert "<at" not in req.json["card"]["elements"][0]["text"]["content"]


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [
        (Reply(json={"code": 9499, "msg": "Too Many Request"}), True),
        (Reply(json={"code": 11232, "msg": "frequency limited"}), True),
        (Reply(status=400, json={"code": 19024, "msg": "Key Words Not Found"}), False),
        (Reply(json={"StatusCode": 0, "StatusMessage": "success"}), None),
    ],
)
async def test_feishu_codes(receiver: Receiver, reply: Reply, retryable: bool | None) -> None:
    receiver.script("/feishu/hook/" + receiver.feishu_token, reply)
    if retryable is None:  # the older answer format also means success
        await send(feishu(receiver), alarm())
        return
    err = await failure(feishu(receiver))
    assert err.retryable is retryable


async def test_feishu_wrong_secret(receiver: Receiver) -> None:
    err = await failure(feishu(receiver, secret="nope-nope-nope"))
    assert not err.retryable and "19021" in err.reason


# -- config ----------------------------------------------------------------------------


def test_notify_config_and_build_channels() -> None:
    cfg = NotifyConfig.model_validate(
        {
            "channels": {
                "group-1": {"type": "wecom", "key": "k-1234567"},
                "ding": {"type": "dingtalk", "access_token": "t-1234567", "secret": "SEC-1"},
                "fs": {"type": "feishu", "token": "f-1234567", "rate_per_min": None},
            }
        }
    )
    chans = build_channels(cfg.channels)
    assert {n: type(c).__name__ for n, c in chans.items()} == {
        "group-1": "WeComChannel",
        "ding": "DingTalkChannel",
        "fs": "FeishuChannel",
    }
    assert chans["group-1"].policy.rate_per_min == 15 and chans["group-1"].policy.burst == 5
    assert chans["fs"].policy.rate_per_min is None
    assert "k-1234567" not in repr(cfg) and "k-1234567" not in repr(chans["group-1"])
    with pytest.raises(ValidationError, match="pattern"):
        NotifyConfig.model_validate({"channels": {"bad name": {"type": "wecom", "key": "k"}}})
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        NotifyConfig.model_validate({"channels": {"p": {"type": "pager"}}})
    with pytest.raises(ValidationError, match="backoff_s must not exceed"):
        WeComChannelConfig.model_validate({"type": "wecom", "key": "k", "backoff_s": 100})
