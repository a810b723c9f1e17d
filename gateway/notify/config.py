"""Config models of the notification channels (``notify:`` in the site file).

``notify.channels`` names each channel; its ``type`` picks the model. Every
channel shares the delivery settings of :class:`ChannelSettings` (retries,
backoff, rate limit, timeout). Secrets (robot keys, signing secrets,
passwords, apprise URLs, SMS gateway headers) are ``SecretStr``: write them as
``${ENV_VAR}`` in the file; they never reach a log or an error message.

Base URLs default to the vendor's official endpoint; tests point them at a
local receiver.
"""

from __future__ import annotations

import importlib.util
import json
import string
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from gateway.driver import StrictModel

__all__ = [
    "MQTT_TOPIC_FIELDS",
    "AppriseChannelConfig",
    "ChannelConfig",
    "ChannelSettings",
    "DingTalkChannelConfig",
    "EmailChannelConfig",
    "FeishuChannelConfig",
    "MqttChannelConfig",
    "NotifyConfig",
    "SmsChannelConfig",
    "WeComChannelConfig",
    "WebhookChannelConfig",
]

_NAME = r"^[A-Za-z0-9_-]+$"
MQTT_TOPIC_FIELDS = frozenset({"site", "person", "kind", "priority", "category", "alarm"})
_EMAIL = r"^[^@\s]+@[^@\s]+$"


def _need_module(module: str, extra: str, channel: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ValueError(
            f"the {channel} channel needs the {module!r} package: "
            f"pip install 'estate-gateway[{extra}]'"
        )


class ChannelSettings(StrictModel):
    """Delivery settings every channel has."""

    retries: int = Field(
        2, ge=0, le=10, description="Retries after a failed attempt (total attempts: 1 + retries)."
    )
    backoff_s: float = Field(
        1.0, gt=0, description="Wait before the first retry; it doubles per retry (with jitter)."
    )
    backoff_max_s: float = Field(30.0, gt=0, description="Longest wait between two retries.")
    rate_per_min: float | None = Field(
        None,
        gt=0,
        description="Messages per minute this channel may send (token bucket); empty: no limit.",
    )
    burst: int | None = Field(
        None,
        ge=1,
        description="Messages that may go at once before the rate applies; default: a quarter "
        "of rate_per_min. Any minute sends at most rate_per_min + burst.",
    )
    rate_wait_s: float = Field(
        10.0,
        ge=0,
        description="How long a message may wait for the rate limit (or a vendor's "
        "retry-after) before it falls back to the next channel as 'rate_limited'.",
    )
    timeout_s: float = Field(10.0, gt=0, description="Timeout of one attempt, in seconds.")
    concurrency: int = Field(
        4, ge=1, le=256, description="Messages this channel sends at the same time."
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> ChannelSettings:
        if self.backoff_s > self.backoff_max_s:
            raise ValueError("backoff_s must not exceed backoff_max_s")
        return self


class WeComChannelConfig(ChannelSettings):
    """WeCom (企业微信) group robot."""

    type: Literal["wecom"] = Field(description="WeCom group robot webhook.")
    key: SecretStr = Field(description="The robot's webhook key; write it as '${WECOM_KEY}'.")
    url: str = Field(
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send",
        description="Webhook endpoint without the key (the official one by default).",
    )
    msgtype: Literal["markdown", "text"] = Field(
        "markdown",
        description="markdown (formatted; mentions by WeCom user id) or text (mentions "
        "by mobile number as well).",
    )
    mention: bool = Field(
        True, description="@-mention the recipient (wecom_userid, or mobile in text mode)."
    )
    mentioned_mobiles: list[str] = Field(
        default_factory=list,
        description="Mobile numbers to @-mention in every message (text mode); '@all' for all.",
    )
    rate_per_min: float | None = Field(
        15, gt=0, description="Messages per minute (WeCom allows 20 per robot and minute)."
    )
    burst: int | None = Field(5, ge=1, description="Messages that may go at once.")


class DingTalkChannelConfig(ChannelSettings):
    """DingTalk (钉钉) custom robot, with the signing security setting."""

    type: Literal["dingtalk"] = Field(description="DingTalk custom robot webhook.")
    access_token: SecretStr = Field(
        description="The robot's access_token; write it as '${DINGTALK_TOKEN}'."
    )
    secret: SecretStr | None = Field(
        None,
        description="Signing secret ('SEC...') when the robot uses 加签; '${DINGTALK_SECRET}'.",
    )
    url: str = Field(
        "https://oapi.dingtalk.com/robot/send",
        description="Robot endpoint without the token (the official one by default).",
    )
    mention: bool = Field(
        True, description="@-mention the recipient (by mobile and/or dingtalk_userid)."
    )
    at_all: bool = Field(False, description="@-mention everyone in the group.")
    rate_per_min: float | None = Field(
        15, gt=0, description="Messages per minute (DingTalk allows 20 per robot and minute)."
    )
    burst: int | None = Field(5, ge=1, description="Messages that may go at once.")


class FeishuChannelConfig(ChannelSettings):
    """Feishu / Lark (飞书) custom bot."""

    type: Literal["feishu"] = Field(description="Feishu/Lark custom bot webhook.")
    token: SecretStr = Field(
        description="The last part of the bot's webhook URL; write it as '${FEISHU_TOKEN}'."
    )
    secret: SecretStr | None = Field(
        None, description="Signing secret when the bot uses signature verification."
    )
    url: str = Field(
        "https://open.feishu.cn/open-apis/bot/v2/hook",
        description="Webhook base URL without the token; Lark: "
        "'https://open.larksuite.com/open-apis/bot/v2/hook'.",
    )
    mention: bool = Field(True, description="@-mention the recipient by feishu_open_id.")
    rate_per_min: float | None = Field(
        80, gt=0, description="Messages per minute (Feishu allows 100 per minute, 5 per second)."
    )
    burst: int | None = Field(5, ge=1, description="Messages that may go at once.")


class EmailChannelConfig(ChannelSettings):
    """E-mail through an SMTP server."""

    type: Literal["email"] = Field(description="E-mail over SMTP.")
    host: str = Field(min_length=1, description="SMTP server host name or address.")
    port: int | None = Field(
        None, ge=1, le=65535, description="Port; default 587 (starttls), 465 (tls) or 25 (none)."
    )
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="starttls (upgrade after connecting; required), tls (implicit TLS, "
        "port 465) or none (plain; only on a trusted network).",
    )
    username: str | None = Field(None, description="Login name, if the server wants one.")
    password: SecretStr | None = Field(
        None, description="Password; write it as '${SMTP_PASSWORD}', never in the file."
    )
    from_address: str = Field(pattern=_EMAIL, description="Sender address, e.g. 'gw@example.cn'.")
    from_name: str = Field("", description="Sender display name (any language).")
    validate_certs: bool = Field(True, description="Verify the server's TLS certificate.")
    ca_file: Path | None = Field(
        None, description="PEM file of the CA that signed the server's certificate."
    )
    timeout_s: float = Field(30.0, gt=0, description="Timeout of one SMTP exchange, in seconds.")

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"starttls": 587, "tls": 465, "none": 25}[self.security]

    @model_validator(mode="after")
    def _credentials(self) -> EmailChannelConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not")
        return self


