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
    from backend.service_layer import services

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
