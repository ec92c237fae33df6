"""In-process reads (``backend/api/reads.py``) answer and refuse exactly as the HTTP API does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from backend.client import BillingClient, BillingError, Forbidden, one_turn
from tests.backend.conftest import Api

Read = Callable[[BillingClient], Awaitable[Any]]

#: Every read the in-process path offers, with the answers and refusals a resident
#: (or a bad caller) can get: own household, another household, unknown ids, bad
#: query values.
READS: dict[str, Read] = {
    "resident": lambda c: c.get_resident("r-A0101-1"),
    "another resident": lambda c: c.get_resident("r-B0101-1"),
    "unknown resident": lambda c: c.get_resident("r-nope"),
    "balance": lambda c: c.get_balance("hh-A0101"),
    "balance other household": lambda c: c.get_balance("hh-B0101"),
    "balance unknown household": lambda c: c.get_balance("hh-nope"),
    "bills": lambda c: c.list_bills("hh-A0101"),
    "bills water, 2": lambda c: c.list_bills("hh-A0101", utility="water", limit=2),
    "bills overdue": lambda c: c.list_bills("hh-A0101", status="overdue"),
    "bills other household": lambda c: c.list_bills("hh-B0101", utility="water"),
    "bills unknown household": lambda c: c.list_bills("hh-nope"),
    "bills limit 0": lambda c: c.list_bills("hh-A0101", limit=0),
    "bills limit 201": lambda c: c.list_bills("hh-A0101", limit=201),
    "bills unknown utility": lambda c: c.list_bills("hh-A0101", utility="steam"),
    "bills unknown status": lambda c: c.list_bills("hh-A0101", status="late"),
    "bill": lambda c: c.get_bill("b-hh-A0101-el-202602"),
    "bill water": lambda c: c.get_bill("b-hh-A0101-wa-202601"),
    "bill of another household": lambda c: c.get_bill("b-hh-B0101-el-202602"),
    "bill unknown": lambda c: c.get_bill("b-hh-A0101-el-209901"),
    "bill and the one before": lambda c: c.get_bills(
        ["b-hh-A0101-el-202602", "b-hh-A0101-el-202601"]
    ),
    "bills of two utilities": lambda c: c.get_bills(
        ["b-hh-A0101-wa-202601", "b-hh-A0101-el-202602", "b-hh-A0101-wa-202601"]
    ),
    "bills, one of another household": lambda c: c.get_bills(
        ["b-hh-A0101-el-202602", "b-hh-B0101-el-202602"]
    ),
    "bills, one unknown": lambda c: c.get_bills(["b-hh-A0101-el-209901", "b-hh-B0101-el-202602"]),
    "late-fee policy": lambda c: c.late_fee_policy(),
    "preview": lambda c: c.preview_payment("hh-A0101", amount="1.00", utility="water"),
    "preview, method and channel": lambda c: c.preview_payment(
        "hh-A0101", amount="12.34", method="card", channel="telegram"
    ),
    "preview overpaying": lambda c: c.preview_payment("hh-A0101", amount="300", utility="water"),
    "preview far over the limit": lambda c: c.preview_payment("hh-A0101", amount="9999999"),
    "preview other household": lambda c: c.preview_payment("hh-B0101", amount="1.00"),
    "preview unknown household": lambda c: c.preview_payment("hh-nope", amount="1.00"),
    "preview amount 0": lambda c: c.preview_payment("hh-A0101", amount="0"),
    "preview amount 3 decimals": lambda c: c.preview_payment("hh-A0101", amount="1.005"),
    "preview amount not a number": lambda c: c.preview_payment("hh-A0101", amount="lots"),
    "preview unknown utility": lambda c: c.preview_payment("hh-A0101", amount="1", utility="steam"),
    "preview unknown method": lambda c: c.preview_payment("hh-A0101", amount="1", method="gold"),
}


async def _outcome(read: Read, client: BillingClient) -> Any:
    """The answer, or the refusal as (class, status, code, message)."""
    try:
        return await read(client)
    except BillingError as exc:
        return (type(exc).__name__, exc.status, exc.code, exc.message)


async def test_in_process_reads_equal_http_answers_and_refusals(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    service_http = BillingClient(None, api.service, app=api.app, in_process_reads=False)
    service_fast = BillingClient(None, api.service, app=api.app)
    resident_http = await service_http.resident_scope("r-A0101-1")
    resident_fast = await service_fast.resident_scope("r-A0101-1")
    bogus_http = BillingClient(None, "not-a-token", app=api.app, in_process_reads=False)
    bogus_fast = BillingClient(None, "not-a-token", app=api.app)
    long_fast = BillingClient(None, "x" * 300, app=api.app)
    long_http = BillingClient(None, "x" * 300, app=api.app, in_process_reads=False)

    sent: list[str] = []
    send = httpx.AsyncClient.send

    async def counting(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
        sent.append(request.url.path)
        return await send(self, request, **kw)

    monkeypatch.setattr(httpx.AsyncClient, "send", counting)
    refusals = 0
    for who, http, fast in (
        ("resident", resident_http, resident_fast),
        ("service", service_http, service_fast),
        ("bogus token", bogus_http, bogus_fast),
        ("overlong token", long_http, long_fast),
    ):
        for name, read in READS.items():
            sent.clear()
            over_http = await _outcome(read, http)
            assert sent, f"{who} / {name}: the reference answer went over HTTP"
            sent.clear()
            in_process = await _outcome(read, fast)
            assert not sent, f"{who} / {name}: the in-process read made an HTTP request"
            assert in_process == over_http, f"{who} / {name}"
            refusals += isinstance(over_http, tuple)
    # The table exercises the refusals it claims to: scoping, 404s, 422s and 401s.
    resident = {n: await _outcome(r, resident_fast) for n, r in READS.items()}
    assert resident["resident"].household_id == "hh-A0101"
    assert resident["another resident"][:3] == ("NotFound", 404, "unknown_resident")
    assert resident["unknown resident"][:3] == ("NotFound", 404, "unknown_resident")
    assert resident["balance other household"][:3] == ("Forbidden", 403, "forbidden")
    assert resident["bills other household"][:3] == ("Forbidden", 403, "forbidden")
    assert resident["bill of another household"][:3] == ("NotFound", 404, "unknown_bill")
    assert resident["bills, one of another household"][:3] == ("NotFound", 404, "unknown_bill")
    pair = resident["bill and the one before"]
    assert [b.bill_id for b in pair] == ["b-hh-A0101-el-202602", "b-hh-A0101-el-202601"]
    assert pair[0] == await resident_fast.get_bill("b-hh-A0101-el-202602")
    assert resident["bills limit 0"][:3] == ("ValidationFailed", 422, "validation_error")
    assert resident["bills unknown utility"][:2] == ("ValidationFailed", 422)
    assert (await _outcome(READS["bill"], bogus_fast))[:3] == ("Forbidden", 401, "invalid_token")
    assert resident["preview"].step_up_required is False
    assert resident["preview other household"][:3] == ("Forbidden", 403, "forbidden")
    assert resident["preview amount 0"][:3] == ("ValidationFailed", 422, "invalid_amount")
    assert resident["preview unknown method"][:3] == ("ValidationFailed", 422, "validation_error")
    assert resident["preview far over the limit"][:2] == ("ValidationFailed", 422)
    assert refusals >= 2 * len(READS)
    # A household nobody vouches for is still looked up: the service is told it is unknown.
    assert (await _outcome(READS["balance unknown household"], service_fast))[:3] == (
        "NotFound",
        404,
        "unknown_household",
    )


async def test_ids_that_are_not_plain_path_segments_go_over_http(api: Api) -> None:
    fast = BillingClient(None, api.service, app=api.app)
    http = BillingClient(None, api.service, app=api.app, in_process_reads=False)
    for bill_id in ("..", "b/../x", "b?x=1", "b x", "账单"):
        assert not fast._in_process(bill_id)
        assert await _outcome(lambda c, b=bill_id: c.get_bill(b), fast) == await _outcome(
            lambda c, b=bill_id: c.get_bill(b), http
        )


async def test_one_turn_checks_each_token_once_and_only_within_the_turn(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.api import deps
    from backend.api.reads import VerifiedTokens
    from backend.service_layer import services

    # Without the remembered checks across turns (recheck 0), which the tests below cover.
    api.app.state.verified_tokens = VerifiedTokens(0)
    service = BillingClient(None, api.service, app=api.app)
    me = await service.resident_scope("r-A0101-1")
    checked: list[str] = []
    authenticate = services.authenticate

    def counting(uow: Any, token: str) -> Any:
        checked.append(token)
        return authenticate(uow, token)

    monkeypatch.setattr(deps.services, "authenticate", counting)
    with one_turn():
        await me.get_balance("hh-A0101")
        bills = await me.list_bills("hh-A0101")
        await me.get_bill(bills[0].bill_id)
        await service.late_fee_policy()
        with pytest.raises(Forbidden):  # scoping still applies to a remembered caller
            await me.get_balance("hh-B0101")
    assert checked == [me.token, service.token]
    checked.clear()
    await me.get_balance("hh-A0101")
    await me.get_balance("hh-A0101")
    assert checked == [me.token, me.token]  # outside a turn: every read checks
    checked.clear()
    bogus = BillingClient(None, "not-a-token", app=api.app)
    with one_turn():
        for _ in range(2):  # a refused token is never remembered
            with pytest.raises(Forbidden):
                await bogus.get_balance("hh-A0101")
    assert checked == ["not-a-token", "not-a-token"]


def test_a_bill_detail_takes_three_statements(api: Api) -> None:
    """ "Why is it so high?" reads two bills: each is the bill with its tariff's name, its
    lines, and the previous and last year's usage, as plain rows (was five or six)."""
    from sqlalchemy import event

    from backend.service_layer import services
    from backend.service_layer.unit_of_work import UnitOfWork

    uow = UnitOfWork(api.app.state.engine)
    statements: list[str] = []

    def count(_conn: object, _cur: object, stmt: str, *_args: object) -> None:
        statements.append(stmt)

    event.listen(uow.engine, "before_cursor_execute", count)
    try:
        bill = services.get_bill(uow, "b-hh-A0101-el-202602")
    finally:
        event.remove(uow.engine, "before_cursor_execute", count)
    assert [s.split()[0] for s in statements if s.split()[0] == "SELECT"] == ["SELECT"] * 3
    assert bill.tariff_name and bill.lines and bill.previous_usage is not None


