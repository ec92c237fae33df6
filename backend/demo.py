"""The demo community: ``billtalk demo seed``.

A deterministic community of two buildings (A and B). For the same arguments
(and the same ``BILLTALK_SECRET_KEY``) it always produces the same households,
residents, readings, bills, balances, link codes and service token:

* tiered electricity (0–200 kWh at 0.52, 200–400 at 0.57, above 400 at 0.82),
  flat water (a price rise six months ago: a second tariff version) and gas,
  and a property fee of 2.50 per m² per month;
* monthly smart-meter readings with seasonality: summer air conditioning
  doubles electricity, winter heating multiplies gas;
* about half the households pay everything on time, a quarter pay part of each
  bill, a quarter stopped paying two to four months ago (overdue, with
  reminders in the outbox); a few pay electricity by autopay;
* each household has a saved payment method and one link code (for its
  primary resident).

Seeding an existing database
----------------------------
Seeding is idempotent: if the database already holds exactly this community
(same households and the same seed), the command writes nothing and prints the
same JSON again. If it holds anything else, it refuses (exit code 2) unless
``--reset`` is given, which deletes every billing row first.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select

from backend.adapters import orm
from backend.bootstrap import ensure_database
from backend.domain import bills as billing
from backend.domain.tariffs import Tier, tiers_to_json
from backend.gateway.base import PaymentGateway
from backend.service_layer import services
from backend.service_layer.unit_of_work import UnitOfWork
from billtalk.db import make_engine
from billtalk.settings import get_settings

BUILDINGS = (("A", "Building A 甲栋"), ("B", "Building B 乙栋"))
UNITS_PER_FLOOR = 4
FIRST_NAMES_EN = (
    "Alice",
    "Ben",
    "Chloe",
    "David",
    "Emma",
    "Frank",
    "Grace",
    "Henry",
    "Iris",
    "Jack",
    "Kate",
    "Leo",
    "Mia",
    "Noah",
    "Olivia",
    "Paul",
)
FAMILY_EN = ("Smith", "Brown", "Wilson", "Taylor", "Lee", "Walker", "Hall", "Young")
NAMES_ZH = (
    "王伟",
    "李娜",
    "张敏",
    "刘洋",
    "陈静",
    "杨磊",
    "赵丽",
    "黄勇",
    "周杰",
    "吴芳",
    "徐强",
    "孙悦",
)
SAVED_METHODS = (
    ("card", "Visa •••• 4242", "tok_visa"),
    ("alipay", "Alipay 支付宝", "tok_success"),
    ("wechat_pay", "WeChat Pay 微信支付", "tok_success"),
    ("bank_transfer", "ICBC account •••• 0117", "tok_success"),
    ("wallet", "Community wallet", "tok_success"),
)
#: Electricity seasonal factors (air conditioning in summer, some heating in winter).
ELECTRICITY_SEASON = {
    1: 1.15,
    2: 1.05,
    3: 0.9,
    4: 0.85,
    5: 1.0,
    6: 1.35,
    7: 1.8,
    8: 1.85,
    9: 1.3,
    10: 0.9,
    11: 0.95,
    12: 1.1,
}
#: Gas seasonal factors (winter heating).
GAS_SEASON = {
    1: 2.4,
    2: 2.1,
    3: 1.5,
    4: 1.0,
    5: 0.7,
    6: 0.55,
    7: 0.5,
    8: 0.5,
    9: 0.6,
    10: 0.9,
    11: 1.5,
    12: 2.2,
}


@dataclass(frozen=True)
class Profile:
    """A simulated household's habits (monthly base usage per utility, paying behaviour)."""

    kind: str
    stop: int
    electricity: float
    water: float
    gas: float
    autopay: bool


def _tenths(simulated: float) -> Decimal:
    """A simulated usage as an exact meter increment in tenths.

    The random simulation of consumption uses floats; they become exact integers
    of tenths here, before anything is stored or priced.
    """
    return Decimal(round(simulated * 10)).scaleb(-1)


class SeedConflict(RuntimeError):
    """The database already holds a different community."""


@dataclass(frozen=True)
class DemoHousehold:
    """One seeded household as printed by the command."""

    household_id: str
    unit: str
    resident_ids: list[str]
    link_code: str


