"""Numbers told apart by context: amounts, meter readings, link codes, or nothing."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from nlu.entities import extract_entities
from nlu.entities.readings import find_link_codes

REF = date(2026, 11, 22)


def _numbers(text: str) -> list[tuple[str, str, str]]:
    return [
        (e["entity"], e["value"], text[e["start"] : e["end"]])
        for e in extract_entities(text, "en", REF)
        if e["entity"] in ("amount", "meter_reading", "link_code")
    ]


CASES = [
    # meter readings
    ("my meter says 12345", [("meter_reading", "12345", "12345")]),
    ("reading is 4521.7 kWh", [("meter_reading", "4521.7", "4521.7")]),
    ("water meter reads 00342", [("meter_reading", "00342", "00342")]),
    ("submit reading 5567 for gas", [("meter_reading", "5567", "5567")]),
    ("电表读数 3456", [("meter_reading", "3456", "3456")]),
    ("水表读数是00342", [("meter_reading", "00342", "00342")]),
    ("电表走到23456度了", [("meter_reading", "23456", "23456")]),
    # link codes
    ("my code is 482913", [("link_code", "482913", "482913")]),
    ("link code 482-913", [("link_code", "482913", "482-913")]),
    ("code 6620 1839", [("link_code", "66201839", "6620 1839")]),
    ("my link code is 73021945", [("link_code", "73021945", "73021945")]),
    ("绑定码 482913", [("link_code", "482913", "482913")]),
    ("code 004213", [("link_code", "004213", "004213")]),
    ("004213", [("link_code", "004213", "004213")]),
    ("绑定码4417-2290", [("link_code", "44172290", "4417-2290")]),
    ("19283746", [("link_code", "19283746", "19283746")]),  # a bare 6-8 digit reply
    # amounts
    ("put 60 on the water account", [("amount", "60.00", "60")]),
    ("pay 150 with alipay", [("amount", "150.00", "150")]),
    ("60", [("amount", "60.00", "60")]),
    ("60 please", [("amount", "60.00", "60")]),
    ("2000", [("amount", "2000.00", "2000")]),
    ("make it 80", [("amount", "80.00", "80")]),
    ("why is my bill 250 this month", [("amount", "250.00", "250")]),
    ("pay fifty", [("amount", "50.00", "fifty")]),
    ("receipt for $120 payment", [("amount", "120.00", "$120")]),
    ("交三百", [("amount", "300.00", "三百")]),
    ("交300元燃气费", [("amount", "300.00", "300元")]),
    (
        "pay 100 and my meter says 4410",
        [
            ("amount", "100.00", "100"),
            ("meter_reading", "4410", "4410"),
        ],
    ),
    # nothing
    ("I used 300 kwh in March", []),
    ("用了300度电", []),
    ("show the last 2 bills", []),
    ("apartment 1203 water bill", []),
    ("unit 12 balance", []),
    ("what does tier 2 mean", []),
    ("my bill went up 30%", []),
    ("call me at 10am", []),
    ("on the 15th", []),
    ("testing 123", []),
    ("电费欠了一百多", []),  # "a hundred-odd" is not an amount
    ("pls pay 2 hundred for water", [("amount", "200.00", "2 hundred")]),
    ("150.00", [("amount", "150.00", "150.00")]),
    ("my account number is 12345678", []),
    ("what's 15 times 7", []),
    ("pay the last one", []),
    ("which one", []),
    ("查一下电费", []),
    ("交一下水费", []),
    ("十分感谢", []),
    ("2025-03-01", []),
    ("due 3/15", []),
    ("12:30", []),
    ("pay 45.555", []),  # over-precise money is rejected, not rounded
    ("pay -50", []),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_numbers_by_context(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert _numbers(text) == expected


def test_link_codes_need_six_to_eight_digits() -> None:
    assert find_link_codes("code 12345") == []
    assert find_link_codes("code 123456789") == []
    assert [s.value for s in find_link_codes("code 1234567")] == ["1234567"]


def test_link_code_without_cue_only_on_request() -> None:
    assert find_link_codes("the number 48291302 is on my bill") == []
    assert [s.value for s in find_link_codes("48291302", require_cue=False)] == ["48291302"]


def test_entities_are_ordered_and_non_overlapping() -> None:
    text = "pay 150 yuan for electricity last month with alipay, meter reads 4521 and code 482913"
    entities = extract_entities(text, "en", REF)
    assert [e["entity"] for e in entities] == [
        "amount", "utility", "period", "payment_method", "meter_reading", "link_code",
    ]  # fmt: skip
    for a, b in itertools.pairwise(entities):
        assert a["end"] <= b["start"]
    for e in entities:
        assert e["extractor"] == "billtalk_rules"
        assert e["confidence_entity"] == 1.0
        assert set(e) == {"entity", "value", "start", "end", "extractor", "confidence_entity"}
