"""Risk scoring: rules vs IsolationForest vs both, on simulated histories with injected fraud.

    .venv/bin/python bench/risk.py [--households 4000] [--fraud-share 0.01] [--seed 11]

1. **Simulated histories.** Each household pays each of its utilities once a month
   for 12 months (amounts lognormal around a household base, seasonal), at its own
   usual hours, from its usual channel with its saved method; now and then it pays
   several bills at once, from a second channel or with another method, or late
   in the evening. The features of every payment are computed exactly as the
   product does (``backend.domain.risk.RiskFeatures``), from the household's own
   history before it.
2. **Injected fraud** in the last two months (labelled 1): *card testing* bursts
   (5-15 tiny payments within half an hour, often from a new channel and method),
   *account takeover* (a new channel and method, 3-8x the household's largest
   payment, after failed step-ups or wrong link codes), and *unusual hours*
   (1-4 am, 1.5-3x the usual amount).
3. **Scores.** Rules alone (``rule_points``), the model alone (IsolationForest
   trained, as ``billtalk risk train`` does, on another simulated community's
   normal history), and both (``max(rules, (rules + model) / 2)``, the product's
   combination). Reported: ROC AUC and recall at a 1 % review rate (the 1 % of
   all payments with the highest scores, ties broken at random).
4. **Cost per payment** on a seeded demo database (SQLite): the risk features'
   queries plus the assessment, with the model on and off.

Writes ``risk.json``, ``risk_roc.png`` and ``risk_scores.png`` under ``--out`` and prints
the Markdown section for ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.adapters import risk_model
from backend.domain.risk import RiskFeatures, rule_points

UTILITIES = ("electricity", "water", "gas", "property_fee")
CHANNELS = ("terminal", "telegram", "speaker", "api")
METHODS = ("card", "bank_transfer", "wallet", "alipay", "wechat_pay")
START = datetime(2025, 11, 1, tzinfo=UTC)


@dataclass
class Event:
    at: datetime
    amount: Decimal
    channel: str
    method: str
    succeeded: bool = True
    fraud: int = 0
    kind: str = "normal"
    failed_step_ups: int = 0
    failed_links: int = 0


def _money(x: float) -> Decimal:
    return Decimal(str(max(round(x, 2), 0.5))).quantize(Decimal("0.01"))


def simulate_household(rng: random.Random) -> list[Event]:
    """Twelve months of one household's ordinary payments."""
    base = {
        u: rng.lognormvariate(mu, 0.35)
        for u, mu in zip(UTILITIES, (4.8, 3.4, 3.9, 5.3), strict=True)
    }
    channel = rng.choice(CHANNELS)
    second = rng.choice([c for c in CHANNELS if c != channel])
    method = rng.choice(METHODS)
    hour = rng.choice(range(8, 21))
    events = []
    for month in range(12):
        season = 1 + 0.35 * np.cos((month - 1) / 12 * 2 * np.pi)
        amounts = {
            u: base[u] * (season if u in ("electricity", "gas") else 1) * rng.uniform(0.85, 1.15)
            for u in UTILITIES
        }
        day = START + timedelta(days=30 * month + rng.randrange(3, 20))
        groups = [list(UTILITIES)] if rng.random() < 0.2 else [[u] for u in UTILITIES]
        for group in groups:
            at = day + timedelta(
                hours=min(23, max(7, int(rng.gauss(hour, 2.0)))),
                minutes=rng.randrange(60),
                days=rng.randrange(0, 3),
            )
            events.append(
                Event(
                    at,
                    _money(sum(amounts[u] for u in group)),
                    second if rng.random() < 0.08 else channel,
                    rng.choice(METHODS) if rng.random() < 0.04 else method,
                )
            )
    return sorted(events, key=lambda e: e.at)


