"""EEMUA 191 figures over a synthetic hour written through the manager."""

from __future__ import annotations

import pytest

from gateway.alarms import BadActor, ChatteringAlarm, compute_kpis, render_text
from gateway.i18n import t
from gateway.model import Priority
from tests.gateway.alarms.harness import START, Harness

S = 10**9
T0 = int(START.timestamp()) * S


async def at(h: Harness, seconds: int) -> None:
    await h.clock.advance((T0 + seconds * S - h.clock.time_ns()) / S)


async def write_history(h: Harness) -> None:
    # period 0: 12 low alarms in 'main' within 6 minutes (a flood)
    for i in range(12):
        await at(h, 30 * i)
        await h.apply(h.ch("door", f"gate{i}"))
    await at(h, 400)
    await h.apply(*(h.ch("door", f"gate{i}", active=False) for i in (0, *range(3, 12))))
    await at(h, 600)  # period 1: a high alarm that stays active (stale tomorrow)
    await h.apply(h.ch("tx-temp", "tx1.temp"))
    await at(h, 1200)  # period 2: a medium one
    await h.apply(h.ch("pressure", "pump1.outlet", level="H"))
    await at(h, 1300)
    await h.apply(h.ch("pressure", "pump1.outlet", active=False))
    await at(h, 1800)  # period 3: two in the 'east' control room
    await h.apply(h.ch("lobby", "door8"), h.ch("lobby", "door9"))
    await at(h, 1900)
    await h.apply(h.ch("lobby", "door8", active=False), h.ch("lobby", "door9", active=False))
    await at(h, 2390)  # period 4: gate1 chatters (3 activations in 40 s)
    await h.apply(h.ch("door", "gate1", active=False))
    for s in (2400, 2420, 2440):
        await at(h, s)
        await h.apply(h.ch("door", "gate1"))
        await at(h, s + 10)
        await h.apply(h.ch("door", "gate1", active=False))
    await at(h, 2980)  # period 5: gate2 shelved, then activates unseen
    await h.apply(h.ch("door", "gate2", active=False))
    await h.m.shelve("door@gate2", "guard1", "contractor on site", 3600)
    await at(h, 3000)
    await h.apply(h.ch("door", "gate2"))
    await at(h, 3010)
    await h.apply(h.ch("door", "gate2", active=False))


async def test_figures_from_the_store(h: Harness) -> None:
    await write_history(h)
    figures = await compute_kpis(
        h.store, T0, T0 + 3600 * S, now_ns=T0 + 25 * 3600 * S, config=h.config
    )
    assert (figures.periods, figures.alarms, figures.activations) == (6, 19, 20)
    main, east = figures.rooms
    assert (main.control_room, main.alarms, main.max_per_period, main.flood_periods) == (
        "main",
        17,
        12,
        1,
    )
    assert main.mean_per_period == pytest.approx(17 / 6)
    assert main.flood_percent == pytest.approx(100 / 6)
    assert (east.control_room, east.alarms, east.max_per_period, east.flood_periods) == (
        "east",
        2,
        2,
        0,
    )
    assert figures.flood_percent == pytest.approx(100 / 6)
    assert figures.bad_actors[:3] == (
        BadActor("door", "gate1", 4),
        BadActor("door", "gate2", 2),  # the hidden activation counts here
        BadActor("door", "gate0", 1),
    )
    assert len(figures.bad_actors) == 10
    assert figures.chattering == (ChatteringAlarm("door@gate1", 1),)
    (stale,) = figures.stale
    assert stale.id == "tx-temp@tx1.temp"
    assert stale.hours == pytest.approx(25 - 600 / 3600)
    shares = {
        s.priority: (s.count, round(s.percent, 1), s.guide_percent) for s in figures.priorities
    }
    assert shares == {
        Priority.CRITICAL: (0, 0.0, None),
        Priority.HIGH: (1, 5.3, 5.0),
        Priority.MEDIUM: (1, 5.3, 15.0),
        Priority.LOW: (17, 89.5, 80.0),
    }
    # a window that holds only the flood period
    first = await compute_kpis(h.store, T0, T0 + 600 * S, config=h.config)
    assert (first.periods, first.alarms, first.flood_percent) == (1, 12, 100.0)
    assert first.stale == ()  # as of the end of that window nothing is 24 h old


async def test_render_text_in_both_locales(h: Harness) -> None:
    await write_history(h)
    figures = await compute_kpis(
        h.store, T0, T0 + 3600 * S, now_ns=T0 + 25 * 3600 * S, config=h.config
    )
    en = render_text(figures, "en", timezone="Asia/Shanghai")
    assert en.splitlines()[0] == (
        "Alarm system performance (EEMUA 191), 2026-03-02 16:00 to 2026-03-02 17:00 (Asia/Shanghai)"
    )
    assert (
        "Control room main: 17 alarms, mean 2.83 and max 12 per period, in flood 16.7% of periods"
        in en
    )
    assert "  1. door @ gate1: 4" in en
    assert "  door@gate1: 1 episode(s)" in en
    assert "Stale alarms (active more than 24 h): 1" in en
    assert "  low: 17 (89.5%), guide about 80%" in en
    zh = render_text(figures, "zh-CN", timezone="Asia/Shanghai")
    assert "控制室 main：报警 17 条，每时段平均 2.83、最多 12，泛滥时段占 16.7%" in zh
    assert "  低：17（89.5%），参考约 80%" in zh
    assert "  紧急：0（0.0%）" in zh
    assert t("alarms.kpi.none", "zh-CN") == "  无"


async def test_empty_history_and_bad_ranges(h: Harness) -> None:
    figures = await compute_kpis(h.store, T0, T0 + 3600 * S)
    assert (figures.alarms, figures.flood_percent, figures.bad_actors) == (0, 0.0, ())
    assert "  none" in render_text(figures, "en")
    with pytest.raises(ValueError, match="must be after"):
        await compute_kpis(h.store, T0, T0)