def test_a_bill_and_the_one_before_take_three_statements_together(api: Api) -> None:
    """ "Why is it so high?" reads the bill and the one before it in one read: the same
    three statements as one bill (was six), each bill as get_bill gives it."""
    from sqlalchemy import event

    from backend.service_layer import services
    from backend.service_layer.unit_of_work import UnitOfWork

    uow = UnitOfWork(api.app.state.engine)
    ids = ["b-hh-A0101-el-202602", "b-hh-A0101-el-202601"]
    statements: list[str] = []

    def count(_conn: object, _cur: object, stmt: str, *_args: object) -> None:
        statements.append(stmt)

    event.listen(uow.engine, "before_cursor_execute", count)
    try:
        both = services.get_bills(uow, ids)
    finally:
        event.remove(uow.engine, "before_cursor_execute", count)
    assert [s.split()[0] for s in statements if s.split()[0] == "SELECT"] == ["SELECT"] * 3
    assert both == [services.get_bill(uow, i) for i in ids]
    assert services.get_bills(uow, []) == []


async def test_a_turns_bill_reads_check_access_and_the_household_without_queries_of_their_own(
    api: Api,
) -> None:
    """ "Why is my bill so high?" reads the bill list and two bills: the bill's access check
    is made on its own row (no query of its own), and the list checks that the household
    exists only when it has no bills. A foreign bill is refused before its lines are read."""
    from sqlalchemy import event

    service = BillingClient(None, api.service, app=api.app)
    me = await service.resident_scope("r-A0101-1")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.split()[0] == "SELECT":  # (SQLite's reads also send a BEGIN)
            statements.append(statement)

    event.listen(api.app.state.engine, "before_cursor_execute", count)
    try:
        with one_turn():
            await me.get_balance("hh-A0101")  # the token is checked once, here
            statements.clear()
            bills = await me.list_bills("hh-A0101")
            assert len(statements) == 1  # the bills (was 2: the household, then the bills)
            statements.clear()
            await me.get_bill(bills[0].bill_id)
            assert len(statements) == 3  # bill, lines, usages (was 4: its household first)
            statements.clear()
            with pytest.raises(BillingError) as refused:
                await me.get_bill("b-hh-B0101-el-202602")
            assert (refused.value.status, refused.value.code) == (404, "unknown_bill")
            assert len(statements) == 1  # the bill's row only: nothing of it read further
            statements.clear()
            with pytest.raises(BillingError) as unknown:
                await service.list_bills("hh-nope")
            assert (unknown.value.status, unknown.value.code) == (404, "unknown_household")
            assert len(statements) == 3  # the token, no bills, so the household: not there
    finally:
        event.remove(api.app.state.engine, "before_cursor_execute", count)