def inject(rng: random.Random, events: list[Event], kind: str) -> list[Event]:
    """Add one fraud pattern at a random moment of the last two months."""
    usual = [e for e in events if e.fraud == 0]
    largest = max(float(e.amount) for e in usual)
    at = START + timedelta(days=rng.uniform(300, 360), hours=rng.uniform(0, 24))
    channels = {e.channel for e in usual}
    methods = {e.method for e in usual}
    new_channel = rng.choice([c for c in CHANNELS if c not in channels] or list(CHANNELS))
    new_method = rng.choice([m for m in METHODS if m not in methods] or list(METHODS))
    out = []
    if kind == "card_testing":
        chan = new_channel if rng.random() < 0.7 else rng.choice(list(channels))
        meth = new_method if rng.random() < 0.7 else rng.choice(list(methods))
        for _ in range(rng.randrange(5, 16)):
            at += timedelta(minutes=rng.uniform(0.5, 3))
            out.append(
                Event(
                    at,
                    _money(rng.uniform(1, 5)),
                    chan,
                    meth,
                    succeeded=rng.random() < 0.5,
                    fraud=1,
                    kind=kind,
                )
            )
    elif kind == "account_takeover":
        out.append(
            Event(
                at,
                _money(largest * rng.uniform(3, 8)),
                new_channel,
                new_method,
                fraud=1,
                kind=kind,
                failed_step_ups=rng.randrange(0, 4),
                failed_links=rng.randrange(0, 6),
            )
        )
    else:  # unusual hours
        night = at.replace(hour=rng.randrange(1, 5))
        typical = statistics.median(float(e.amount) for e in usual)
        out.append(
            Event(
                night,
                _money(typical * rng.uniform(1.5, 3)),
                rng.choice(list(channels)),
                rng.choice(list(methods)),
                fraud=1,
                kind=kind,
            )
        )
    return sorted(events + out, key=lambda e: e.at)


def featurise(
    events: list[Event], since: datetime | None = None
) -> list[tuple[RiskFeatures, Event]]:
    """Each event's features from the history before it (as the product computes them)."""
    out = []
    history: list[Decimal] = []
    channels: set[str] = set()
    methods: set[str] = set()
    times: list[datetime] = []
    for e in events:
        per_hour = sum(1 for t in times if t >= e.at - timedelta(hours=1))
        per_day = sum(1 for t in times if t >= e.at - timedelta(days=1))
        f = RiskFeatures(
            amount=e.amount,
            amount_due=e.amount if e.fraud == 0 else max(e.amount, Decimal("50.00")),
            history=tuple(history),
            per_hour=per_hour,
            per_day=per_day,
            new_channel=bool(history) and e.channel not in channels,
            channel=e.channel,
            new_method=bool(history) and e.method not in methods,
            method=e.method,
            hour=e.at.hour,
            failed_step_ups=e.failed_step_ups,
            failed_links=e.failed_links,
        )
        if since is None or e.at >= since:
            out.append((f, e))
        times.append(e.at)
        if e.succeeded:
            history.append(e.amount)
            channels.add(e.channel)
            methods.add(e.method)
    return out


def community(seed: int, households: int, fraud_share: float) -> list[tuple[RiskFeatures, Event]]:
    rng = random.Random(seed)
    rows = []
    since = START + timedelta(days=300)
    for _ in range(households):
        events = simulate_household(rng)
        if rng.random() < fraud_share:
            events = inject(
                rng,
                events,
                rng.choice(
                    ["card_testing", "account_takeover", "account_takeover", "unusual_hours"]
                ),
            )
        rows.extend(featurise(events, since if fraud_share else None))
    return rows


def recall_at(scores: np.ndarray, labels: np.ndarray, rate: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(scores)), -scores))
    top = order[: max(1, round(rate * len(scores)))]
    return float(labels[top].sum() / max(labels.sum(), 1))


