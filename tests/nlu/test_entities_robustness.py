"""``extract_entities`` never crashes and always returns well-formed entities."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlu.entities import ENTITY_TYPES, MAX_CHARS, METHODS, UTILITIES, extract_entities
from nlu.entities.amounts import parse_amount

AMOUNT_RE = re.compile(r"^\d+\.\d{2}$")
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Fragments that exercise every parser, mixed with arbitrary text by hypothesis.
FRAGMENTS = [
    "pay ", "$", "¥", "1,250", "45.50", "-", "元", "块", "三百", "两千五", "one hundred and ",
    "fifty", " cents", "electricity", "电费", "水", "微信", "alipay", "last month", "上个月",
    "三月", "meter ", "读数", "code ", "482-913", "12345678", "kwh", "度", "%", "\x00", "\u200b",
    "😀", "\n", "\t", "Ω", "ℌ", "İ", "ﬀ", "١٢٣", "零", "万", "点", "月份", "since ",
    "from ", " to ",
]  # fmt: skip
messages = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20)), max_size=30).map(
    "".join
)


def _check(text: str, entities: list[dict[str, Any]]) -> None:
    last_end = 0
    for e in entities:
        assert e["entity"] in ENTITY_TYPES
        assert 0 <= e["start"] < e["end"] <= min(len(text), MAX_CHARS)
        assert e["start"] >= last_end, "sorted and non-overlapping"
        last_end = e["end"]
        value = e["value"]
        if e["entity"] == "amount":
            assert AMOUNT_RE.match(value)
        elif e["entity"] == "utility":
            assert value in UTILITIES
        elif e["entity"] == "payment_method":
            assert value in METHODS
        elif e["entity"] == "period":
            assert ISO_RE.match(value["start"]) and ISO_RE.match(value["end"])
            assert value["start"] <= value["end"]
        else:
            assert re.fullmatch(r"\d+(?:\.\d+)?", value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=messages, ref=st.dates(min_value=date(1990, 1, 1), max_value=date(2200, 12, 31)))
def test_any_text_gives_well_formed_entities(text: str, ref: date) -> None:
    _check(text, extract_entities(text, "en", ref))
    _check(text, extract_entities(text, "zh", ref))


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_parse_amount_returns_a_two_place_decimal_or_none(text: str) -> None:
    result = parse_amount(text)
    assert result is None or (result > 0 and AMOUNT_RE.match(str(result)))


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\x00\x01\x02\x1b[31m",
        "a" * 10_000,
        "1," * 5_000,
        "1" * 10_000,
        "one " * 2_500,
        "三" * 10_000,
        "$" * 10_000,
        "pay 60 " * 1_500,
        "电费" * 5_000,
        "😀" * 10_000,
        "electrcity " * 1_000,
        "[water](utility)" * 600,
        "\ud800",  # a lone surrogate, as a broken client might send
    ],
)
def test_hostile_input(text: str) -> None:
    entities = extract_entities(text, "en")
    _check(text, entities)


def test_only_the_first_max_chars_are_read() -> None:
    text = "x" * MAX_CHARS + " pay 60"
    assert extract_entities(text, "en") == []


@pytest.mark.parametrize("bad", [None, 42, b"pay 60", ["pay 60"]])
def test_non_text_gives_no_entities(bad: Any) -> None:
    assert extract_entities(bad, "en") == []
