"""Utilities and payment methods: synonyms, typos, both languages, look-alikes."""

from __future__ import annotations

import pytest

from nlu.entities import extract_entities, normalise_method, normalise_utility
from nlu.entities.methods import find_methods
from nlu.entities.utilities import find_utilities


def _values(text: str, entity: str) -> list[tuple[str, str]]:
    return [
        (text[e["start"] : e["end"]], e["value"])
        for e in extract_entities(text, "en")
        if e["entity"] == entity
    ]


UTILITIES = [
    ("how much is my electricity bill", [("electricity", "electricity")]),
    ("hw much is my electrcity bil", [("electrcity", "electricity")]),
    ("my elecricity bill", [("elecricity", "electricity")]),
    ("Electricty please", [("Electricty", "electricity")]),
    ("pay the power bill", [("power", "electricity")]),
    ("elec and water", [("elec", "electricity"), ("water", "water")]),
    ("ELECTRIC bill", [("ELECTRIC", "electricity")]),
    ("and water?", [("water", "water")]),
    ("watr bill", [("watr", "water")]),
    ("pay gas", [("gas", "gas")]),
    ("natural gas bill", [("natural gas", "gas")]),
    ("property fee", [("property fee", "property_fee")]),
    ("my property management fee", [("property management fee", "property_fee")]),
    ("hoa dues", [("hoa dues", "property_fee")]),
    ("management fees", [("management fees", "property_fee")]),
    ("电费多少", [("电费", "electricity")]),
    ("交电费", [("电费", "electricity")]),
    ("用了多少电", [("电", "electricity")]),
    ("水费", [("水费", "water")]),
    ("那水呢", [("水", "water")]),
    ("水电费", [("水", "water"), ("电费", "electricity")]),
    ("燃气费", [("燃气费", "gas")]),
    ("煤气", [("煤气", "gas")]),
    ("天然气账单", [("天然气", "gas")]),
    ("物业费", [("物业费", "property_fee")]),
    ("交物业", [("物业", "property_fee")]),
    ("管理费", [("管理费", "property_fee")]),
    ("pay 电费 with 支付宝", [("电费", "electricity")]),
]


@pytest.mark.parametrize(("text", "expected"), UTILITIES)
def test_utilities(text: str, expected: list[tuple[str, str]]) -> None:
    assert _values(text, "utility") == expected


NOT_UTILITIES = [
    "I like watermelon",
    "a trip to Las Vegas",
    "where is the nearest gas station",
    "buy some bottled water",
    "can you water my plants",
    "it will be done later",
    "the waiter was rude",
    "who won the election",
    "find me an electrician",
    "my electronics are broken",
    "my property is nice",
    "power of attorney",
    "打电话给我",
    "电话多少",
    "电梯坏了",
    "看电视",
    "电脑坏了",
    "电影票",
    "手机充电",
    "买水果",
    "薪水太低",
    "天气怎么样",
    "联系物业",
    "物业办公室在哪",
    "请回电",
    "",
]


@pytest.mark.parametrize("text", NOT_UTILITIES)
def test_look_alikes_are_not_utilities(text: str) -> None:
    assert find_utilities(text) == []


METHODS = [
    ("pay by card", [("card", "card")]),
    ("use my credit card", [("credit card", "card")]),
    ("with visa", [("visa", "card")]),
    ("Mastercard please", [("Mastercard", "card")]),
    ("pay via bank transfer", [("bank transfer", "bank_transfer")]),
    ("pay by transfer", [("transfer", "bank_transfer")]),
    ("from my bank", [("from my bank", "bank_transfer")]),
    ("from my wallet", [("wallet", "wallet")]),
    ("apple pay", [("apple pay", "wallet")]),
    ("alipay", [("alipay", "alipay")]),
    ("Ali Pay", [("Ali Pay", "alipay")]),
    ("alipya", [("alipya", "alipay")]),
    ("wechat pay", [("wechat pay", "wechat_pay")]),
    ("WeChat", [("WeChat", "wechat_pay")]),
    ("用支付宝", [("支付宝", "alipay")]),
    ("微信支付", [("微信支付", "wechat_pay")]),
    ("用微信付", [("微信", "wechat_pay")]),
    ("银行卡", [("银行卡", "card")]),
    ("信用卡付款", [("信用卡", "card")]),
    ("银行转账", [("银行转账", "bank_transfer")]),
    ("转账", [("转账", "bank_transfer")]),
    ("电子钱包", [("电子钱包", "wallet")]),
]


@pytest.mark.parametrize(("text", "expected"), METHODS)
def test_methods(text: str, expected: list[tuple[str, str]]) -> None:
    assert _values(text, "payment_method") == expected


NOT_METHODS = [
    "transfer me to a human",
    "can you transfer me to an agent",
    "a birthday card",
    "I need a visa for japan",
    "bank holiday",
    "add me on wechat moments",
    "我的微信号是多少",
    "卡住了",
]


@pytest.mark.parametrize("text", NOT_METHODS)
def test_look_alikes_are_not_methods(text: str) -> None:
    assert find_methods(text) == []


def test_electronic_wallet_is_not_electricity() -> None:
    entities = extract_entities("用电子钱包交电费", "zh")
    assert [(e["entity"], e["value"]) for e in entities] == [
        ("payment_method", "wallet"),
        ("utility", "electricity"),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [("power", "electricity"), ("燃气", "gas"), ("物业费", "property_fee"), ("pizza", None),
     ("water and gas", None)],
)  # fmt: skip
def test_normalise_utility(text: str, value: str | None) -> None:
    assert normalise_utility(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("visa", "card"), ("微信", "wechat_pay"), ("zhifubao", "alipay"), ("cash", None)],
)
def test_normalise_method(text: str, value: str | None) -> None:
    assert normalise_method(text) == value
