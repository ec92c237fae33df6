"""Step-up is enforced by the billing API: the contract in CONTRACTS.md "Security".

A resident-scoped payment at or above the threshold (200.00), past the daily
limit, or when the risk rules ask, needs a proof from a recorded verification,
bound to that exact payment, single use, short-lived. Real HTTP on loopback, on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from backend.adapters import orm
from backend.domain.stepup import ProofBinding
from backend.service_layer import stepup
from backend.service_layer.common import utcnow
from backend.settings import BillingSettings
from tests.security.conftest import LiveApi


def _payments(live: LiveApi) -> int:
    with live.community.uow as u:
        return int(u.session.scalar(select(func.count()).select_from(orm.Payment)) or 0)


def _due(live: LiveApi) -> str:
    return str(
        live.http.get(
            f"/api/v1/households/{live.community.h1}/balance", headers=live.h(live.resident1)
        ).json()["total_due"]
    )


def _balanced(live: LiveApi) -> bool:
    tb = live.http.get("/api/v1/ledger/trial-balance", headers=live.h(live.service)).json()
    return bool(tb["balanced"])


def test_no_proof_at_the_threshold_is_403_and_moves_no_money(live: LiveApi) -> None:
    due = _due(live)
    r = live.pay(live.resident1, "k-1", amount="200.00", utility="electricity")
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error"]["code"] == "step_up_required"
    assert body["risk"]["action"] == "step_up" and body["risk"]["level"] in (
        "normal",
        "elevated",
        "highest",
    )
    assert _payments(live) == 0 and _due(live) == due and _balanced(live)
    # just below the threshold pays without a proof, and says how risky it looked
    ok = live.pay(live.resident1, "k-2", amount="199.99", utility="electricity")
    assert ok.status_code == 201, ok.text
    risk = ok.json()["risk"]
    assert set(risk) == {"score", "level", "action", "reasons"}
    assert 0 <= risk["score"] <= 100 and risk["action"] == "allow"


def test_the_preview_is_how_the_dialogue_asks(live: LiveApi) -> None:
    def preview(amount: str) -> dict[str, object]:
        r = live.http.post(
            f"/api/v1/households/{live.community.h1}/payment-preview",
            json={"amount": amount, "utility": "electricity"},
            headers=live.h(live.resident1),
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    assert preview("199.99")["step_up_required"] is False
    high = preview("200.00")
    assert high["step_up_required"] is True and high["step_up_reasons"] == ["threshold"]
    policy = live.http.get("/api/v1/step-up/policy", headers=live.h(live.resident1)).json()
    assert policy["threshold"] == "200.00" and policy["daily_limit"] == "500.00"


def test_a_proof_pays_exactly_its_payment_once(live: LiveApi) -> None:
    r1 = live.community.r1
    small = live.verify(r1, amount="51.25").json()
    assert small["passed"] and small["proof"].startswith("sup_")
    # a proof for 51.25 does not pay 512.50
    r = live.pay(live.resident1, "k-big", amount="512.50", step_up_proof=small["proof"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "step_up_required"
    assert "amount" in r.json()["error"]["message"]
    # ... nor another utility or method
    big = live.verify(r1, amount="512.50").json()["proof"]
    for wrong in ({"utility": "gas"}, {"method": "wallet"}):
        r = live.pay(live.resident1, "k-w", amount="512.50", step_up_proof=big, **wrong)
        assert r.status_code == 403, r.text
    assert _payments(live) == 0
    # the right proof pays once
    paid = live.pay(live.resident1, "k-big", amount="512.50", step_up_proof=big)
    assert paid.status_code == 201, paid.text
    assert paid.json()["status"] == "succeeded" and "risk" in paid.json()
    # an idempotent replay of the same key and body returns the first result
    again = live.pay(live.resident1, "k-big", amount="512.50", step_up_proof=big)
    assert again.status_code == 201 and again.json()["payment_id"] == paid.json()["payment_id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    # a used proof does not pay twice
    twice = live.pay(live.resident1, "k-big-2", amount="512.50", step_up_proof=big)
    assert twice.status_code == 403 and "already used" in twice.json()["error"]["message"]
    assert _payments(live) == 1 and _balanced(live)


def test_another_households_proof_and_an_expired_proof_are_refused(live: LiveApi) -> None:
    c = live.community
    # a resident cannot get a proof for another household's payment
    r = live.verify(c.r2, amount="300.00")
    assert r.status_code == 422 and r.json()["error"]["code"] == "wrong_household"
    old = stepup.record_verification(
        c.uow,
        c.r1,
        "pin",
        True,
        BillingSettings().step_up_policy(),
        payment=ProofBinding(c.h1, None, Decimal("300.00"), "card"),
        now=utcnow() - timedelta(minutes=6),
    )
    assert old.proof is not None
    r = live.pay(live.resident1, "k-old", amount="300.00", step_up_proof=old.proof)
    assert r.status_code == 403 and "expired" in r.json()["error"]["message"]


def test_only_a_service_may_vouch_for_a_verification(live: LiveApi) -> None:
    body = {
        "resident_id": live.community.r1,
        "kind": "pin",
        "passed": True,
        "payment": {"household_id": live.community.h1, "amount": "300.00", "method": "card"},
    }
    for token in (live.resident1, live.staff):
        r = live.http.post("/api/v1/step-up/verifications", json=body, headers=live.h(token))
        assert r.status_code == 403, r.text


def test_trusted_callers_are_scored_not_stopped(live: LiveApi) -> None:
    r = live.pay(live.service, "k-svc", amount="600.00")
    assert r.status_code == 201 and r.json()["risk"]["action"] == "allow"


def test_the_daily_limit_counts_the_days_payments(live: LiveApi) -> None:
    for i in range(3):  # 450.00 today: within the 500.00 limit
        r = live.pay(live.resident1, f"k-d{i}", amount="150.00")
        assert r.status_code == 201, r.text
    r = live.pay(live.resident1, "k-d3", amount="150.00")
    assert r.status_code == 403 and "daily_limit" in r.json()["error"]["message"]
    proof = live.verify(live.community.r1, amount="150.00").json()["proof"]
    r = live.pay(live.resident1, "k-d3", amount="150.00", step_up_proof=proof)
    assert r.status_code == 201, r.text


def test_failures_on_every_channel_lock_step_up_together(live: LiveApi) -> None:
    r1 = live.community.r1
    for i in range(10):
        body = {
            "resident_id": r1,
            "kind": ("pin", "face", "voice")[i % 3],
            "passed": False,
            "channel": ("telegram", "speaker")[i % 2],
        }
        out = live.http.post(
            "/api/v1/step-up/verifications", json=body, headers=live.h(live.service)
        ).json()
        assert out["failures"] == i + 1
    assert out["locked_until"] is not None
    # while locked, even a right answer yields no proof
    locked = live.verify(r1, amount="300.00").json()
    assert locked["passed"] is False and locked["proof"] is None and locked["locked_until"]
    # and the failures are a risk signal for the household's next payment
    r = live.pay(live.resident1, "k-l", amount="20.00")
    assert any("failed verifications" in reason for reason in r.json()["risk"]["reasons"])


def test_autopay_at_or_above_the_step_up_amount_needs_a_proof_for_that_limit(
    live: LiveApi,
) -> None:
    """Autopay moves money later without asking: turning it on is a step-up decision too."""
    c = live.community
    url = f"/api/v1/households/{c.h1}/autopay/water"

    def put(token: str, limit: str, proof: str | None = None) -> object:
        body: dict[str, object] = {"enabled": True, "method": "card", "max_amount": limit}
        if proof is not None:
            body["step_up_proof"] = proof
        return live.http.put(url, json=body, headers=live.h(token))

    # below the step-up amount: no proof needed
    small = put(live.resident1, "100.00")
    assert small.status_code == 200, small.text  # type: ignore[attr-defined]
    # at or above it: refused without a proof, and nothing changes
    r = put(live.resident1, "300.00")
    assert r.status_code == 403 and r.json()["error"]["code"] == "step_up_required"  # type: ignore[attr-defined]
    setting = live.http.get(f"/api/v1/households/{c.h1}/autopay", headers=live.h(live.resident1))
    assert setting.json()["water"]["max_amount"] == "100.00"
    # a proof for another limit, utility or method does not do
    for wrong in (
        {"amount": "200.00", "utility": "water"},
        {"amount": "300.00", "utility": "gas"},
        {"amount": "300.00", "utility": "water", "method": "wallet"},
    ):
        proof = live.verify(c.r1, purpose="autopay", **wrong).json()["proof"]
        r = put(live.resident1, "300.00", proof)
        assert r.status_code == 403, r.text  # type: ignore[attr-defined]
    # the proof for exactly this limit turns it on, once
    proof = live.verify(c.r1, amount="300.00", utility="water", purpose="autopay").json()["proof"]
    ok = put(live.resident1, "300.00", proof)
    assert ok.status_code == 200 and ok.json()["max_amount"] == "300.00", ok.text  # type: ignore[attr-defined]
    again = put(live.resident1, "300.00", proof)
    assert again.status_code == 403 and "already used" in again.json()["error"]["message"]  # type: ignore[attr-defined]
    # a service (the assistant's own back office) is trusted as before
    assert put(live.service, "500.00").status_code == 200  # type: ignore[attr-defined]


def test_a_payment_proof_cannot_turn_autopay_on_and_an_autopay_proof_cannot_pay(
    live: LiveApi,
) -> None:
    """Same household, utility, amount and method: only the proof's purpose differs."""
    c = live.community
    same = {"amount": "300.00", "utility": "water"}
    autopay_url = f"/api/v1/households/{c.h1}/autopay/water"

    def turn_on(proof: str) -> Any:
        body = {"enabled": True, "method": "card", "max_amount": "300.00", "step_up_proof": proof}
        return live.http.put(autopay_url, json=body, headers=live.h(live.resident1))

    payment_proof = live.verify(c.r1, **same).json()["proof"]
    autopay_proof = live.verify(c.r1, purpose="autopay", **same).json()["proof"]

    r = turn_on(payment_proof)
    assert r.status_code == 403 and r.json()["error"]["code"] == "step_up_required", r.text
    assert "for a payment, not an autopay" in r.json()["error"]["message"]
    r = live.pay(live.resident1, "purpose-1", step_up_proof=autopay_proof, **same)
    assert r.status_code == 403 and r.json()["error"]["code"] == "step_up_required", r.text
    assert "for an autopay, not a payment" in r.json()["error"]["message"]
    # the refusals used neither proof up: each still does what it is for
    ok = turn_on(autopay_proof)
    assert ok.status_code == 200 and ok.json()["max_amount"] == "300.00", ok.text
    paid = live.pay(live.resident1, "purpose-2", step_up_proof=payment_proof, **same)
    assert paid.status_code == 201, paid.text
    # an unknown purpose is refused by the API
    bad = live.verify(c.r1, purpose="refund", **same)
    assert bad.status_code == 422, bad.text
