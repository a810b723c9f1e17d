"""The people and vehicles of the demo estate, and their credentials.

:func:`make_roster` draws them from a seeded random generator, so every run
of the demo (and every test) sees the same ~300 residents with cards, ~60
vehicles known by their plates, 6 staff (two of them certified
``hv_electrician`` for the power room) and one blacklisted card (a card
reported lost). The traffic and incident schedulers take the same roster to
know which card or plate to present.

:func:`seed_access` writes the roster into the demo's event store once: a
credential whose id is already stored is left as it is (an operator may have
blacklisted or edited it on the page), so running the demo again adds
nothing and undoes nothing.

Cards are 26-bit Wiegand (facility 18), as the OSDP readers of the demo
report them: the UID is the 24 data bits, ``12XXXX``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway.access.credentials import Credential, CredentialIndex, CredentialStore, Kind

__all__ = [
    "DEFAULT_SEED",
    "FACILITY",
    "DemoHolder",
    "DemoRoster",
    "SeedError",
    "SeedResult",
    "build_credentials",
    "make_roster",
    "seed_access",
]

log = logging.getLogger("gateway.demo.access_seed")

DEFAULT_SEED = 2026
FACILITY = 18  # the Wiegand facility code of the estate's cards

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董"
    "袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊"
    "秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉建红宇晨浩然"
    "欣怡子轩梓涵诺雨泽佳琪思远博文"
)
_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O on Chinese plates
_PROVINCES = ("沪A", "沪B", "沪C", "沪D", "沪E", "沪F", "沪G", "沪H", "苏E", "浙A", "皖A")
_STAFF: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("stf-01", "张工 (电工)", ("hv_electrician",)),
    ("stf-02", "刘工 (电工)", ("hv_electrician",)),
    ("stf-03", "王保安", ("fire_control_operator",)),
    ("stf-04", "赵保安", ()),
    ("stf-05", "孙阿姨 (保洁)", ()),
    ("stf-06", "陈经理", ()),
)


class SeedError(RuntimeError):
    """The roster could not be drawn as asked (more holders than distinct cards)."""


@dataclass(frozen=True, slots=True)
class DemoHolder:
    """One credential of the demo: who holds it and what a reader will see."""

    id: str
    kind: Kind
    holder: str
    group: str
    card: str | None = None  # canonical UID (hex), 26-bit Wiegand data bits
    plate: str | None = None  # canonical plate
    certifications: tuple[str, ...] = ()
    blacklisted: bool = False
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DemoRoster:
    residents: tuple[DemoHolder, ...]
    vehicles: tuple[DemoHolder, ...]
    staff: tuple[DemoHolder, ...]
    blacklisted: DemoHolder

    def __iter__(self) -> Iterator[DemoHolder]:
        yield from self.residents
        yield from self.vehicles
        yield from self.staff
        yield self.blacklisted

    def __len__(self) -> int:
        return len(self.residents) + len(self.vehicles) + len(self.staff) + 1

    @property
    def electricians(self) -> tuple[DemoHolder, ...]:
        return tuple(s for s in self.staff if "hv_electrician" in s.certifications)

    @property
    def walkers(self) -> tuple[DemoHolder, ...]:
        """Who walks through the north gate: residents and the staff who are
        not electricians (those come in by the staff entrance, not simulated)."""
        return self.residents + tuple(s for s in self.staff if s not in self.electricians)


def _uid(number: int) -> str:
    return f"{(FACILITY << 16) | number:06X}"


def _plate(rng: random.Random) -> str:
    prefix = rng.choice(_PROVINCES)
    if rng.random() < 0.2:  # new-energy plates: a D or F and 5 digits
        return prefix + rng.choice("DF") + "".join(rng.choices("0123456789", k=5))
    chars = rng.choices("0123456789", k=5)
    for i in rng.sample(range(5), rng.choice((0, 0, 1, 1, 2))):
        chars[i] = rng.choice(_PLATE_LETTERS)
    return prefix + "".join(chars)


def _name(rng: random.Random) -> str:
    given = rng.choice(_GIVEN) + (rng.choice(_GIVEN) if rng.random() < 0.7 else "")
    return rng.choice(_SURNAMES) + given


def make_roster(
    seed: int = DEFAULT_SEED, *, residents: int = 300, vehicles: int = 60
) -> DemoRoster:
    """The demo's holders, the same for the same arguments."""
    if residents + len(_STAFF) + 1 > 60_000 or residents < 1 or vehicles < 0:
        raise SeedError(f"cannot draw {residents} residents and {vehicles} vehicles")
    rng = random.Random(seed)
    numbers = iter(rng.sample(range(1, 65_536), residents + len(_STAFF) + 1))
    people: list[DemoHolder] = []
    for i in range(1, residents + 1):
        unit = f"{rng.randint(1, 12)}-{rng.randint(1, 33)}{rng.randint(1, 4):02d}"
        people.append(
            DemoHolder(
                id=f"res-{i:04d}",
                kind="resident",
                holder=_name(rng),
                group="residents",
                card=_uid(next(numbers)),
                data={"unit": unit, "phone": f"+86139{rng.randint(0, 99_999_999):08d}"},
            )
        )
    plates: set[str] = set()
    cars: list[DemoHolder] = []
    owners = rng.sample(people, min(vehicles, len(people)))
    for i in range(1, vehicles + 1):
        plate = _plate(rng)
        while plate in plates:
            plate = _plate(rng)
        plates.add(plate)
        owner = owners[(i - 1) % len(owners)]
        cars.append(
            DemoHolder(
                id=f"veh-{i:03d}",
                kind="vehicle",
                holder=owner.holder,
                group="vehicles",
                plate=plate,
                data={"unit": owner.data["unit"], "owner": owner.id},
            )
        )
    staff = tuple(
        DemoHolder(
            id=sid,
            kind="staff",
            holder=name,
            group="staff",
            card=_uid(next(numbers)),
            certifications=certs,
        )
        for sid, name, certs in _STAFF
    )
    lost = DemoHolder(
        id="blk-001",
        kind="resident",
        holder=_name(rng),
        group="residents",
        card=_uid(next(numbers)),
        blacklisted=True,
        data={"note": "挂失卡 card reported lost", "unit": "7-1203"},
    )
    return DemoRoster(tuple(people), tuple(cars), staff, lost)