def cost_per_payment(samples: int = 300) -> dict[str, object]:
    """Risk features + assessment on a seeded demo database, model on and off (ms)."""
    from backend.demo import seed
    from backend.service_layer import risk
    from backend.service_layer.unit_of_work import UnitOfWork
    from backend.settings import BillingSettings

    tmp = Path(tempfile.mkdtemp(prefix="risk-bench-"))
    url = f"sqlite:///{tmp / 'demo.db'}"
    demo = seed(url, households=40, seed=7, months=12, today=date(2026, 11, 20))
    uow = UnitOfWork.from_url(url)
    model_path = tmp / "model.joblib"
    off = BillingSettings(risk_model_enabled=False)
    on = BillingSettings(risk_model_enabled=True, risk_model_path=str(model_path))
    rows = [f.vector() for f in risk.training_rows(uow, on)]
    risk_model.save(risk_model.train(rows), model_path)
    households = [h["household_id"] for h in demo["households"]]
    rng = random.Random(5)
    out: dict[str, object] = {"trained_on": len(rows)}
    for name, settings in (("model_off", off), ("model_on", on)):
        times = []
        for i in range(samples):
            hid = households[i % len(households)]
            t0 = time.perf_counter()
            with uow.reading():
                f = risk.features(
                    uow.session,
                    hid,
                    Decimal(rng.randrange(1000, 40000)) / 100,
                    "card",
                    "telegram",
                    Decimal("300.00"),
                    datetime.now(UTC),
                    settings,
                )
            risk.assess_payment(f, settings, enforce=True)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        out[name] = {
            "median_ms": round(statistics.median(times), 3),
            "p95_ms": round(times[int(0.95 * len(times))], 3),
        }
    # the model alone (one LeanForest walk)
    model = risk_model.load(model_path)
    assert model is not None
    vec = rows[0]
    t0 = time.perf_counter()
    for _ in range(2000):
        model.score(vec)
    out["model_score_only_ms"] = round((time.perf_counter() - t0) / 2000 * 1000, 4)
    uow.engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--fraud-share", type=float, default=0.01)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    from sklearn.metrics import roc_auc_score, roc_curve
    from tqdm import tqdm

    steps = tqdm(total=4, desc="risk bench", file=sys.stderr)
    train = community(args.seed + 1000, args.households, 0.0)
    model = risk_model.train([f.vector() for f, _ in train], seed=7)
    steps.update()
    test = community(args.seed, args.households, args.fraud_share)
    labels = np.array([e.fraud for _, e in test])
    kinds = np.array([e.kind for _, e in test])
    rules = np.array([rule_points(f)[0] for f, _ in test], dtype=float)
    mscore = np.array([model.score(f.vector()) for f, _ in test], dtype=float)
    both = np.maximum(rules, np.floor((rules + mscore + 1) / 2))
    steps.update()
    results: dict[str, object] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} ({os.cpu_count()} CPU), "
        f"Python {platform.python_version()}",
        "households": args.households,
        "payments": len(test),
        "fraud_payments": int(labels.sum()),
        "fraud_by_kind": {
            k: int(((kinds == k) & (labels == 1)).sum())
            for k in ("card_testing", "account_takeover", "unusual_hours")
        },
        "training_payments": len(train),
        "scores": {},
    }
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, s in (("rules", rules), ("model", mscore), ("both", both)):
        auc = float(roc_auc_score(labels, s))
        rec = recall_at(s, labels, 0.01, args.seed)
        per_kind = {
            k: recall_at(
                s[(kinds == k) | (labels == 0)],
                labels[(kinds == k) | (labels == 0)],
                0.01,
                args.seed,
            )
            for k in ("card_testing", "account_takeover", "unusual_hours")
        }
        results["scores"][name] = {
            "roc_auc": round(auc, 4),
            "recall_at_1pct": round(rec, 4),
            "recall_at_1pct_by_kind": {k: round(v, 3) for k, v in per_kind.items()},
        }
        fpr, tpr, _ = roc_curve(labels, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.axvline(0.01, color="grey", linestyle=":", label="1 % of payments")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_xlabel("false positive rate (log)")
    ax.set_ylabel("recall of injected fraud")
    ax.set_title("Payment risk: ROC on simulated histories")
    ax.legend(loc="lower right")
    args.out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.out / "risk_roc.png", dpi=120)
    fig2, axes = plt.subplots(1, 3, figsize=(12, 3.5), sharey=True)
    for ax2, (name, s) in zip(
        axes, (("rules", rules), ("model", mscore), ("both", both)), strict=True
    ):
        ax2.hist(
            [s[labels == 0], s[labels == 1]],
            bins=20,
            range=(0, 100),
            density=True,
            label=["normal", "fraud"],
        )
        ax2.set_title(name)
        ax2.set_xlabel("score")
    axes[0].legend()
    fig2.tight_layout()
    fig2.savefig(args.out / "risk_scores.png", dpi=120)
    steps.update()
    results["cost_per_payment"] = cost_per_payment()
    steps.update()
    steps.close()
    (args.out / "risk.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
