"""Topology, sliding windows and the config model."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.alarms import AlarmConfigError, AlarmsConfig, Topology
from gateway.alarms.trackers import add, deadline_below, prune


def test_topology_is_transitive_both_ways() -> None:
    topo = Topology({"pump1": ["feeder1"], "s1": ["pump1"], "s2": ["pump1", "feeder1"]})
    assert topo.upstream_of("s1") == {"pump1", "feeder1"}
    assert topo.upstream_of("feeder1") == frozenset()
    assert topo.dependants_of("feeder1") == {"pump1", "s1", "s2"}
    assert topo.dependants_of("s1") == frozenset()
    assert topo.upstream_of("unknown") == frozenset()


def test_deep_chains_do_not_hit_the_recursion_limit() -> None:
    chain = {f"d{i}": [f"d{i + 1}"] for i in range(1500)}
    assert len(Topology(chain).upstream_of("d0")) == 1500


@pytest.mark.parametrize(
    ("upstream", "match"),
    [
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, r"cycle: a -> b -> c -> a"),
        ({"a": ["a"]}, r"cycle: a -> a"),
        ({"x": ["a"], "a": ["b"], "b": ["a"]}, r"cycle: a -> b -> a"),
        ({"a": "feeder1"}, "must be a list of device ids"),
        ({"a": [""]}, "is not a device id"),
    ],
)
def test_bad_topology_is_refused_clearly(upstream: dict[str, object], match: str) -> None:
    with pytest.raises(AlarmConfigError, match=match):
        Topology(upstream)  # type: ignore[arg-type]


def test_windows_prune_add_and_deadlines() -> None:
    w: tuple[int, ...] = ()
    for ts in (10, 20, 30):
        w = add(w, ts, 100)
    assert w == (10, 20, 30)
    assert add(w, 15, 100) == (10, 15, 20, 30)  # out of order stays sorted
    assert prune(w, 120, 100) == (30,)  # (20, 120] holds only 30
    assert add(w, 125, 100) == (30, 125)
    # fewer than 3 once the oldest expires; fewer than 2 once the second does
    assert deadline_below(w, 3, 100) == 110
    assert deadline_below(w, 2, 100) == 120
    assert deadline_below((), 3, 100) == 0


def test_config_defaults_and_validation() -> None:
    cfg = AlarmsConfig()
    assert cfg.control_rooms == ["main"]
    assert (cfg.chattering.count, cfg.chattering.window_s) == (3, 60)
    assert (cfg.flood.start_above, cfg.flood.end_below, cfg.flood.window_s) == (10, 5, 600)
    assert (cfg.shelve.max_hours, cfg.stale_after_h, cfg.latch_critical) == (24, 24, True)
    with pytest.raises(ValidationError, match="could never end"):
        AlarmsConfig.model_validate({"flood": {"start_above": 3, "end_below": 5}})
    with pytest.raises(ValidationError, match="listed twice"):
        AlarmsConfig.model_validate({"control_rooms": ["main", "main"]})
    with pytest.raises(ValidationError, match="letters, digits"):
        AlarmsConfig.model_validate({"control_rooms": ["main room"]})
    with pytest.raises(ValidationError, match="Extra inputs"):
        AlarmsConfig.model_validate({"floods": {}})


def test_every_config_field_is_described() -> None:
    from pydantic import BaseModel

    def walk(model: type[BaseModel]) -> None:
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann)

    walk(AlarmsConfig)