class _Clock:
    """Monotonic seconds that a test moves forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _count_token_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose row an in-process read reads (:class:`VerifiedTokens`' checks)."""
    from backend.service_layer import services

    checked: list[str] = []
    verify = services.verify_token

    def counting(uow: Any, token: str) -> Any:
        checked.append(token)
        return verify(uow, token)

    monkeypatch.setattr(services, "verify_token", counting)
    return checked


def _revoke(api: Api, token: str) -> None:
    from sqlalchemy import update

    from backend.adapters import orm
    from backend.service_layer import services
    from backend.service_layer.unit_of_work import UnitOfWork

    uow = UnitOfWork(api.app.state.engine)
    with uow:
        uow.session.execute(
            update(orm.ApiToken)
            .where(orm.ApiToken.token_hash == services.hash_token(token))
            .values(revoked_at=services.utcnow())
        )
        uow.commit()


async def test_a_verified_token_is_read_once_per_recheck_interval_and_still_scoped(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across turns, an in-process read relies on its own check of the same token made
    less than recheck_s ago; the household checks still run against that caller, and the
    answers and refusals are the HTTP API's."""
    from backend.api.reads import VerifiedTokens

    clock = _Clock()
    tokens = api.app.state.verified_tokens = VerifiedTokens(60, clock=clock)
    checked = _count_token_reads(monkeypatch)
    service = BillingClient(None, api.service, app=api.app)
    me = await service.resident_scope("r-A0101-1")
    other = await service.resident_scope("r-B0101-1")
    http = BillingClient(None, me.token, app=api.app, in_process_reads=False)
    for name in ("balance", "balance other household", "bill of another household", "bill"):
        for _ in range(3):
            with one_turn():
                assert await _outcome(READS[name], me) == await _outcome(READS[name], http), name
    assert checked == [me.token]  # one read of the token's row for twelve turns
    refused = await _outcome(READS["balance other household"], me)
    assert refused[:3] == ("Forbidden", 403, "forbidden")
    assert (await _outcome(READS["bill of another household"], me))[:3] == (
        "NotFound",
        404,
        "unknown_bill",
    )
    # Another resident's remembered check is its own: it sees its household, not A's.
    assert (await other.get_balance("hh-B0101")).household_id == "hh-B0101"
    assert (await _outcome(READS["balance"], other))[:3] == ("Forbidden", 403, "forbidden")
    # A token one character off is not the remembered one: it is read, and refused.
    near = BillingClient(None, me.token[:-1] + ("A" if me.token[-1] != "A" else "B"), app=api.app)
    assert (await _outcome(READS["balance"], near))[:3] == ("Forbidden", 401, "invalid_token")
    assert checked == [me.token, other.token, near.token]
    # Past the interval the row is read again.
    clock.now += 61
    await me.get_balance("hh-A0101")
    assert checked[-1] == me.token and len(checked) == 4
    assert tokens.hits > 0


async def test_a_remembered_check_never_outlives_the_tokens_expiry(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    from datetime import timedelta

    from backend.api.reads import VerifiedTokens
    from backend.service_layer import services
    from backend.service_layer.unit_of_work import UnitOfWork

    api.app.state.verified_tokens = VerifiedTokens(3600)
    token = services.issue_token(
        UnitOfWork(api.app.state.engine),
        "resident",
        resident_id="r-A0101-1",
        ttl=timedelta(seconds=1),
    ).token
    me = BillingClient(None, token, app=api.app)
    assert (await me.get_balance("hh-A0101")).household_id == "hh-A0101"  # remembered now
    await asyncio.sleep(1.1)
    checked = _count_token_reads(monkeypatch)
    for _ in range(2):
        assert (await _outcome(READS["balance"], me))[:3] == ("Forbidden", 401, "invalid_token")
    assert checked == [token, token]  # an expired token is read (and refused) each time


async def test_a_revoked_token_is_refused_within_the_recheck_interval(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revocation reaches in-process reads within recheck_s (at once with 0); a revoked
    token is never remembered; HTTP requests refuse it at once."""
    from backend.api.reads import VerifiedTokens

    clock = _Clock()
    api.app.state.verified_tokens = VerifiedTokens(30, clock=clock)
    service = BillingClient(None, api.service, app=api.app)
    me = await service.resident_scope("r-A0101-1")
    http = BillingClient(None, me.token, app=api.app, in_process_reads=False)
    assert (await me.get_balance("hh-A0101")).household_id == "hh-A0101"
    _revoke(api, me.token)
    assert (await _outcome(READS["balance"], http))[:3] == ("Forbidden", 401, "invalid_token")
    clock.now += 29  # the documented bound: a check 29 s old still stands
    assert (await me.get_balance("hh-A0101")).household_id == "hh-A0101"
    clock.now += 2
    checked = _count_token_reads(monkeypatch)
    for _ in range(2):  # refused, and never remembered: read again each time
        assert (await _outcome(READS["balance"], me))[:3] == ("Forbidden", 401, "invalid_token")
    assert checked == [me.token, me.token]
    # With recheck 0 every read checks: a revocation is refused at the next read.
    api.app.state.verified_tokens = VerifiedTokens(0)
    fresh = await service.resident_scope("r-A0101-1")
    strict = BillingClient(None, fresh.token, app=api.app)
    assert (await strict.get_balance("hh-A0101")).household_id == "hh-A0101"
    _revoke(api, fresh.token)
    assert (await _outcome(READS["balance"], strict))[:3] == ("Forbidden", 401, "invalid_token")


def test_the_recheck_interval_is_a_billing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.settings import BillingSettings

    assert BillingSettings().token_recheck_s == 60.0
    monkeypatch.setenv("BILLTALK_BILLING_TOKEN_RECHECK_S", "0")
    assert BillingSettings().token_recheck_s == 0.0


def test_a_balance_of_a_household_the_caller_vouches_for_skips_the_household_read(
    api: Api,
) -> None:
    """A resident's own household exists (its token refers to it): with nothing open, its
    balance is two statements (bills, credits), not three; without the caller's word an
    unknown household is still refused."""
    from sqlalchemy import event

    from backend.service_layer import services
    from backend.service_layer.errors import NotFound
    from backend.service_layer.unit_of_work import UnitOfWork

    uow = UnitOfWork(api.app.state.engine)
    statements: list[str] = []

    def count(_conn: object, _cur: object, stmt: str, *_args: object) -> None:
        if stmt.split()[0] == "SELECT":
            statements.append(stmt)

    event.listen(uow.engine, "before_cursor_execute", count)
    try:
        with pytest.raises(NotFound):
            services.balance(uow, "hh-nope")
        assert len(statements) == 3  # bills, credits, the household: not there
        statements.clear()
        empty = services.balance(uow, "hh-nope", known=True)
        assert len(statements) == 2
    finally:
        event.remove(uow.engine, "before_cursor_execute", count)
    assert empty.total_due == 0 and not empty.open_bills and not empty.credits