def build_credentials(roster: DemoRoster, index: CredentialIndex) -> list[Credential]:
    """The roster as credentials (card hashes with ``index``'s key)."""
    return [
        index.make(
            id=h.id,
            kind=h.kind,
            holder=h.holder,
            group=h.group,
            card=h.card,
            plate=h.plate,
            certifications=h.certifications,
            blacklisted=h.blacklisted,
            data=h.data,
        )
        for h in roster
    ]


@dataclass(frozen=True, slots=True)
class SeedResult:
    added: int  # credentials written now
    present: int  # already stored (left as they are)
    skipped: int  # not written: another credential holds the card or plate


async def seed_access(creds: CredentialStore, roster: DemoRoster) -> SeedResult:
    """Store the roster's credentials that ``creds`` (loaded: the running access
    service's store, so its index knows them at once) does not hold yet, in one
    transaction."""
    missing = [c for c in build_credentials(roster, creds) if creds.get(c.id) is None]
    todo: list[Credential] = []
    taken: set[str] = set()
    skipped = 0
    for c in missing:
        keys = creds.keys_of(c)
        if creds.conflicts([c]) or taken.intersection(keys):
            skipped += 1
            log.warning("demo credential %s not seeded: its card or plate is taken", c.id)
        else:
            todo.append(c)
            taken.update(keys)
    await creds.upsert(todo)
    result = SeedResult(len(todo), len(roster) - len(missing), skipped)
    if todo:
        log.info("demo access seed: %d credentials added", len(todo))
    return result
