"""Payment methods: "visa", "bank transfer", "支付宝", "微信" ... -> the five method values.

The values are ``card``, ``bank_transfer``, ``wallet``, ``alipay`` and ``wechat_pay``
(CONTRACTS.md). "transfer me to a person" is a hand-off, not a bank transfer, so a
bare "transfer" only counts after "by", "via", "with" or "through".
"""

from __future__ import annotations

import re

from billtalk import vocabulary
from nlu.entities._fuzzy import fuzzy_words
from nlu.entities._spans import Span, SpanSet, synonym_matchers

METHODS = vocabulary.PAYMENT_METHODS

EN_SYNONYMS: dict[str, list[str]] = {
    "card": [
        "card", "credit card", "debit card", "bank card", "visa", "visa card", "mastercard",
        "master card", "amex", "unionpay", "union pay", "unionpay card", "cc", "creditcard",
    ],
    "bank_transfer": [
        "bank transfer", "wire transfer", "bank wire", "wire", "bank account", "online banking",
        "e-transfer", "etransfer", "direct transfer", "transfer", "from my bank",
        "bank tranfer", "bank trasfer", "bank",
    ],
    "wallet": [
        "wallet", "e-wallet", "ewallet", "digital wallet", "billtalk wallet", "app wallet",
        "apple pay", "google pay", "paypal", "wallet balance",
    ],
    "alipay": ["alipay", "ali pay", "ali-pay", "zhifubao", "alipy", "aliapy", "allipay"],
    "wechat_pay": [
        "wechat pay", "wechat", "we chat", "wechatpay", "weixin", "weixin pay", "wxpay",
        "wechat wallet", "wecaht", "wehcat", "wechta",
    ],
}  # fmt: skip

ZH_PATTERNS: dict[str, str] = {
    "card": r"银行卡|信用卡|借记卡|储蓄卡|银联卡|银联|刷卡|用卡|绑定的卡|那张卡",
    "bank_transfer": r"银行转账|转账|网银|银行汇款|汇款|对公转账",
    "wallet": r"电子钱包|钱包",
    "alipay": r"支付宝",
    "wechat_pay": r"微信支付|微信钱包|微信(?![号群名好友聊公])",
}

_EN_RE, _ZH_RE = synonym_matchers(EN_SYNONYMS, ZH_PATTERNS)
_BAD_AFTER = re.compile(
    r"^\s+(?:game|games|number\s+of\s+the\s+friend|sticker|stickers|group|groups|moments|"
    r"message|messages|call|id\s+of)\b",
    re.I,
)
_BAD_BEFORE = re.compile(
    r"(?:birthday|greeting|gift|report|business|sim|id|library|key|post|playing|sd|memory|"
    r"graphics|red|yellow|green|boarding|loyalty)\s+$",
    re.I,
)
#: "visa" as a travel document ("visa for japan").
_VISA_DOC = re.compile(
    r"\s+(?:for\s+(?!the\b|my\b|it\b|this\b|that\b|\w+\s+bill)|applications?|interview|"
    r"to\s+(?!pay\b)|office|extension|free|on\s+arrival|requirements?)",
    re.I,
)
#: A bare "transfer", "wire" or "bank" is a method only after one of these.
_BY_RE = re.compile(
    r"\b(?:by|via|with|through|using|use|do\s+a|make\s+a|from\s+my|from\s+the)\s+$", re.I
)
_FUZZY_VOCAB = {"alipay": "alipay", "wechat": "wechat_pay", "mastercard": "card"}
_STOP = frozenset(["wrench", "alike"])


def find_methods(text: str) -> list[Span]:
    """Payment-method mentions in ``text`` as ``payment_method`` spans, in order."""
    spans = SpanSet()
    for m in _EN_RE.finditer(text):
        if _BAD_BEFORE.search(text, max(0, m.start() - 20), m.start()) or _BAD_AFTER.match(
            text[m.end() : m.end() + 30]
        ):
            continue
        word = m.group(0).lower()
        if word in ("wire", "transfer", "bank", "bank account") and not _BY_RE.search(
            text, max(0, m.start() - 20), m.start()
        ):
            continue
        if word == "visa" and _VISA_DOC.match(text, m.end()):
            continue
        spans.add(Span("payment_method", m.lastgroup or "", m.start(), m.end()))
    for m in _ZH_RE.finditer(text):
        spans.add(Span("payment_method", m.lastgroup or "", m.start(), m.end()))
    for start, end, value in fuzzy_words(text, _FUZZY_VOCAB, _STOP):
        spans.add(Span("payment_method", value, start, end))
    return list(spans)


def normalise_method(text: str) -> str | None:
    """The payment method named by ``text`` ("visa" -> "card"), or None if none or several."""
    values = {s.value for s in find_methods(text)}
    return values.pop() if len(values) == 1 else None
