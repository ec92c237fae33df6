"""Risk on every payment: features from the household's history, rules in order, the model."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import func, select

from backend.adapters import orm, risk_model
from backend.domain.risk import FEATURE_NAMES, RiskFeatures, assess, rule_points
from backend.gateway import SandboxGateway
from backend.service_layer import services
from backend.service_layer.common import utcnow
from backend.settings import BillingSettings
from tests.security.conftest import LiveApi, daytime_zone

D = Decimal


def test_rules_speak_plainly_and_run_in_order() -> None:
    burst = RiskFeatures(
        amount=D("1.00"), amount_due=D("500"), history=(D("100"),) * 6, per_hour=8, hour=12
    )
    points, reasons = rule_points(burst)
    assert "8 payments in the last hour" in reasons and points >= 45
    big = RiskFeatures(
        amount=D("420.00"), amount_due=D("900"), history=(D("100"), D("80")), hour=12
    )
    assert "4.2× this household's largest payment" in rule_points(big)[1]
    # 1. step-up first: a normal payment at the threshold, without a proof
    plain = RiskFeatures(amount=D("250"), amount_due=D("900"), history=(D("240"),), hour=12)
    assert assess(plain, policy_reasons=["threshold"]).action == "step_up"
    # 2. allow: verified, normal level
    assert assess(plain, policy_reasons=["threshold"], proof_valid=True).action == "allow"
    # 3. block: a card-testing burst, even when verified
    storm = RiskFeatures(
        amount=D("1.00"),
        amount_due=D("500"),
        history=(D("100"),) * 6,
        per_hour=12,
        hour=3,
        new_channel=True,
        channel="telegram",
    )
    assert assess(storm, policy_reasons=[], proof_valid=True).action == "block"
    # 4. review: the highest level, verified but not a burst
    takeover = RiskFeatures(
        amount=D("900"),
        amount_due=D("2000"),
        history=(D("100"),) * 4,
        new_channel=True,
        channel="telegram",
        new_method=True,
        method="alipay",
        failed_step_ups=3,
        hour=12,
    )
    decided = assess(takeover, policy_reasons=["threshold"], proof_valid=True, proof_kind="pin")
    assert decided.level == "highest" and decided.action == "review"
    # trusted callers are scored, never stopped
    assert assess(storm, policy_reasons=[], enforce=False).action == "allow"


def test_lean_forest_scores_like_sklearn() -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(400, len(FEATURE_NAMES))).tolist()
    model = risk_model.train(rows, seed=1)
    probes = rng.normal(scale=3, size=(50, len(FEATURE_NAMES)))
    expected = -model.forest.score_samples(probes.astype(np.float32))
    got = [model.lean.raw(list(p)) for p in probes]
    assert np.allclose(got, expected, atol=1e-9)


def _backdated_history(live: LiveApi, gateway: SandboxGateway, n: int = 4) -> None:
    c = live.community
    for i in range(n):
        services.create_payment(
            c.uow,
            gateway,
            c.h1,
            D("40.00"),
            "card",
            f"hist-{i}",
            source="api",
            now=utcnow() - timedelta(days=30 * (i + 1)),
        )


def test_account_takeover_is_held_for_review_then_declined(
    live: LiveApi, gateway: SandboxGateway
) -> None:
    c = live.community
    _backdated_history(live, gateway)
    for _ in range(3):  # someone guessing the PIN
        live.http.post(
            "/api/v1/step-up/verifications",
            headers=live.h(live.service),
            json={"resident_id": c.r1, "kind": "pin", "passed": False},
        )
    proof = live.verify(c.r1, amount="700.00", method="alipay").json()["proof"]
    r = live.pay(
        live.resident1,
        "ato",
        amount="700.00",
        method="alipay",
        channel="telegram",
        step_up_proof=proof,
    )
    assert r.status_code == 201, r.text
    held = r.json()
    assert held["status"] == "review" and held["risk"]["action"] == "review"
    assert held["risk"]["level"] == "highest"
    assert any("largest payment" in x for x in held["risk"]["reasons"])
    queue = live.http.get("/api/v1/reviews/payments", headers=live.h(live.staff)).json()
    assert [p["payment_id"] for p in queue] == [held["payment_id"]]
    assert (
        live.http.get("/api/v1/reviews/payments", headers=live.h(live.resident1)).status_code == 403
    )
    # a replay while held neither charges nor changes anything
    again = live.pay(
        live.resident1,
        "ato",
        amount="700.00",
        method="alipay",
        channel="telegram",
        step_up_proof=proof,
    )
    assert again.json()["status"] == "review"
    declined = live.http.post(
        f"/api/v1/payments/{held['payment_id']}/decline",
        json={"reason": "resident did not recognise it"},
        headers=live.h(live.staff),
    )
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    with c.uow.reading() as u:
        notices = u.session.scalars(
            select(orm.Notice).where(orm.Notice.payment_id == held["payment_id"])
        ).all()
        assert len(notices) == 1 and "declined" in notices[0].message
        entries = u.session.scalar(
            select(func.count())
            .select_from(orm.JournalEntry)
            .where(orm.JournalEntry.reference == held["payment_id"])
        )
        assert entries == 0
    again = live.http.post(
        f"/api/v1/payments/{held['payment_id']}/approve", json={}, headers=live.h(live.staff)
    )
    assert again.status_code == 409


def test_an_approved_held_payment_is_charged_once(live: LiveApi, gateway: SandboxGateway) -> None:
    c = live.community
    _backdated_history(live, gateway)
    for _ in range(3):
        live.http.post(
            "/api/v1/step-up/verifications",
            headers=live.h(live.service),
            json={"resident_id": c.r1, "kind": "pin", "passed": False},
        )
    proof = live.verify(c.r1, amount="700.00", method="alipay").json()["proof"]
    held = live.pay(
        live.resident1,
        "ato2",
        amount="700.00",
        method="alipay",
        channel="telegram",
        step_up_proof=proof,
    ).json()
    assert held["status"] == "review"
    ok = live.http.post(
        f"/api/v1/payments/{held['payment_id']}/approve", json={}, headers=live.h(live.staff)
    )
    assert ok.status_code == 200 and ok.json()["status"] == "succeeded"
    tb = live.http.get("/api/v1/ledger/trial-balance", headers=live.h(live.service)).json()
    assert tb["balanced"]


def test_a_card_testing_burst_is_stopped(live: LiveApi) -> None:
    """Six payments within the hour: the next one needs the resident (step-up); a service
    integration hammering on is scored "highest" from the tenth on."""
    actions = []
    for i in range(8):
        r = live.pay(live.resident1, f"burst-{i}", amount="1.00", channel="telegram")
        assert r.status_code in (201, 403), r.text
        actions.append(r.json()["risk"]["action"])
    assert actions == ["allow"] * 6 + ["step_up"] * 2
    assert "6 payments in the last hour" in r.json()["risk"]["reasons"]
    for i in range(6):
        last = live.pay(live.service, f"svc-burst-{i}", amount="1.00").json()["risk"]
    assert last["level"] == "highest" and "11 payments in the last hour" in last["reasons"]


@pytest.fixture
def billing_settings(tmp_path) -> BillingSettings:  # type: ignore[no-untyped-def]
    """Rules plus a model trained on this community's (backdated) history."""
    return BillingSettings(
        risk_timezone=daytime_zone(12), risk_model_path=str(tmp_path / "risk" / "model.joblib")
    )


def test_the_model_is_trained_from_history_and_joins_the_score(
    live: LiveApi, gateway: SandboxGateway, billing_settings: BillingSettings
) -> None:
    from backend.service_layer import risk

    _backdated_history(live, gateway, n=12)
    rows = risk.training_rows(live.community.uow, billing_settings)
    assert len(rows) == 12 and rows[-1].history
    model = risk_model.train([f.vector() for f in rows])
    risk_model.save(model, risk.model_path(billing_settings))
    usual = live.pay(live.resident1, "m-1", amount="40.00").json()["risk"]
    odd = live.pay(
        live.resident1, "m-2", amount="190.00", method="wechat_pay", channel="speaker"
    ).json()["risk"]
    assert odd["score"] > usual["score"]
    assert usual["action"] == "allow"
