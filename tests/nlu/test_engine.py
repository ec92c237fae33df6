"""The engine on the shipped data: k-fold cross-validation and the held-out set.

The held-out messages in ``tests/nlu/heldout/`` are never trained on. The floors
asserted here are below the product targets (see docs/nlu.md for the measured
values); they catch regressions, the targets are tracked in bench/RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import sparse

import nlu
from nlu.classifier import OUT_OF_SCOPE
from nlu.evaluate import evaluate_model
from nlu.features import TfidfFeaturizer, normalise_text
from nlu.rasa_yaml import TrainingData, load_training_data
from nlu.train import train_on_data

HELDOUT = Path(__file__).resolve().parent / "heldout"


@pytest.fixture(scope="module")
def heldout_report(default_model: Any) -> dict[str, Any]:
    return evaluate_model(default_model, load_training_data(HELDOUT), progress=False)


def test_heldout_is_not_in_the_training_data() -> None:
    train = {e.text.lower().strip() for e in load_training_data(nlu.DATA_DIR).examples}
    held = [e.text.lower().strip() for e in load_training_data(HELDOUT).examples]
    assert len(held) >= 150
    assert not [t for t in held if t in train]


def test_heldout_intent_accuracy_per_language(heldout_report: dict[str, Any]) -> None:
    per_language = heldout_report["per_language"]
    assert per_language["en"]["intent_accuracy"] >= 0.93, heldout_report["misclassified"]
    assert per_language["zh"]["intent_accuracy"] >= 0.88, heldout_report["misclassified"]


def test_heldout_out_of_scope(heldout_report: dict[str, Any]) -> None:
    summary = heldout_report["summary"]
    assert summary["oos_recall"] >= 0.85
    assert summary["in_scope_fallback"] <= 0.05


def test_heldout_entities(heldout_report: dict[str, Any]) -> None:
    assert heldout_report["entities"]["all"]["f1"] >= 0.93, heldout_report["entities"]


def _folds(data: TrainingData, k: int, seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    fold_of = np.zeros(len(data.examples), dtype=int)
    by_intent: dict[str, list[int]] = {}
    for i, ex in enumerate(data.examples):
        by_intent.setdefault(ex.intent, []).append(i)
    for idx in by_intent.values():
        for rank, i in enumerate(rng.permutation(idx)):
            fold_of[i] = rank % k
    return [np.flatnonzero(fold_of == f) for f in range(k)]


def test_k_fold_cross_validation_on_shipped_data(encoder) -> None:
    data = load_training_data(nlu.DATA_DIR)
    k = 3
    accuracies, oos_recalls = [], []
    for test_idx in _folds(data, k):
        test_set = set(test_idx.tolist())
        train = TrainingData(
            examples=[e for i, e in enumerate(data.examples) if i not in test_set],
            synonyms=data.synonyms,
        )
        held = TrainingData(examples=[data.examples[i] for i in test_idx])
        model = train_on_data(train, None, encoder=encoder, progress=False)
        report = evaluate_model(model, held, progress=False)
        accuracies.append(report["summary"]["intent_accuracy"])
        oos_recalls.append(report["summary"]["oos_recall"])
    # The shipped data is deliberately hard (near-miss negatives across intents), and
    # each fold trains on two thirds of it: measured 0.81 mean accuracy (docs/nlu.md).
    assert float(np.mean(accuracies)) >= 0.75, accuracies
    assert float(np.mean(oos_recalls)) >= 0.65, oos_recalls


@pytest.mark.parametrize(
    ("text", "intent", "language"),
    [
        ("hw much is my electrcity bil", "check_balance", "en"),
        ("put 60 on the water account", "pay_bill", "en"),
        ("交300元燃气费", "pay_bill", "zh"),
        ("what's the weather", None, "en"),
        ("今天天气怎么样", None, "zh"),
    ],
)
def test_issue_examples(default_model: Any, text: str, intent: str | None, language: str) -> None:
    result = default_model.parse(text)
    assert result["language"] == language
    if intent is None:
        assert result["intent"]["name"] in {OUT_OF_SCOPE, "nlu_fallback"}
    else:
        assert result["intent"]["name"] == intent


def test_result_follows_rasa_parse_format(default_model: Any) -> None:
    result = default_model.parse("pay 150 for gas with alipay")
    assert set(result) >= {"text", "intent", "intent_ranking", "entities", "language"}
    assert result["text"] == "pay 150 for gas with alipay"
    ranking = result["intent_ranking"]
    assert ranking[0]["name"] == result["intent"]["name"]
    confidences = [r["confidence"] for r in ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences)
    values = {e["entity"]: e["value"] for e in result["entities"]}
    assert values.get("amount") == "150.00"
    assert values.get("utility") == "gas"
    assert values.get("payment_method") == "alipay"
    for ent in result["entities"]:
        assert result["text"][ent["start"] : ent["end"]]


def test_fallback_keeps_the_ranking(default_model: Any) -> None:
    result = default_model.parse("what is the capital of mongolia")
    assert result["intent"]["name"] in {OUT_OF_SCOPE, "nlu_fallback"}
    assert len(result["intent_ranking"]) >= 3


def test_parse_many_equals_parse(default_model: Any) -> None:
    texts = ["how much do i owe", "交电费", "tell me a joke"]
    batch = default_model.parse_many(texts)
    single = [default_model.parse(t) for t in texts]
    for a, b in zip(batch, single, strict=True):
        assert a["intent"]["name"] == b["intent"]["name"]
        assert a["intent"]["confidence"] == pytest.approx(b["intent"]["confidence"], abs=1e-4)


def test_direct_tfidf_equals_sklearn_transform() -> None:
    corpus = [
        normalise_text(t)
        for t in (
            "how much is my electricity bill",
            "hw much is my electrcity bil",
            "pay 60 on the water account",
            "交300元燃气费",
            "上个月电费多少",
            "what's the weather",
            "pay pay pay the the bill bill",
            "",
        )
    ]
    featurizer = TfidfFeaturizer(char_min_df=1)
    featurizer.fit_transform(corpus)
    queries = [*corpus, "zzz qqq", "电费 electricity mixed 123", "   "]
    assert featurizer.word is not None and featurizer.char is not None
    expected = sparse.hstack(
        [featurizer.word.transform(queries), featurizer.char.transform(queries)], format="csr"
    )
    ours = featurizer.transform(queries)
    assert ours.shape == expected.shape
    assert abs(ours - expected).max() < 1e-6
    assert featurizer.transform([]).shape == (0, featurizer.n_features)
