"""The dispatcher with real channels and a real event store: retries with
backoff on a ManualClock, fallback to the next channel, rate limits (ours and
the vendor's), the deliveries table, concurrency, and no secret in any log."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from gateway.clock import ManualClock
from gateway.model import Priority
from gateway.notify.channels.base import (
    Channel,
    ChannelPolicy,
    build_channel,
)
from gateway.notify.config import NotifyConfig
from gateway.notify.dispatcher import DeliveryResult, Dispatcher
from gateway.notify.message import Notification, Recipient, Rendered, new_id
from gateway.notify.ratelimit import TokenBucket
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import deliveries
from tests.fixtures import receivers
from tests.fixtures.receivers import Receiver, Reply
from tests.fixtures.servers import free_port
from tests.gateway.notify.test_templates import VIEW
from tests.gateway.storage.test_eventstore import Backend, _pg_schema

receiver = receivers.receiver

ZHANG = Recipient("zhang", "张伟", "zh-CN", {"mobile": "13800000001"})


def alarm(recipient: Recipient = ZHANG) -> Notification:
    return Notification(
        new_id(), "alarm", recipient, VIEW, ack_url="http://gw/ack/t1", priority=Priority.HIGH
    )


@pytest_asyncio.fixture(loop_scope="function")
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    async with EventStore(f"sqlite+aiosqlite:///{tmp_path}/gw.db") as s:
        yield s


async def rows(store: EventStore) -> list[dict[str, Any]]:
    async with store.begin() as conn:
        result = await conn.execute(select(deliveries).order_by(deliveries.c.id))
        return [dict(r._mapping) for r in result]


def channels(rx: Receiver, **cfgs: Any) -> dict[str, Channel]:
    """Channels from NotifyConfig entries; 'hook' (the receiver's webhook) is always there."""
    entries = {
        "hook": {"type": "webhook", "url": rx.webhook_url, "secret": rx.webhook_secret},
        **cfgs,
    }
    cfg = NotifyConfig.model_validate({"channels": entries})
    return {name: build_channel(name, c) for name, c in cfg.channels.items()}


def wecom(rx: Receiver, **over: Any) -> dict[str, Any]:
    return {"type": "wecom", "key": rx.wecom_key, "url": rx.wecom_url, **over}


async def until(check: Callable[[], bool], what: str = "", timeout: float = 5.0) -> None:
    """Wait in real time (the channels do real I/O) until ``check`` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def sleeping(clock: ManualClock, task: asyncio.Task[Any], count: int = 1) -> None:
    """Wait until ``task`` is asleep on the clock (or done)."""
    await until(lambda: task.done() or clock.sleepers >= count, "a sleeper on the clock")


class Scripted(Channel):
    """An in-test channel: raises the queued errors in turn, can be held at a gate."""

    def __init__(
        self,
        name: str,
        errors: Sequence[BaseException | None] = (),
        policy: ChannelPolicy | None = None,
        gate: asyncio.Event | None = None,
    ) -> None:
        super().__init__(name, policy)
        self.errors = list(errors)
        self.gate = gate
        self.sent: list[Notification] = []
        self.calls = 0

    def secrets(self) -> list[str]:
        return ["scripted-secret-42"]

    async def send(self, n: Notification, rendered: Rendered) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error
        self.sent.append(n)


# -- recording ----------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="function", params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite+aiosqlite:///{tmp_path}/gw.db")
    else:
        async for b in _pg_schema():
            yield b


async def test_a_delivery_is_recorded(backend: Backend, receiver: Receiver) -> None:
    async with backend.store() as store:
        d = Dispatcher(channels(receiver), store, ManualClock())
        n = alarm()
        result = await d.deliver(n, ["hook"])
        await d.close()
        assert result == DeliveryResult("sent", "hook", 1, None, result.trail)
        (row,) = await rows(store)
    assert receiver.requests_to("/webhook")[0].verified
    assert row["status"] == "sent" and row["attempts"] == 1 and row["error"] is None
    assert (row["notification"], row["alarm_id"], row["person"], row["channel"]) == (
        n.id,
        "tx1-hot@tx1.winding_temp_a",
        "zhang",
        "hook",
    )
    assert row["data"]["chain"] == ["hook"] and row["data"]["kind"] == "alarm"
    assert row["ts"] == ManualClock().time_ns()


# -- retries, backoff, fallback --------------------------------------------------------


async def test_retry_with_backoff_then_success(store: EventStore, receiver: Receiver) -> None:
    clock = ManualClock()
    receiver.script("/webhook", Reply(status=500), Reply(status=503))
    chans = channels(
        receiver,
        hook={
            "type": "webhook",
            "url": receiver.webhook_url,
            "secret": receiver.webhook_secret,
            "retries": 3,
            "backoff_s": 2,
            "backoff_max_s": 60,
        },
    )
    d = Dispatcher(chans, store, clock, rng=random.Random(7))
    task = asyncio.create_task(d.deliver(alarm(), ["hook"]))
    await sleeping(clock, task)
    assert len(receiver.requests_to("/webhook")) == 1
    await clock.advance(0.99)  # the first wait is 1..2 s (2 s with "equal jitter")
    assert len(receiver.requests_to("/webhook")) == 1
    await clock.advance(1.01)
    await until(lambda: len(receiver.requests_to("/webhook")) == 2, "the first retry")
    await sleeping(clock, task)
    await clock.advance(4)  # the second wait is 2..4 s
    result = await asyncio.wait_for(task, 5)
    assert (result.status, result.channel, result.attempts) == ("sent", "hook", 3)
    (row,) = await rows(store)
    assert row["status"] == "sent" and row["attempts"] == 3
    assert [e["error"][:8] for e in row["data"]["errors"]] == ["HTTP 500", "HTTP 503"]
    await d.close()


async def test_a_failing_channel_falls_back(store: EventStore, receiver: Receiver) -> None:
    clock = ManualClock()
    chans = channels(receiver, down={"type": "webhook", "url": receiver.refused_url, "retries": 1})
    d = Dispatcher(chans, store, clock)
    task = asyncio.create_task(d.deliver(alarm(), ["down", "hook"]))
    await sleeping(clock, task)
    await clock.advance(1)  # backoff_s 1: the retry
    result = await asyncio.wait_for(task, 5)
    assert (result.status, result.channel, result.attempts) == ("sent", "hook", 3)
    assert [(a.channel, a.status, a.attempts) for a in result.trail] == [
        ("down", "fell_back", 2),
        ("hook", "sent", 1),
    ]
    down, hook = await rows(store)
    assert down["status"] == "fell_back" and "cannot connect" in down["error"]
    assert hook["status"] == "sent" and hook["data"]["position"] == 1
    assert d.counts["fell_back"] == 1 and d.counts["sent"] == 1
    await d.close()


async def test_every_channel_failing(store: EventStore, receiver: Receiver) -> None:
    receiver.script("/webhook", Reply(status=500))
    d = Dispatcher(
        channels(receiver, hook={"type": "webhook", "url": receiver.webhook_url, "retries": 0}),
        store,
        ManualClock(),
    )
    result = await d.deliver(alarm(), ["hook"])
    assert (result.status, result.channel, result.attempts) == ("failed", None, 1)
    assert result.error is not None and "HTTP 500" in result.error
    (row,) = await rows(store)
    assert row["status"] == "failed"
    await d.close()


async def test_not_retryable_falls_back_at_once(
    store: EventStore, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    d = Dispatcher(
        channels(receiver, wecom=wecom(receiver, key="wrong-key-55555")), store, ManualClock()
    )
    result = await d.deliver(alarm(), ["wecom", "hook"])
    assert result.channel == "hook"
    assert [(a.status, a.attempts) for a in result.trail] == [("fell_back", 1), ("sent", 1)]
    assert "93000" in (result.trail[0].error or "")
    assert "wrong-key-55555" not in caplog.text
    assert "notification" in caplog.text and "wecom: fell_back" in caplog.text
    await d.close()


async def test_no_address_goes_to_the_next_channel(store: EventStore, receiver: Receiver) -> None:
    mail = {
        "type": "email",
        "host": "127.0.0.1",
        "port": free_port(),
        "security": "none",
        "from_address": "gw@x.cn",
    }
    d = Dispatcher(channels(receiver, mail=mail), store, ManualClock())
    result = await d.deliver(alarm(), ["mail", "hook"])
    assert result.channel == "hook"
    first, _ = await rows(store)
    assert (first["status"], first["attempts"]) == ("fell_back", 0)
    assert first["error"] == "recipient 'zhang' has no email address"
    await d.close()


async def test_unknown_channel_and_a_crashing_channel(
    store: EventStore, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    chans = channels(receiver)
    chans["crashy"] = Scripted("crashy", [KeyError("boom scripted-secret-42")])
    d = Dispatcher(chans, store, ManualClock())
    result = await d.deliver(alarm(), ["nope", "crashy", "hook"])
    assert result.channel == "hook"
    nope, crashy, _ = await rows(store)
    assert nope["error"] == "no channel named 'nope'"
    assert crashy["error"] == "internal error in the channel: KeyError"
    assert d.counts["crashes"] == 1
    assert "KeyError" in caplog.text and "scripted-secret-42" not in caplog.text
    await d.close()


async def test_a_hanging_channel_is_abandoned(store: EventStore) -> None:
    hang = Scripted("hang", gate=asyncio.Event(), policy=ChannelPolicy(retries=0, timeout_s=0.05))
    d = Dispatcher({"hang": hang}, store, ManualClock(), grace_s=0.05)
    result = await d.deliver(alarm(), ["hang"])
    assert result.status == "failed" and "no result within 0.1 s" in (result.error or "")


async def test_empty_chain() -> None:
    d = Dispatcher({}, None, ManualClock())
    assert (await d.deliver(alarm(), [])).status == "failed"
    with pytest.raises(TypeError):
        await d.deliver(alarm(), "hook")


# -- rate limits ----------------------------------------------------------------------


async def test_rate_limit_exhausted_falls_back(store: EventStore, receiver: Receiver) -> None:
    clock = ManualClock()
    cfg = wecom(receiver, rate_per_min=60, burst=1, rate_wait_s=0)
    d = Dispatcher(channels(receiver, wecom=cfg), store, clock)
    first = await d.deliver(alarm(), ["wecom", "hook"])
    second = await d.deliver(alarm(), ["wecom", "hook"])
    assert first.channel == "wecom"
    assert second.channel == "hook"
    assert second.trail[0].status == "rate_limited" and second.trail[0].attempts == 0
    only = await d.deliver(alarm(), ["wecom"])
    assert only.status == "rate_limited"
    await clock.advance(1)  # one token per second
    assert (await d.deliver(alarm(), ["wecom"])).channel == "wecom"
    statuses = [r["status"] for r in await rows(store)]
    assert statuses == ["sent", "rate_limited", "sent", "rate_limited", "sent"]
    assert len(receiver.requests_to("/wecom/send")) == 2
    await d.close()


async def test_rate_limit_waits_within_its_bound(receiver: Receiver) -> None:
    clock = ManualClock()
    cfg = wecom(receiver, rate_per_min=30, burst=1, rate_wait_s=3)  # a token every 2 s
    d = Dispatcher(channels(receiver, wecom=cfg), None, clock)
    tasks = [asyncio.create_task(d.deliver(alarm(), ["wecom"])) for _ in range(3)]
    await until(lambda: tasks[0].done(), "the first message")
    await sleeping(clock, tasks[1], count=1)
    assert tasks[2].done() and tasks[2].result().status == "rate_limited"  # it would wait 4 s
    await clock.advance(2)
    assert (await asyncio.wait_for(tasks[1], 5)).channel == "wecom"
    await d.close()


async def test_vendor_rate_limit_holds_the_channel(store: EventStore, receiver: Receiver) -> None:
    clock = ManualClock()
    receiver.script("/wecom/send", Reply(json={"errcode": 45009, "errmsg": "api freq out"}))
    d = Dispatcher(channels(receiver, wecom=wecom(receiver)), store, clock)
    result = await d.deliver(alarm(), ["wecom", "hook"])
    assert result.channel == "hook" and result.trail[0].status == "rate_limited"
    again = await d.deliver(alarm(), ["wecom", "hook"])  # held for 60 s: not even tried
    assert again.trail[0].status == "rate_limited" and again.trail[0].attempts == 0
    assert len(receiver.requests_to("/wecom/send")) == 1
    await clock.advance(60)
    assert (await d.deliver(alarm(), ["wecom", "hook"])).channel == "wecom"
    await d.close()


async def test_short_retry_after_is_waited_for(receiver: Receiver) -> None:
    clock = ManualClock()
    receiver.script("/webhook", Reply(status=429, headers={"Retry-After": "3"}))
    d = Dispatcher(channels(receiver), None, clock, rng=random.Random(1))
    task = asyncio.create_task(d.deliver(alarm(), ["hook"]))
    await sleeping(clock, task)
    await clock.advance(1)  # the backoff ...
    await sleeping(clock, task)
    assert len(receiver.requests_to("/webhook")) == 1
    await clock.advance(2)  # ... then the rest of the 3 s hold
    result = await asyncio.wait_for(task, 5)
    assert (result.channel, result.attempts) == ("hook", 2)
    await d.close()


def test_token_bucket() -> None:
    clock = ManualClock()
    bucket = TokenBucket(60, 2, clock)
    assert [bucket.reserve(0) for _ in range(3)] == [0, 0, None]
    assert bucket.reserve(1) == pytest.approx(1.0)  # booked: the next waits longer
    assert bucket.reserve(1.5) is None
    assert bucket.reserve(2) == pytest.approx(2.0)
    assert TokenBucket(40, None, clock).burst == 10
    free = TokenBucket(None, None, clock)
    assert all(free.reserve(0) == 0 for _ in range(1000))
    free.hold(30)
    assert free.reserve(10) is None and free.reserve(30) == pytest.approx(30)
    with pytest.raises(ValueError):
        TokenBucket(0, None, clock)


async def test_token_bucket_refills_on_the_clock() -> None:
    clock = ManualClock()
    bucket = TokenBucket(6, 1, clock)  # one per 10 s
    assert bucket.reserve(0) == 0
    assert bucket.wait_time() == pytest.approx(10)
    await clock.advance(4)
    assert bucket.wait_time() == pytest.approx(6)
    await clock.advance(600)
    assert bucket.tokens == pytest.approx(1)  # never more than the burst


# -- concurrency and the store ----------------------------------------------------------


async def test_a_slow_channel_does_not_delay_others(store: EventStore, receiver: Receiver) -> None:
    gate = asyncio.Event()
    chans = channels(receiver)
    chans["slowmail"] = Scripted("slowmail", gate=gate)
    d = Dispatcher(chans, store, ManualClock())
    slow = d.submit(alarm(), ["slowmail"])
    fast = d.submit(alarm(), ["hook"])
    assert d.pending == 2
    await asyncio.wait_for(fast, 5)
    assert fast.result().channel == "hook" and not slow.done()
    gate.set()
    await d.drain()
    assert slow.result().channel == "slowmail" and d.pending == 0
    assert sorted(r["status"] for r in await rows(store)) == ["sent", "sent"]
    await d.close()


async def test_close_can_cancel_what_is_waiting(store: EventStore) -> None:
    stuck = Scripted("stuck", gate=asyncio.Event())
    d = Dispatcher({"stuck": stuck}, store, ManualClock())
    task = d.submit(alarm(), ["stuck"])
    await until(lambda: stuck.calls == 1, "the delivery to start")
    await d.close(cancel=True)
    assert task.cancelled() and d.pending == 0
    (row,) = await rows(store)
    assert row["status"] == "queued"


async def test_drain_waits_for_everything(receiver: Receiver) -> None:
    d = Dispatcher(channels(receiver), None, ManualClock())
    tasks = [d.submit(alarm(), ["hook"]) for _ in range(20)]
    await d.drain()
    assert all(t.done() and t.result().ok for t in tasks)
    assert len(receiver.requests_to("/webhook")) == 20
    await d.close()


async def test_a_store_that_is_down_does_not_stop_messages(
    tmp_path: Path, receiver: Receiver
) -> None:
    store = EventStore(f"sqlite+aiosqlite:///{tmp_path}/gw.db")  # never opened
    d = Dispatcher(channels(receiver), store, ManualClock())
    result = await d.deliver(alarm(), ["hook"])
    assert result.ok and d.counts["record_errors"] == 2
    await d.close()


async def test_secrets_never_reach_the_log(
    store: EventStore, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = {
        "wecom": "wecom-secret-key-1",
        "ding": "ding-token-secret-2",
        "dsec": "SECding-sign-secret-3",
        "feishu": "feishu-token-secret-4",
        "hooksec": "hook-secret-5",
        "smtp": "smtp-password-6",
    }
    cfgs = {
        "wecom": wecom(receiver, key=secrets["wecom"], retries=0),
        "ding": {
            "type": "dingtalk",
            "url": receiver.dingtalk_url,
            "retries": 0,
            "access_token": secrets["ding"],
            "secret": secrets["dsec"],
        },
        "feishu": {
            "type": "feishu",
            "url": receiver.feishu_url,
            "retries": 0,
            "token": secrets["feishu"],
        },
        "hook2": {
            "type": "webhook",
            "url": receiver.webhook_url,
            "secret": secrets["hooksec"],
            "retries": 0,
        },
        "mail": {
            "type": "email",
            "host": "127.0.0.1",
            "port": free_port(),
            "security": "none",
            "from_address": "gw@x.cn",
            "username": "gw",
            "password": secrets["smtp"],
            "retries": 0,
        },
    }
    d = Dispatcher(channels(receiver, **cfgs), store, ManualClock())
    who = Recipient("zhang", "张伟", "zh-CN", {"email": "z@x.cn"})
    result = await d.deliver(alarm(who), ["wecom", "ding", "feishu", "hook2", "mail"])
    assert result.status == "failed" and len(result.trail) == 5
    stored = repr(await rows(store))
    for secret in secrets.values():
        assert secret not in caplog.text
        assert secret not in stored
    await d.close()
