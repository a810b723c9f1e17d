"""E-mail through a real aiosmtpd server: a zh-CN subject and body arrive
intact, multipart text + HTML, STARTTLS with a login, refusals and failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.model import Priority
from gateway.notify.channels.base import Channel, ChannelError, NoAddress, build_channel
from gateway.notify.config import EmailChannelConfig
from gateway.notify.message import Notification, Recipient, new_id
from gateway.notify.templates import render
from tests.fixtures import receivers
from tests.fixtures.receivers import SmtpServer, tls_files
from tests.fixtures.servers import free_port
from tests.gateway.notify.test_templates import VIEW

smtp_server = receivers.smtp_server

ZHANG = Recipient("zhang", "张伟", "zh-CN", {"email": "zhang@estate.example"})


def alarm(recipient: Recipient = ZHANG) -> Notification:
    return Notification(
        new_id(), "alarm", recipient, VIEW, ack_url="http://gw/ack/t1", priority=Priority.HIGH
    )


def channel(server: SmtpServer, **over: Any) -> Channel:
    cfg = {
        "type": "email",
        "host": server.host,
        "port": server.port,
        "security": "none",
        "from_address": "gw@estate.example",
        "from_name": "物业网关",
        "timeout_s": 5,
        **over,
    }
    return build_channel("mail", EmailChannelConfig.model_validate(cfg))


async def send(ch: Channel, n: Notification) -> None:
    try:
        await ch.send(n, render(n))
    finally:
        await ch.close()


async def test_chinese_mail_arrives_intact(smtp_server: SmtpServer) -> None:
    n = alarm()
    rendered = render(n)
    await send(channel(smtp_server), n)
    (msg,) = await smtp_server.wait_for(1)
    assert (
        msg["Subject"]
        == rendered.subject
        == ("【高】报警：1号变压器绕组温度过高 - 1号变压器（B1配电房）")
    )
    assert msg["From"].addresses[0].display_name == "物业网关"
    assert msg["To"].addresses[0].addr_spec == "zhang@estate.example"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Gateway-Notification"] == n.id
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().strip() == rendered.text
    assert "数值：128.4 °C ≥ 120 °C (H)" in text.get_content()
    assert 'href="http://gw/ack/t1"' in html.get_content()
    assert smtp_server.envelopes == [("gw@estate.example", ["zhang@estate.example"])]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[SmtpServer, Path]]:
    cert, key = tls_files(tmp_path)
    with SmtpServer(tls=(cert, key), users={"gw": "s3cret-pass"}) as server:
        yield server, cert


async def test_starttls_and_login(tls_server: tuple[SmtpServer, Path]) -> None:
    server, cert = tls_server
    ch = channel(server, security="starttls", username="gw", password="s3cret-pass", ca_file=cert)
    await send(ch, alarm())
    assert len(await server.wait_for(1)) == 1


async def test_bad_password_is_not_retryable(tls_server: tuple[SmtpServer, Path]) -> None:
    server, cert = tls_server
    ch = channel(server, security="starttls", username="gw", password="wrong-pass", ca_file=cert)
    with pytest.raises(ChannelError) as info:
        await send(ch, alarm())
    assert not info.value.retryable and "login refused" in info.value.reason
    assert "wrong-pass" not in str(info.value)


async def test_untrusted_certificate_is_an_error(tls_server: tuple[SmtpServer, Path]) -> None:
    server, _ = tls_server
    ch = channel(server, security="starttls", username="gw", password="s3cret-pass")
    with pytest.raises(ChannelError):
        await send(ch, alarm())
    assert server.messages == []


async def test_refused_recipient_is_not_retryable(smtp_server: SmtpServer) -> None:
    smtp_server.refuse.add("zhang@estate.example")
    with pytest.raises(ChannelError) as info:
        await send(channel(smtp_server), alarm())
    assert not info.value.retryable and "550" in info.value.reason


async def test_temporary_failure_is_retryable(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next = 1
    with pytest.raises(ChannelError) as info:
        await send(channel(smtp_server), alarm())
    assert info.value.retryable and "451" in info.value.reason
    await send(channel(smtp_server), alarm())  # the retry goes through
    assert len(await smtp_server.wait_for(1)) == 1


async def test_no_server_is_retryable() -> None:
    cfg = {
        "type": "email",
        "host": "127.0.0.1",
        "port": free_port(),
        "security": "none",
        "from_address": "gw@estate.example",
    }
    ch = build_channel("mail", EmailChannelConfig.model_validate(cfg))
    with pytest.raises(ChannelError) as info:
        await send(ch, alarm())
    assert info.value.retryable


async def test_recipient_without_email(smtp_server: SmtpServer) -> None:
    with pytest.raises(NoAddress) as info:
        await send(channel(smtp_server), alarm(Recipient("li", "李娜", "zh-CN", {"email": " "})))
    assert not info.value.retryable and info.value.kind == "email"


@pytest.mark.parametrize("address", ["no-at-sign", "x@y@z", "a@b.cn\nBcc: evil@x.cn"])
async def test_unusable_address_is_not_retryable(smtp_server: SmtpServer, address: str) -> None:
    with pytest.raises(ChannelError) as info:
        await send(
            channel(smtp_server), alarm(Recipient("li", "李娜", "zh-CN", {"email": address}))
        )
    assert not info.value.retryable and "not usable" in info.value.reason
    assert smtp_server.messages == []


def test_config() -> None:
    base = {"type": "email", "host": "smtp.example", "from_address": "gw@example.cn"}
    assert EmailChannelConfig.model_validate(base).effective_port == 587
    assert EmailChannelConfig.model_validate({**base, "security": "tls"}).effective_port == 465
    with pytest.raises(ValidationError, match="username"):
        EmailChannelConfig.model_validate({**base, "password": "x"})
    with pytest.raises(ValidationError, match="from_address"):
        EmailChannelConfig.model_validate({**base, "from_address": "nobody"})
    cfg = EmailChannelConfig.model_validate({**base, "username": "u", "password": "topsecret"})
    assert "topsecret" not in repr(cfg)