class WebhookChannelConfig(ChannelSettings):
    """A JSON POST to any HTTP endpoint, signed with HMAC-SHA256."""

    type: Literal["webhook"] = Field(description="Generic JSON webhook.")
    url: str = Field(pattern=r"^https?://", description="Endpoint to POST the JSON document to.")
    secret: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key: the X-Gateway-Signature header signs "
        "'<X-Gateway-Timestamp>.<body>'. Write it as '${WEBHOOK_SECRET}'.",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra request headers (e.g. an Authorization token)."
    )


class MqttChannelConfig(ChannelSettings):
    """Publish the JSON document to an MQTT broker."""

    type: Literal["mqtt"] = Field(description="MQTT publish (needs estate-gateway[mqtt]).")
    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int | None = Field(
        None, ge=1, le=65535, description="Broker port; default 1883, or 8883 with tls."
    )
    username: str | None = Field(None, description="User name, if the broker asks for one.")
    password: SecretStr | None = Field(
        None, description="Password; write it as '${MQTT_PASSWORD}', never in the file."
    )
    tls: bool = Field(False, description="Connect over TLS.")
    ca_file: Path | None = Field(None, description="PEM CA file for tls (default: system CAs).")
    client_id: str | None = Field(None, max_length=128, description="Client id; empty: random.")
    topic: str = Field(
        "estate/{site}/notify/{person}",
        min_length=1,
        description="Topic template; fields {site}, {person}, {kind}, {priority}, {category}, "
        "{alarm}. A recipient's 'mqtt_topic' address replaces it.",
    )
    site: str = Field("", description="{site} when the notification names none.")
    qos: Literal[0, 1, 2] = Field(1, description="MQTT quality of service.")
    retain: bool = Field(False, description="Publish retained messages.")

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (8883 if self.tls else 1883)

    @field_validator("topic")
    @classmethod
    def _template(cls, v: str) -> str:
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
        except ValueError as exc:
            raise ValueError(f"topic template {v!r}: {exc}") from None
        unknown = names - MQTT_TOPIC_FIELDS
        if unknown:
            raise ValueError(
                f"topic template {v!r}: unknown field(s) {sorted(unknown)}; "
                f"use {sorted(MQTT_TOPIC_FIELDS)}"
            )
        if "+" in v or "#" in v:
            raise ValueError("topic template must not contain the wildcards '+' or '#'")
        return v

    @model_validator(mode="after")
    def _installed(self) -> MqttChannelConfig:
        _need_module("aiomqtt", "mqtt", "mqtt")
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not")
        return self


