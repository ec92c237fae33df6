"""Entity precision, recall and F1 of the rules against annotated messages.

Two measurements:

* every annotated example in ``nlu/data`` (the training data is annotated by hand;
  the parsers must agree with it), target F1 >= 0.95 on normalised values;
* :data:`UNSEEN`, messages written after the parsers and never used to tune them,
  kept here so the score on text the rules were not fitted to stays visible.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.entities import extract_entities
from nlu.entities.evaluation import iter_examples, parse_annotated, score_entities

DATA = Path(__file__).resolve().parents[2] / "nlu" / "data"
TARGET_F1 = 0.95

U = '{"entity": "utility", "value": "%s"}'
A = '{"entity": "amount", "value": "%s"}'
M = '{"entity": "payment_method", "value": "%s"}'
P = '{"entity": "period"}'
UNSEEN = [
    f"can u pay [eighty]{A % '80.00'} on the [electric]{U % 'electricity'} one",
    f"how much was [gas]{U % 'gas'} in [october]{P}",
    f"use [paypal]{M % 'wallet'} for the [water]{U % 'water'}",
    f"[Water]{U % 'water'} bill [last month]{P} was [$45.20]{A % '45.20'}?? why",
    f"i want to pay [RMB 1,000]{A % '1000.00'} by [wire transfer]{M % 'bank_transfer'}",
    f"pls send my [power]{U % 'electricity'} receipt for [sept 2025]{P}",
    f"meter number now [13920](meter_reading) on the [gas]{U % 'gas'}",
    'linking code is [5520 1934]{"entity": "link_code", "value": "55201934"}',
    f"交[两百五]{A % '250.00'}[物业费]{U % 'property_fee'}用[微信]{M % 'wechat_pay'}",
    f"[去年]{P}[十二月]{P}的[燃气]{U % 'gas'}用量",
    f'[电表]{U % "electricity"}读数[45210]{{"entity": "meter_reading"}}',
    f"用[支付宝]{M % 'alipay'}充[一百块]{A % '100.00'}[电费]{U % 'electricity'}",
    f"[上个月]{P}[水费]{U % 'water'}怎么要[两百八]{A % '280.00'}",
    f"what's my [hoa]{U % 'property_fee'} balance",
    f"autopay [elec]{U % 'electricity'} with [my visa]{M % 'card'}",
    f"pay [fifteen dollars]{A % '15.00'}",
    f"[gas](utility) usage [last 6 months]{P} please",
    f"i was charged [¥120]{A % '120.00'} twice for [water]{U % 'water'}",
    f"put [200]{A % '200.00'} on [electricity](utility) with [wechat pay]{M % 'wechat_pay'}",
    f"why is [electricty]{U % 'electricity'} [this month]{P} so high",
    "what's the weather in paris",
    "my neighbour owes me money",
    '绑定码[90817263]{"entity": "link_code"}',
    f"[本月]{P}[用电]{U % 'electricity'}多少度",
    f"pay [300 kuai]{A % '300.00'} for [gas](utility)",
]


def test_entity_f1_on_the_training_data() -> None:
    scores = score_entities(iter_examples([DATA]))
    precision, recall, f1 = scores.overall()
    report = [f"overall P={precision:.3f} R={recall:.3f} F1={f1:.3f}"]
    for entity, (p, r, f) in scores.per_type().items():
        report.append(f"{entity:15} P={p:.3f} R={r:.3f} F1={f:.3f} (tp={scores.tp[entity]})")
    print("\n".join(report))
    for text, missed, spurious in scores.errors:
        print(f"  {text!r}: missed {missed} spurious {spurious}")
    assert sum(scores.tp.values()) > 500, "the data should be richly annotated"
    assert f1 >= TARGET_F1, report
    for entity, (_, _, f) in scores.per_type().items():
        assert f >= 0.9, (entity, report)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_entity_f1_per_language(lang: str) -> None:
    _, _, f1 = score_entities(iter_examples([DATA / lang])).overall()
    assert f1 >= TARGET_F1


def test_entity_f1_on_unseen_messages() -> None:
    scores = score_entities(parse_annotated(line) for line in UNSEEN)
    precision, recall, f1 = scores.overall()
    print(f"unseen: P={precision:.3f} R={recall:.3f} F1={f1:.3f}")
    for text, missed, spurious in scores.errors:
        print(f"  {text!r}: missed {missed} spurious {spurious}")
    assert f1 >= 0.85


def test_parse_annotated_offsets_and_syntaxes() -> None:
    ex = parse_annotated(
        'pay [60]{"entity": "amount", "value": "60.00"} on [water](utility) '
        "by [visa](payment_method:card)",
        "pay_bill",
    )
    assert ex.text == "pay 60 on water by visa"
    assert ex.entities == (
        ("amount", "60.00", 4, 6),
        ("utility", "water", 10, 15),
        ("payment_method", "card", 19, 23),
    )


def test_parse_annotated_rejects_malformed_annotations() -> None:
    with pytest.raises(ValueError):
        parse_annotated('pay [60]{"value": "60.00"}')
    with pytest.raises(ValueError):
        parse_annotated('pay [60]{"entity": amount}')


def test_scores_count_misses_and_false_alarms() -> None:
    scores = score_entities(
        [
            parse_annotated("pay [60](amount) on gas"),  # value "60" != "60.00", gas missed
        ]
    )
    assert scores.tp["amount"] == 0
    assert scores.fn["amount"] == 1 and scores.fp["amount"] == 1
    assert scores.fp["utility"] == 1
    precision, recall, f1 = scores.overall()
    assert precision == 0.0 and recall == 0.0 and f1 == 0.0


def test_annotated_spans_agree_with_the_parsers() -> None:
    """Spans matter to a learned extractor trained on the data: keep them consistent."""
    gold_total = agreed = 0
    for ex in iter_examples([DATA]):
        predicted = {(d["entity"], d["start"], d["end"]) for d in extract_entities(ex.text, "en")}
        for entity, _, start, end in ex.entities:
            gold_total += 1
            agreed += (entity, start, end) in predicted
    assert gold_total > 500
    assert agreed / gold_total >= 0.98, (agreed, gold_total)
