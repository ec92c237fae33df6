"""Deterministic entity extraction for billtalk messages, in English and Chinese.

:func:`extract_entities` finds every entity of CONTRACTS.md in a message and returns
Rasa ``/model/parse`` entity dicts with offsets into the original text::

    >>> extract_entities("pay 60 on the water account", "en")
    [{'entity': 'amount', 'start': 4, 'end': 6, 'value': '60.00', ...},
     {'entity': 'utility', 'start': 14, 'end': 19, 'value': 'water', ...}]

The individual parsers live in :mod:`~nlu.entities.amounts`, :mod:`~nlu.entities.utilities`,
:mod:`~nlu.entities.methods`, :mod:`~nlu.entities.periods` and
:mod:`~nlu.entities.readings`. A number is an ``amount``, a ``meter_reading`` or a
``link_code`` depending on the words around it; see ``docs/nlu-data.md``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from nlu.entities._spans import Span, SpanSet, fold
from nlu.entities.amounts import NumberToken, find_numbers, format_amount, parse_amount
from nlu.entities.methods import METHODS, find_methods, normalise_method
from nlu.entities.periods import find_periods
from nlu.entities.readings import LINK_CODE_DIGITS, find_link_codes, link_cue_near, reading_cue_near
from nlu.entities.utilities import UTILITIES, find_utilities, normalise_utility

__all__ = [
    "ENTITY_TYPES",
    "EXTRACTOR",
    "METHODS",
    "UTILITIES",
    "extract_entities",
    "normalise_method",
    "normalise_utility",
    "parse_amount",
    "unreadable_amount",
]

#: The ``extractor`` name on every entity this module returns.
EXTRACTOR = "billtalk_rules"
#: Every entity type :func:`extract_entities` can return.
ENTITY_TYPES = ("amount", "utility", "payment_method", "period", "meter_reading", "link_code")
#: Longest message examined; anything beyond is ignored (bounded time on hostile input).
MAX_CHARS = 10_000

_MONEY_CUE = re.compile(
    r"\b(?:pay|pays|paying|paid|payment|put|top\s*up|topup|charge[sd]?|owe[sd]?|owing|amount|"
    r"send|sending|spend|spent|cost|costs|bill|bills|balance|fee|fees|total|due|deposit|"
    r"credit|settle|clear|cover|only|about|around|over|under|than|worth|price|sum|"
    r"of|make\s+it|go\s+with|do|max|maximum|limit|cap|capped|up\s+to|at\s+most|no\s+more\s+than)\b|"
    r"交|缴|付|支付|充|还|金额|钱|费|多于|超过|转|存|上限|最多|不超过|限额",
    re.I,
)
_PLACE_BEFORE = re.compile(
    r"(?:#|\bno\.?|\bapt\.?|\bapartment|\bunit|\broom|\bflat|\bbuilding|\bblock|\bbldg|\bfloor|"
    r"\bsuite|\btower|\bnumber|\bphone|\btel|\bcall|\bext\.?|\btier|\blevel|\bstep|\boption|"
    r"\bpage|\bline|\bitem|\bversion|\bpin|\bpasscode|\bpassword|\botp|"
    r"\bdate|\bon\s+the|第|房间|房号|门牌|楼|栋|单元|密码|验证码|口令|绑定码)\s*(?:is|was|:|：|是)?\s*$",
    re.I,
)
#: A month name right after or before a number makes it a date ("on 15 nov", "Nov 15").
_MONTH_WORDS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_MONTH_AFTER = re.compile(rf"\s*(?:of\s+)?(?:{_MONTH_WORDS})\b", re.I)
_MONTH_BEFORE = re.compile(rf"\b(?:{_MONTH_WORDS})\.?\s*$", re.I)
#: A unit number written with its building letter ("B-0203", "b0203", "A座1203").
_UNIT_NUMBER_BEFORE = re.compile(r"(?:(?<![a-z0-9])[a-z][-‐–]|[a-z]座)$", re.I)
_NO_AMOUNT_UNITS = frozenset(
    [
        "months",
        "month",
        "years",
        "year",
        "yrs",
        "yr",
        "weeks",
        "week",
        "days",
        "day",
        "hours",
        "hour",
        "hrs",
        "hr",
        "minutes",
        "minute",
        "mins",
        "min",
        "times",
        "time",
        "people",
        "person",
        "persons",
        "rooms",
        "room",
        "floors",
        "floor",
        "apartments",
        "apartment",
        "flats",
        "flat",
        "st",
        "nd",
        "rd",
        "th",
        "am",
        "pm",
        "a.m.",
        "p.m.",
        "oclock",
        "o'clock",
        "bills",
        "bill",
        "payments",
        "payment",
        "%",
        "percent",
        "个",
        "次",
        "月",
        "天",
        "日",
        "号",
        "年",
        "周",
        "星期",
        "小时",
        "分钟",
        "点",
        "楼",
        "层",
        "室",
        "栋",
        "单元",
        "户",
        "人",
        "张",
        "笔",
        "期",
        "多",
        "来",
        "余",
        "几",
    ]
)
_READING_UNITS = frozenset(
    [
        "kwh",
        "kw",
        "kilowatt",
        "kilowatts",
        "kilowatt-hours",
        "m3",
        "m³",
        "cubic",
        "units",
        "unit",
        "therms",
        "therm",
        "gallons",
        "gallon",
        "liters",
        "liter",
        "litres",
        "litre",
        "degrees",
        "degree",
        "度",
        "方",
        "立方",
        "吨",
    ]
)


def _classify(tok: NumberToken, text: str) -> Span | None:
    """Decide whether a number is an amount, a meter reading, a link code or nothing."""
    if tok.currency:
        if not tok.valid_amount:
            return None
        return Span("amount", format_amount(tok.value), tok.start, tok.end)
    unit = re.sub(r"[\s-]+", "", tok.unit or "")
    if unit in _NO_AMOUNT_UNITS:
        return None
    if _PLACE_BEFORE.search(text, max(0, tok.start - 20), tok.start):
        return None
    if _not_money_number(tok, text):
        return None
    if tok.kind == "cn" and tok.value < 10:
        return None  # "一下", "一个": single Chinese digits are words, not numbers
    integer = tok.value == tok.value.to_integral_value()
    code_like = (
        tok.kind == "digits"
        and tok.digits.isdigit()
        and LINK_CODE_DIGITS[0] <= len(tok.digits) <= LINK_CODE_DIGITS[1]
    )
    reading = reading_cue_near(text, tok.start, tok.end)
    link = link_cue_near(text, tok.start, tok.end) if code_like else None
    money = _money_cue_near(text, tok.start, tok.end)
    is_reading_unit = unit in _READING_UNITS or unit.startswith(("kilowatt", "cubic"))
    if tok.kind != "digits" and (tok.value < 10 or (not integer and tok.kind == "words")):
        money = None  # "pay the last one", "交一下"
    # Spelled-out numbers are amounts only in a money context ("pay fifty").
    if (
        tok.kind == "words"
        and reading is None
        and (money is None or tok.value < 10 or is_reading_unit)
    ):
        return None
    if tok.kind == "cn" and reading is None and (money is None or is_reading_unit):
        return None
    options: list[tuple[int, int, str]] = []
    if link is not None:
        options.append((link, 0, "link_code"))
    if reading is not None:
        options.append((reading, 1, "meter_reading"))
    if money is not None and tok.valid_amount and not is_reading_unit:
        options.append((money, 2, "amount"))
    if options:
        kind = min(options)[2]
    elif is_reading_unit:
        return None
    elif code_like and _bare_reply(text, tok):
        kind = "link_code"
    elif tok.kind == "digits" and tok.valid_amount and _bare_reply(text, tok):
        kind = "amount"  # the whole reply is a number: the answer to "how much?"
    else:
        return None
    if kind == "amount":
        if not tok.valid_amount:
            return None
        return Span("amount", format_amount(tok.value), tok.start, tok.end)
    if kind == "link_code":
        return Span("link_code", tok.digits, tok.start, tok.start + len(tok.digits))
    return Span("meter_reading", _reading_value(tok), tok.start, tok.end)


def _not_money_number(tok: NumberToken, text: str) -> bool:
    """Whether a number without a currency mark is a date or a unit number, never an amount."""
    if tok.kind != "digits":
        return False
    if _MONTH_AFTER.match(text, tok.end) or _MONTH_BEFORE.search(text, 0, tok.start):
        return True
    before = text[max(0, tok.start - 3) : tok.start]
    return bool(_UNIT_NUMBER_BEFORE.search(before)) and len(tok.digits) >= 3


_FILLER_RE = re.compile(
    r"(?:\s|[.,!?:;~]|\b(?:please|pls|plz|just|only|ok|okay|make\s+it|it's|its|about|"
    r"around|how\s+about|try|then|yes|yeah|no|let's\s+say|say)\b|好的|吧|就|请|嗯|的)*",
    re.I,
)


def _bare_reply(text: str, tok: NumberToken) -> bool:
    """Whether the number is the whole reply, give or take a few filler words ("60 please")."""
    before = _FILLER_RE.fullmatch(text[: tok.start])
    after = _FILLER_RE.fullmatch(text[tok.end :])
    return before is not None and after is not None


def _reading_value(tok: NumberToken) -> str:
    if tok.kind == "digits":
        return tok.digits
    return (
        str(tok.value.normalize())
        if tok.value != tok.value.to_integral_value()
        else str(int(tok.value))
    )


def _money_cue_near(text: str, start: int, end: int) -> int | None:
    best: int | None = None
    for m in _MONEY_CUE.finditer(text, max(0, start - 30), min(len(text), end + 16)):
        if m.end() <= start:
            d = start - m.end()
        elif m.start() >= end:
            d = m.start() - end
        else:
            continue
        best = d if best is None else min(best, d)
    return best


def extract_spans(
    text: str, language: str = "en", reference_date: date | None = None
) -> list[Span]:
    """Like :func:`extract_entities` but returns :class:`~nlu.entities._spans.Span` objects."""
    if not isinstance(text, str) or not text:
        return []
    text = text[:MAX_CHARS]
    folded = fold(text)
    taken = SpanSet(find_periods(folded, reference_date))
    named = sorted(
        find_methods(folded) + find_utilities(folded),
        key=lambda s: (-(s.end - s.start), s.start),  # longest first: "电子钱包" over "用电"
    )
    for span in named:
        taken.add(span)
    for span in find_link_codes(folded):
        taken.add(span)
    for tok in find_numbers(folded):
        if not taken.is_free(tok.start, tok.end):
            continue
        number = _classify(tok, folded)
        if number is not None:
            taken.add(number)
    return list(taken)


def extract_entities(
    text: str, language: str = "en", reference_date: date | None = None
) -> list[dict[str, Any]]:
    """Find the entities of a resident's message.

    Never raises on any string: empty, 10,000 characters, control characters,
    emoji and mixed scripts all give a (possibly empty) list.

    Args:
        text: The message, as the resident wrote it.
        language: ``"en"`` or ``"zh"``; both languages are always searched (residents
            mix them), the argument is kept for parsers that may need it.
        reference_date: "Today", for resolving relative periods; defaults to today.

    Returns:
        Rasa entity dicts ``{"entity", "start", "end", "value", "extractor",
        "confidence_entity"}``, non-overlapping and in order of ``start``, with
        offsets into ``text``. Values are normalised: amounts as "150.00",
        utilities and payment methods as CONTRACTS.md names, periods as
        ``{"start", "end"}`` ISO dates, readings and link codes as digit strings.
    """
    return [span.to_rasa() for span in extract_spans(text, language, reference_date)]


#: Money marks next to something that is not a number ("¥abc", "$xyz", "NaN yuan").
_JUNK_AMOUNT_RE = re.compile(
    r"[¥$＄￥]\s*(?![\d\s.,])[^\s\d]|\b(?:nan|inf(?:inity)?)\b|"
    r"\b(?:rmb|cny|usd)\s*(?![\d\s])[a-z]",
    re.I,
)


def unreadable_amount(text: str, reference_date: date | None = None) -> bool:
    """Whether ``text`` tries to give a money amount that cannot be read as one.

    True for "pay NaN", "pay ¥abc", "pay -5" or "1.234": the dialogue must ask
    for the amount again instead of guessing (or silently paying the full bill).
    False when an amount was read, and for numbers that are something else: unit
    numbers ("B-0203", "room 1203"), dates ("15 Nov"), PINs, link codes, meter
    readings, and counts with a unit ("3 months").
    """
    if not isinstance(text, str) or not text:
        return False
    text = text[:MAX_CHARS]
    folded = fold(text)
    if _JUNK_AMOUNT_RE.search(folded):
        return True
    spans = extract_spans(text, reference_date=reference_date)
    if any(span.entity == "amount" for span in spans):
        return False
    taken = SpanSet(spans)
    for tok in find_numbers(folded):
        if tok.kind != "digits" or not taken.is_free(tok.start, tok.end):
            continue
        unit = re.sub(r"[\s-]+", "", tok.unit or "")
        if unit in _NO_AMOUNT_UNITS or unit in _READING_UNITS:
            continue
        digits_start = tok.end - len(tok.digits) if not tok.currency else tok.start
        before = folded[max(0, digits_start - 3) : digits_start]
        if _UNIT_NUMBER_BEFORE.search(before) or _not_money_number(tok, folded):
            continue
        if _PLACE_BEFORE.search(folded, max(0, tok.start - 20), tok.start):
            continue
        return True
    return False
