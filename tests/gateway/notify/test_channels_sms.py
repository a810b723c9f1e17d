"""SMS through an HTTP gateway template, against a local receiver: escaping
of {phone} and {text} in URL and body, success tests, config checks."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest
from pydantic import ValidationError

from gateway.model import Priority
from gateway.notify.channels.base import Channel, ChannelError, NoAddress, build_channel
from gateway.notify.config import SmsChannelConfig
from gateway.notify.message import Notification, Recipient, new_id
from gateway.notify.templates import render
from tests.fixtures import receivers
from tests.fixtures.receivers import Receiver, Reply
from tests.gateway.notify.test_templates import VIEW

receiver = receivers.receiver

ZHANG = Recipient("zhang", "张伟", "zh-CN", {"mobile": "+8613800000001"})
QUOTED = {**VIEW, "description": '泵"1"故障 & 50% \\ 停机'}


def alarm(recipient: Recipient = ZHANG, view: dict[str, Any] = QUOTED) -> Notification:
    return Notification(
        new_id(), "alarm", recipient, view, ack_url="http://gw/ack/t1", priority=Priority.HIGH
    )


def sms(rx: Receiver, **over: Any) -> Channel:
    cfg: dict[str, Any] = {
        "type": "sms",
        "url": rx.sms_url,
        "body": '{"to": "{phone}", "msg": "{text}", "sign": "物业"}',
        "headers": {"X-Api-Key": "sms-key-1234567"},
        "success_json_path": "code",
        "success_value": "OK",
        **over,
    }
    return build_channel("sms", SmsChannelConfig.model_validate(cfg))


async def send(ch: Channel, n: Notification) -> None:
    try:
        await ch.send(n, render(n))
    finally:
        await ch.close()


async def test_json_body_template(receiver: Receiver) -> None:
    n = alarm()
    await send(sms(receiver), n)
    (req,) = receiver.requests_to("/sms")
    assert req.method == "POST"
    assert req.headers["X-Api-Key"] == "sms-key-1234567"
    assert req.headers["Content-Type"] == "application/json"
    doc = req.json
    assert doc["to"] == "+8613800000001" and doc["sign"] == "物业"
    assert doc["msg"] == render(n).short  # quotes and backslashes JSON-escaped
    assert '泵"1"故障 & 50% \\ 停机' in doc["msg"] and doc["msg"].endswith("http://gw/ack/t1")


async def test_get_with_url_template(receiver: Receiver) -> None:
    url = receiver.sms_url + "?to={phone}&content={text}&user=gw"
    await send(sms(receiver, method="GET", url=url, body=None, content="text"), alarm())
    (req,) = receiver.requests_to("/sms")
    assert req.method == "GET"
    assert req.query["to"] == "+8613800000001"  # '+' survived URL encoding
    assert req.query["user"] == "gw"
    assert req.query["content"].startswith('【高】报警：泵"1"故障 & 50% \\ 停机')
    assert "确认报警：http://gw/ack/t1" in req.query["content"]


async def test_form_body(receiver: Receiver) -> None:
    await send(
        sms(
            receiver,
            body="mobile={phone}&text={text}",
            content_type="application/x-www-form-urlencoded",
        ),
        alarm(),
    )
    (req,) = receiver.requests_to("/sms")
    form = parse_qs(req.text)
    assert form["mobile"] == ["+8613800000001"]
    assert form["text"][0].startswith('【高】报警：泵"1"故障 & 50%')


async def test_long_text_is_cut(receiver: Receiver) -> None:
    await send(sms(receiver, max_chars=40), alarm(view={**VIEW, "description": "长" * 200}))
    (req,) = receiver.requests_to("/sms")
    assert len(req.json["msg"]) == 40 and req.json["msg"].endswith("…")


@pytest.mark.parametrize(
    ("reply", "retryable", "why"),
    [
        (Reply(json={"code": "isv.BUSINESS_LIMIT_CONTROL"}), False, "code is"),
        (Reply(json={"result": 1}), False, "has no 'code'"),
        (Reply(status=500, json={"code": "OK"}), True, "HTTP 500"),
        (Reply(status=403, json={"code": "DENIED"}), False, "HTTP 403"),
    ],
)
async def test_failures(receiver: Receiver, reply: Reply, retryable: bool, why: str) -> None:
    receiver.script("/sms", reply)
    with pytest.raises(ChannelError) as info:
        await send(sms(receiver), alarm())
    assert info.value.retryable is retryable and why in info.value.reason
    assert "sms-key-1234567" not in str(info.value)


async def test_numeric_success_value_and_status_list(receiver: Receiver) -> None:
    receiver.sms_answer = {"result": {"code": 0}}
    await send(
        sms(receiver, success_json_path="result.code", success_value=0, success_status=[200]),
        alarm(),
    )


async def test_no_mobile(receiver: Receiver) -> None:
    with pytest.raises(NoAddress):
        await send(sms(receiver), alarm(Recipient("li", "李娜", "zh-CN", {"email": "l@x"})))
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"body": '{"to": "{phone}"}'}, "contains {text}"),
        ({"body": '{"to": {phone}, "msg": "{text}"'}, "not a JSON template"),
        ({"method": "GET"}, "method is GET"),
        ({"success_value": None}, "together"),
        ({"url": "ftp://x/{phone}"}, "url"),
    ],
)
def test_config_errors(over: dict[str, Any], message: str) -> None:
    cfg = {
        "type": "sms",
        "url": "http://sms.example/send",
        "body": '{"to": "{phone}", "msg": "{text}"}',
        "success_json_path": "code",
        "success_value": "OK",
        **over,
    }
    with pytest.raises(ValidationError, match=message):
        SmsChannelConfig.model_validate(cfg)
