"""Where the time of one notification goes, from the gateway's own records
(for bench/alarm_latency.py).

Every step of the chain leaves a UTC ns timestamp in the event store, taken
with the gateway's clock (the system clock, the same as the bench's
``time.time_ns()``):

* ``alarm.activated`` event: the reading's ts (an MQTT reading is stamped
  when the driver receives it, a Modbus reading when it is polled);
* ``notify.escalated`` event: when the escalator took the step (after the
  alarm manager stored the transition and published it on the bus);
* ``deliveries.ts``: when the dispatcher started the channel (before it
  inserts the ``queued`` row);
* ``deliveries.updated_ts``: when the channel's send returned.

With the bench's send and arrival times this splits each latency into
stages; printed as p50 / p99 per stage (nearest rank, ms).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Cycle", "breakdown"]


@dataclass
class Cycle:
    source: str  # the point, e.g. 'sens0012.t'
    sent_ns: int  # bench wall clock just before the value changed at the source
    arrived_ns: dict[str, int] = field(default_factory=dict)  # channel name -> wall ns


def _pct(values: Sequence[float], q: float) -> float:
    v = sorted(values)
    return v[max(0, math.ceil(q * len(v)) - 1)]


def breakdown(db: Path, title: str, cycles: Sequence[Cycle], channel: str) -> list[str]:
    """Stage table for the notifications through ``channel`` (``hook`` or ``mq``)."""
    if not cycles or not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        activated = {
            src: ts
            for ts, src in con.execute("select ts, source from events where type='alarm.activated'")
        }
        escalated: dict[str, int] = {}
        for ts, aid, data in con.execute(
            "select ts, source, data from events where type='notify.escalated'"
        ):
            if channel in json.loads(data).get("channels", []):
                escalated.setdefault(aid, ts)
        delivery: dict[str, tuple[int, int]] = {}
        for aid, ts, upd, data in con.execute(
            "select alarm_id, ts, updated_ts, data from deliveries where channel=? order by id",
            (channel,),
        ):
            if json.loads(data).get("kind") in ("alarm", "escalated"):
                delivery.setdefault(aid, (ts, upd))
    finally:
        con.close()
    stages: dict[str, list[float]] = {
        "source -> reading ts": [],
        "reading -> escalator step": [],
        "escalator step -> dispatch": [],
        "dispatch -> send returned": [],
        "dispatch -> arrival": [],
    }
    for c in cycles:
        arrived = c.arrived_ns.get(channel)
        aid = next((a for a in escalated if a.endswith("@" + c.source)), None)
        if arrived is None or aid is None or c.source not in activated or aid not in delivery:
            continue
        r, e, (d, s) = activated[c.source], escalated[aid], delivery[aid]
        for name, ns in zip(stages, (r - c.sent_ns, e - r, d - e, s - d, arrived - d), strict=True):
            stages[name].append(ns / 1e6)
    n = len(next(iter(stages.values())))
    if n == 0:
        return [f"  {title}: no cycle found in the event store"]
    out = [f"  {title} ({n} cycles): stage p50 / p99 ms"]
    for name, values in stages.items():
        out.append(f"    {name:<30} {_pct(values, 0.5):8.2f} {_pct(values, 0.99):8.2f}")
    return out