class SmsChannelConfig(ChannelSettings):
    """An SMS gateway reached by an HTTP request built from a template."""

    type: Literal["sms"] = Field(description="SMS through an HTTP gateway template.")
    method: Literal["GET", "POST"] = Field("POST", description="HTTP method.")
    url: str = Field(
        pattern=r"^https?://",
        description="URL template; {phone} and {text} are URL-encoded into it.",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Request headers (API keys: '${SMS_API_KEY}')."
    )
    body: str | None = Field(
        None,
        description="Body template (POST) with {phone} and {text}, escaped for content_type: "
        'JSON-escaped for application/json (\'{"to": "{phone}", "msg": "{text}"}\'), '
        "form-encoded for application/x-www-form-urlencoded, as is otherwise.",
    )
    content_type: str = Field("application/json", description="Content-Type of the body.")
    success_status: list[int] = Field(
        default_factory=list, description="HTTP status codes that mean sent; empty: any 2xx."
    )
    success_json_path: str | None = Field(
        None, description="Dotted path of a field of the JSON answer that must match, e.g. 'code'."
    )
    success_value: str | int | bool | None = Field(
        None, description="Value success_json_path must have, e.g. 'OK' or 0."
    )
    content: Literal["short", "text"] = Field(
        "short", description="short (one line with the ack link) or text (the full message)."
    )
    max_chars: int = Field(
        300, ge=20, description="Longest text sent (longer text is cut, with an ellipsis)."
    )

    @model_validator(mode="after")
    def _template(self) -> SmsChannelConfig:
        everywhere = self.url + (self.body or "")
        for fld in ("{phone}", "{text}"):
            if fld not in everywhere:
                raise ValueError(f"neither url nor body contains {fld}")
        if self.body is not None and self.method == "GET":
            raise ValueError("body is set but method is GET; use POST")
        if self.body is not None and self.content_type.split(";")[0].strip().endswith("json"):
            sample = self.body.replace("{phone}", "1").replace("{text}", "a")
            try:
                json.loads(sample)
            except ValueError as exc:
                raise ValueError(f"body is not a JSON template: {exc}") from None
        if (self.success_value is None) != (self.success_json_path is None):
            raise ValueError("set success_json_path and success_value together")
        return self


class AppriseChannelConfig(ChannelSettings):
    """Any service apprise supports, by apprise URL (needs estate-gateway[apprise])."""

    type: Literal["apprise"] = Field(
        description="apprise URLs (https://github.com/caronc/apprise)."
    )
    urls: list[SecretStr] = Field(
        min_length=1,
        description="apprise URLs, e.g. 'tgram://${TG_TOKEN}/${TG_CHAT}'; they hold secrets.",
    )
    body_format: Literal["text", "markdown"] = Field(
        "text", description="Send the text or the markdown form of the message."
    )

    @model_validator(mode="after")
    def _installed(self) -> AppriseChannelConfig:
        _need_module("apprise", "apprise", "apprise")
        return self


ChannelConfig = Annotated[
    WeComChannelConfig
    | DingTalkChannelConfig
    | FeishuChannelConfig
    | EmailChannelConfig
    | WebhookChannelConfig
    | MqttChannelConfig
    | SmsChannelConfig
    | AppriseChannelConfig,
    Field(discriminator="type"),
]


class NotifyConfig(StrictModel):
    """The notification channels of a site (who gets what is in ``oncall:``)."""

    channels: dict[Annotated[str, Field(pattern=_NAME)], ChannelConfig] = Field(
        default_factory=dict,
        description="Channels by name (letters, digits, '_' and '-'); escalation "
        "policies list them in the order to try.",
    )