def _secret(purpose: str, seed: int) -> str:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"billtalk-demo/{purpose}/{seed}".encode(), hashlib.sha256).hexdigest()


def service_token_for(seed: int) -> str:
    """The demo service token: derived from the secret key and seed (so re-runs agree)."""
    return f"bt_svc_demo_{_secret('service-token', seed)[:40]}"


def staff_token_for(seed: int) -> str:
    """The demo staff token."""
    return f"bt_sta_demo_{_secret('staff-token', seed)[:40]}"


def _link_code(seed: int, household_id: str, taken: set[str]) -> str:
    n = int(_secret(f"link-code/{household_id}", seed)[:12], 16)
    code = f"{n % 1_000_000:06d}"
    while code in taken:
        n += 7919
        code = f"{n % 1_000_000:06d}"
    taken.add(code)
    return code


def _months_back(today: date, months: int) -> list[date]:
    """The first days of the ``months`` complete months before ``today``'s month."""
    first = today.replace(day=1)
    out = []
    for _ in range(months):
        first = (first - timedelta(days=1)).replace(day=1)
        out.append(first)
    return list(reversed(out))


def _layout(n: int) -> list[tuple[str, str, int, str]]:
    """(household_id, unit, floor, building_id) for ``n`` households over two buildings."""
    out = []
    per_building = [(n + 1) // 2, n // 2]
    for (bid, _), count in zip(BUILDINGS, per_building, strict=True):
        for i in range(count):
            floor, door = divmod(i, UNITS_PER_FLOOR)
            code = f"{bid}{floor + 1:02d}{door + 1:02d}"
            out.append((f"hh-{code}", f"{bid}-{floor + 1:02d}{door + 1:02d}", floor + 1, bid))
    return out


def _households_json(
    seed: int, n: int, layout: list[tuple[str, str, int, str]], residents: dict[str, list[str]]
) -> list[DemoHousehold]:
    taken: set[str] = set()
    return [
        DemoHousehold(hid, unit, residents[hid], _link_code(seed, hid, taken))
        for hid, unit, _, _ in layout
    ]


def _resident_ids(
    rng: random.Random, layout: list[tuple[str, str, int, str]]
) -> dict[str, list[str]]:
    out = {}
    for hid, _, _, _ in layout:
        count = rng.choice((1, 2, 2, 3))
        out[hid] = [f"r-{hid[3:]}-{k + 1}" for k in range(count)]
    return out


def reset_billing_data(url: str) -> None:
    """Delete every billing row (keeps the schema and its migrations)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(orm.metadata.sorted_tables):
                conn.execute(delete(table))
    finally:
        engine.dispose()


def seed(
    url: str,
    *,
    households: int = 40,
    seed: int = 7,
    months: int = 12,
    today: date | None = None,
    reset: bool = False,
    gateway: PaymentGateway | None = None,
    progress: Callable[[int], None] | None = None,
    set_total: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Create the demo community in the database at ``url`` (migrating it first).

    Returns:
        The CONTRACTS.md JSON: ``{"households": [...], "service_token": str}`` plus
        ``staff_token``, ``today`` and ``already_seeded``.

    Raises:
        SeedConflict: the database holds a different community and ``reset`` is false.
        ValueError: bad arguments.
    """
    _check_arguments(households, months)
    from backend.gateway import get_gateway

    today = today or datetime.now(UTC).date()
    gateway = gateway or get_gateway()
    ensure_database(url)
    rng = random.Random(seed)
    layout = _layout(households)
    residents = _resident_ids(rng, layout)
    demo = _households_json(seed, households, layout, residents)
    result = _contract_json(seed, demo, today)
    engine = make_engine(url)
    uow = UnitOfWork(engine)
    try:
        if _holds_this_community(uow, demo, reset):
            result["already_seeded"] = True
            return result
        if reset:
            reset_billing_data(url)
        month_starts = _months_back(today, months)
        if set_total is not None:
            set_total(households * (months + 1))
        _create_community(uow, rng, layout, residents, demo, month_starts, today, seed)
        if progress:
            progress(households)
        _simulate(uow, gateway, rng, layout, month_starts, today, progress)
        services.run_reminders(uow, today=today)
    finally:
        engine.dispose()
    return result


def _check_arguments(households: int, months: int) -> None:
    if households < 1 or households > 5000:
        raise ValueError("--households must be between 1 and 5000")
    if months < 1 or months > 60:
        raise ValueError("--months must be between 1 and 60")


def _contract_json(seed: int, demo: list[DemoHousehold], today: date) -> dict[str, Any]:
    """What ``billtalk demo seed`` prints (CONTRACTS.md, "Demo data")."""
    return {
        "households": [
            {
                "household_id": h.household_id,
                "unit": h.unit,
                "resident_ids": h.resident_ids,
                "link_code": h.link_code,
            }
            for h in demo
        ],
        "service_token": service_token_for(seed),
        "staff_token": staff_token_for(seed),
        "today": today.isoformat(),
        "already_seeded": False,
    }


def _holds_this_community(uow: UnitOfWork, demo: list[DemoHousehold], reset: bool) -> bool:
    """Whether the database already holds exactly this community (seeding is then a no-op).

    Raises:
        SeedConflict: it holds another community and ``reset`` is false.
    """
    with uow:
        existing = set(uow.session.scalars(select(orm.Household.household_id)))
        marker = uow.session.scalars(
            select(orm.LinkCode).where(
                orm.LinkCode.code_hash == services._code_hash(demo[0].link_code)
            )
        ).first()
    if not existing or reset:
        return False
    if (
        existing == {h.household_id for h in demo}
        and marker is not None
        and marker.resident_id == demo[0].resident_ids[0]
    ):
        return True
    raise SeedConflict(
        "the database already holds a different community "
        f"({len(existing)} households); re-run with --reset to replace it"
    )


def _create_community(
    uow: UnitOfWork,
    rng: random.Random,
    layout: list[tuple[str, str, int, str]],
    residents: dict[str, list[str]],
    demo: list[DemoHousehold],
    month_starts: list[date],
    today: date,
    seed: int,
) -> None:
    """Buildings, tariffs, households with their residents, meters and link codes, tokens."""
    start = month_starts[0]
    installed = datetime.combine(start - timedelta(days=40), time(), tzinfo=UTC)
    price_change = month_starts[len(month_starts) // 2]
    now = datetime.now(UTC)
    link_codes_expire = datetime.combine(max(today, now.date()), time(), tzinfo=UTC) + timedelta(
        days=30
    )
    with uow:
        s = uow.session
        for bid, name in BUILDINGS:
            s.add(orm.Building(building_id=bid, name=name, address=f"{name}, 88 Lakeside Road"))
        s.add_all(_tariffs(price_change))
        s.flush()
        for (hid, unit, floor, bid), h in zip(layout, demo, strict=True):
            _add_household(s, rng, hid, unit, floor, bid, installed)
            _add_residents(s, rng, hid, residents[hid])
            _add_meters(s, rng, hid, installed)
            s.add(
                orm.LinkCode(
                    code_hash=services._code_hash(h.link_code),
                    resident_id=residents[hid][0],
                    created_at=now,
                    expires_at=link_codes_expire,
                )
            )
        for token, scope in (
            (service_token_for(seed), "service"),
            (staff_token_for(seed), "staff"),
        ):
            s.add(
                orm.ApiToken(
                    token_hash=services.hash_token(token),
                    scope=scope,
                    name=f"demo {scope} (seed {seed})",
                    created_at=now,
                )
            )
        uow.commit()


def _tariffs(price_change: date) -> list[orm.Tariff]:
    """Tiered electricity, flat water (its price rises mid-history), gas, the area fee."""
    since = date(2000, 1, 1)
    electricity = orm.Tariff(
        utility="electricity",
        kind="tiered",
        name="Residential tiered electricity",
        effective_from=since,
        unit="kWh",
        fixed_monthly=Decimal("0.00"),
        tiers=tiers_to_json(
            [
                Tier(Decimal(200), Decimal("0.52")),
                Tier(Decimal(400), Decimal("0.57")),
                Tier(None, Decimal("0.82")),
            ]
        ),
    )
    #: (utility, kind, name, effective from, unit, unit price, fixed monthly charge)
    priced = (
        ("water", "flat", "Residential water", since, "m³", "3.85", "0.00"),
        ("water", "flat", "Residential water (new rate)", price_change, "m³", "4.10", "0.00"),
        ("gas", "flat", "Residential gas", since, "m³", "2.98", "5.00"),
        ("property_fee", "area", "Property management fee", since, "m²", "2.50", "0.00"),
    )
    return [
        electricity,
        *(
            orm.Tariff(
                utility=utility,
                kind=kind,
                name=name,
                effective_from=effective,
                unit=unit,
                unit_price=Decimal(price),
                fixed_monthly=Decimal(fixed),
            )
            for utility, kind, name, effective, unit, price, fixed in priced
        ),
    ]


def _add_household(
    s: Any, rng: random.Random, hid: str, unit: str, floor: int, bid: str, installed: datetime
) -> None:
    method, label, token = SAVED_METHODS[rng.randrange(len(SAVED_METHODS))]
    area = Decimal(rng.randrange(5500, 14500)).scaleb(-2)
    s.add(
        orm.Household(
            household_id=hid,
            building_id=bid,
            unit=unit,
            floor=floor,
            area_m2=area,
            saved_method=method,
            saved_method_label=label,
            saved_method_token=token,
            created_at=installed,
        )
    )
    s.flush()


def _add_residents(s: Any, rng: random.Random, hid: str, resident_ids: list[str]) -> None:
    """About 40 % Chinese speakers; the first resident is the primary one."""
    for k, rid in enumerate(resident_ids):
        zh = rng.random() < 0.4
        name = (
            rng.choice(NAMES_ZH) if zh else f"{rng.choice(FIRST_NAMES_EN)} {rng.choice(FAMILY_EN)}"
        )
        s.add(
            orm.Resident(
                resident_id=rid,
                household_id=hid,
                name=name,
                language="zh" if zh else "en",
                is_primary=k == 0,
                phone=f"+86 138{rng.randrange(10**8):08d}",
            )
        )


def _add_meters(s: Any, rng: random.Random, hid: str, installed: datetime) -> None:
    for utility, unit_name in (("electricity", "kWh"), ("water", "m³"), ("gas", "m³")):
        s.add(
            orm.Meter(
                meter_id=_meter_id(hid, utility),
                household_id=hid,
                utility=utility,
                unit=unit_name,
                serial=f"{utility[:1].upper()}{rng.randrange(10**9):09d}",
                installed_at=installed,
            )
        )
    s.flush()


def _meter_id(hid: str, utility: str) -> str:
    return f"m-{hid[3:]}-{utility[:2]}"


_METERED = ("electricity", "water", "gas")


def _simulate(
    uow: UnitOfWork,
    gateway: PaymentGateway,
    rng: random.Random,
    layout: list[tuple[str, str, int, str]],
    month_starts: list[date],
    today: date,
    progress: Callable[[int], None] | None,
) -> None:
    """Readings month by month, bills, and each household's paying habits."""
    households = [hid for hid, *_ in layout]
    profiles = _profiles(rng, households)
    values = {(hid, u): Decimal(rng.randrange(1000, 20000)) for hid in households for u in _METERED}
    first_read = datetime.combine(month_starts[0], time(), tzinfo=UTC)
    methods = _first_readings_and_autopay(uow, households, profiles, values, first_read)
    for m_index, start in enumerate(month_starts):
        _, end = billing.month_period(start.year, start.month)
        _read_meters(uow, rng, households, profiles, values, start, end)
        _issue_bills(uow, gateway, households, profiles, start, end, today, progress)
        due = billing.due_date_for(end)
        pay_day = due - timedelta(days=rng.randint(1, 10))
        if pay_day > today:
            continue  # not yet due: everyone still has time to pay
        months_left = len(month_starts) - m_index
        _pay_month(uow, gateway, rng, households, profiles, methods, start, pay_day, months_left)


def _profiles(rng: random.Random, households: list[str]) -> dict[str, Profile]:
    """Who pays on time, who pays part, who stops paying; typical usage; a few on autopay."""
    return {
        hid: Profile(
            kind=("paid", "paid", "partial", "overdue")[i % 4],
            stop=rng.randint(2, 4),
            electricity=rng.uniform(140, 330),
            water=rng.uniform(5, 16),
            gas=rng.uniform(8, 25),
            autopay=i % 10 == 4,
        )
        for i, hid in enumerate(households)
    }


def _first_readings_and_autopay(
    uow: UnitOfWork,
    households: list[str],
    profiles: dict[str, Profile],
    values: dict[tuple[str, str], Decimal],
    first_read: datetime,
) -> dict[str, str]:
    """The meters' first readings and the autopay settings; each household's payment method."""
    methods: dict[str, str] = {}
    with uow:
        for hid in households:
            for u in _METERED:
                uow.session.add(_reading(hid, u, values[(hid, u)], first_read))
            h = uow.session.get(orm.Household, hid)
            assert h is not None
            methods[hid] = h.saved_method or "card"
            if profiles[hid].autopay:
                uow.session.add(
                    orm.AutopaySetting(
                        household_id=hid,
                        utility="electricity",
                        enabled=True,
                        method=h.saved_method,
                        max_amount=Decimal("2000.00"),
                        updated_at=first_read,
                    )
                )
        uow.commit()
    return methods


def _reading(hid: str, utility: str, value: Decimal, at: datetime) -> orm.MeterReading:
    return orm.MeterReading(
        meter_id=_meter_id(hid, utility),
        value=value,
        taken_at=at,
        source="smart_meter",
        status="accepted",
        created_at=at,
    )


def _read_meters(
    uow: UnitOfWork,
    rng: random.Random,
    households: list[str],
    profiles: dict[str, Profile],
    values: dict[tuple[str, str], Decimal],
    start: date,
    end: date,
) -> None:
    """The month's smart-meter readings, the day after the period ends (seasonal usage)."""
    read_at = datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC)
    with uow:
        for hid in households:
            p = profiles[hid]
            usage = {
                "electricity": _tenths(
                    p.electricity * ELECTRICITY_SEASON[start.month] * rng.uniform(0.85, 1.15)
                ),
                "water": _tenths(p.water * rng.uniform(0.8, 1.2)),
                "gas": _tenths(p.gas * GAS_SEASON[start.month] * rng.uniform(0.85, 1.15)),
            }
            for u, amount in usage.items():
                values[(hid, u)] += amount
                uow.session.add(_reading(hid, u, values[(hid, u)], read_at))
        uow.commit()


def _issue_bills(
    uow: UnitOfWork,
    gateway: PaymentGateway,
    households: list[str],
    profiles: dict[str, Profile],
    start: date,
    end: date,
    today: date,
    progress: Callable[[int], None] | None,
) -> None:
    """The month's bills, the day after it ends; autopay households pay them at once."""
    issue_day = end + timedelta(days=1)
    for hid in households:
        changed = services.generate_household_bills(uow, hid, start, today=min(issue_day, today))
        if profiles[hid].autopay and changed:
            services.run_autopay(
                uow, gateway, hid, changed, now=datetime.combine(issue_day, time(6), tzinfo=UTC)
            )
        if progress:
            progress(1)


def _pay_month(
    uow: UnitOfWork,
    gateway: PaymentGateway,
    rng: random.Random,
    households: list[str],
    profiles: dict[str, Profile],
    methods: dict[str, str],
    start: date,
    pay_day: date,
    months_left: int,
) -> None:
    """Each household pays the month's bills by its habit: all, part, or (lately) nothing."""
    for hid in households:
        p = profiles[hid]
        if p.kind == "overdue" and months_left <= p.stop:
            continue
        bal = services.balance(uow, hid, today=pay_day)
        owed: Decimal = sum(
            (b.amount_due for b in bal.open_bills if b.period_start == start), Decimal(0)
        )
        if owed <= 0:
            continue
        amount = owed
        if p.kind == "partial":
            amount = (owed * Decimal(rng.choice((40, 50, 60, 75))) / 100).quantize(Decimal("0.01"))
        if amount <= 0:
            continue
        stamp = datetime.combine(
            pay_day, time(9 + rng.randrange(10), rng.randrange(60)), tzinfo=UTC
        )
        services.create_payment(
            uow,
            gateway,
            hid,
            amount,
            methods[hid],
            f"demo-{hid}-{start:%Y%m}",
            source="demo",
            now=stamp,
            payment_id=f"pay_demo_{hashlib.sha256(f'{hid}{start}'.encode()).hexdigest()[:16]}",
        )
