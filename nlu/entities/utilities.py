"""Utility names: "power", "elec", "电费", "燃气", "物业费" ... -> the four utility values.

The values are ``electricity``, ``water``, ``gas`` and ``property_fee`` (CONTRACTS.md).
Matching is on whole words in English, tolerant of small typos ("electrcity"), and
guarded against look-alikes: "watermelon", "Las Vegas", "gas station", "电话"
(telephone), "电梯" (lift) and "水果" (fruit) are not utilities.
"""

from __future__ import annotations

import re

from billtalk import vocabulary
from nlu.entities._fuzzy import fuzzy_words
from nlu.entities._spans import Span, SpanSet, synonym_matchers

UTILITIES = vocabulary.UTILITIES

#: English synonyms, matched as whole words, longest first.
EN_SYNONYMS: dict[str, list[str]] = {
    "electricity": [
        "electricity", "electrical", "electric", "elec", "power", "energy", "hydro",
        "electricty", "electicity", "elecricity", "electrcity", "electricy", "eletricity",
        "eletric", "electic", "lectricity", "electrictiy", "elecrticity", "electrisity",
    ],
    "water": ["water", "sewage", "sewer", "watr", "wtaer", "watre", "watter", "warer"],
    "gas": ["gas", "natural gas", "cooking gas", "gass"],
    "property_fee": [
        "property fee", "property fees", "property management fee", "property management fees",
        "property management", "property charge", "property charges", "property bill",
        "management fee", "management fees", "mgmt fee", "mgmt fees", "maintenance fee",
        "maintenance fees", "hoa fee", "hoa fees", "hoa dues", "hoa", "service charge",
        "service charges", "strata fee", "strata fees", "condo fee", "condo fees",
        "propety fee", "proprety fee", "porperty fee", "propery fee", "property fe",
        "managment fee", "mangement fee", "property", "managment fees",
    ],
}  # fmt: skip

#: Chinese synonyms; single characters are guarded by the look-arounds below.
ZH_PATTERNS: dict[str, str] = {
    "electricity": r"电费|电表|用电量|耗电量|电量|电价|用电|停电|电力|"
    r"(?<![充手来闪发触放静漏雷回])电(?![话视脑梯影子池器邮商竞台动车源线路筒报网压工灯扇饭磁])",
    "water": r"水费|水表|用水量|用水|停水|自来水|"
    r"(?<![薪口香汽墨胶潜风泪雨洪喝装漏])水(?![果平准泥杯壶晶饺族军星手彩獭龙头管器道])",
    "gas": r"燃气费|燃气|煤气费|煤气|天然气|气费",
    "property_fee": r"物业管理费|物业费|物管费|(?<=[交缴付欠])物业|物业(?=账单|的账|的钱)|管理费",
}

# "property" alone is a utility only next to a bill word; see _needs_bill_word.
_EN_RE, _ZH_RE = synonym_matchers(EN_SYNONYMS, ZH_PATTERNS)

#: Words right before a match that make it something else ("bottled water").
_BAD_BEFORE = re.compile(
    r"(?:bottled?|bottles\s+of|drinking|mineral|sparkling|glass\s+of|las|tear|laughing|"
    r"pepper|horse|will|super|man|flower|solar|power\s+of|holy|salt|sea|rain)\s+$",
    re.I,
)
#: Words right after a match that make it something else ("gas station").
_BAD_AFTER = re.compile(
    r"^\s+(?:station|stations|stove\s+repair|mileage|tank|pedal|prices?\s+at|"
    r"bank|banks|nap|point|points|ranger|rangers|of\s+attorney|bottle|bottles|park|polo|"
    r"melon|fall|falls|slide|gun|ball|balloon|colou?rs?|supply\s+store|station's)\b",
    re.I,
)
#: "water" used as a verb ("water my plants").
_WATER_VERB = re.compile(
    r"\s+(?:my|the|your|his|her|our|their|them|it|these|those|plants?|flowers?|lawn|garden)\b",
    re.I,
)
_PROPERTY_NEEDS = re.compile(r"\s+(?:bill|fee|fees|charge|charges|payment|dues)\b", re.I)

_FUZZY_VOCAB = {"electricity": "electricity", "electric": "electricity", "water": "water"}
_STOP = frozenset(
    [
        "later",
        "water",
        "waters",
        "wafer",
        "waiter",
        "eater",
        "hater",
        "cater",
        "rater",
        "wader",
        "wager",
        "watery",
        "waited",
        "waits",
        "watch",
        "wanted",
        "elective",
        "eclectic",
        "electron",
        "election",
        "elect",
        "elected",
        "electing",
        "electoral",
        "electrons",
        "electrode",
        "electrician",
        "electricians",
        "electronic",
        "electronics",
        "winter",
        "writer",
        "whiter",
        "wetter",
    ]
)


def find_utilities(text: str) -> list[Span]:
    """Utility mentions in ``text`` as ``utility`` spans, in order.

    Args:
        text: The message, English, Chinese or mixed.

    Returns:
        Non-overlapping spans whose ``value`` is one of :data:`UTILITIES`.
    """
    spans = SpanSet()
    for m in _EN_RE.finditer(text):
        value = m.lastgroup or ""
        word = m.group(0).lower()
        if _BAD_BEFORE.search(text, max(0, m.start() - 24), m.start()) or _BAD_AFTER.match(
            text[m.end() : m.end() + 30]
        ):
            continue
        if word == "water" and _WATER_VERB.match(text, m.end()):
            continue
        if word == "property" and not _PROPERTY_NEEDS.match(text, m.end()):
            continue
        if word in ("power", "energy") and _BAD_AFTER.match(text[m.end() : m.end() + 30]):
            continue
        spans.add(Span("utility", value, m.start(), m.end()))
    for m in _ZH_RE.finditer(text):
        spans.add(Span("utility", m.lastgroup or "", m.start(), m.end()))
    for start, end, value in fuzzy_words(text, _FUZZY_VOCAB, _STOP):
        spans.add(Span("utility", value, start, end))
    return list(spans)


def normalise_utility(text: str) -> str | None:
    """The utility named by ``text`` ("power" -> "electricity"), or None if none or several."""
    values = {s.value for s in find_utilities(text)}
    return values.pop() if len(values) == 1 else None
