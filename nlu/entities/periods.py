"""Time periods: "last month", "in March", "last 3 months", "上个月", "去年" ...

A period resolves against a reference date (today by default) to inclusive
calendar bounds ``{"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}``:

* a month ("in March", "三月", "march 2025") is the whole month; without a year it
  is the most recent such month that has started (March said in November 2026 is
  March 2026, December said in November 2026 is December 2025);
* "this month" / "next month" / "last month" / "the month before last" are whole months;
* "last 3 months" / "最近三个月" are the three whole months before the current one
  (bills are monthly and the current month is not billed yet);
* "this year" / "last year" / "2025" are whole calendar years;
* "since January" / "从一月以来" run from the start of that month to the end of the
  current month; "from March to May" is March 1 to May 31;
* "this week" / "last week" are Monday-to-Sunday weeks.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

from nlu.entities._spans import Span, SpanSet
from nlu.entities.amounts import cn_int

__all__ = ["find_periods", "month_bounds"]

_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4,
    "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11,
    "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
_FULL_MONTHS = {k for k in _MONTHS if len(k) > 4 or k in ("june", "july")}
_SMALL_NUM = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2,
    "couple of": 2, "couple": 2, "a few": 3, "few": 3, "several": 3,
}  # fmt: skip

_MONTH_ALT = "|".join(sorted(_MONTHS, key=len, reverse=True))
_NUM_ALT = r"\d{1,2}|" + "|".join(sorted(_SMALL_NUM, key=len, reverse=True)).replace(" ", r"\s+")
_YEAR = r"(?:19|20)\d{2}"
_PREP = r"(?:in|for|during|since|from|of|over|on|about|around|between|until|through|till)"

_EN_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "range",
        re.compile(
            rf"\b(?:from|between)\s+(?P<m1>{_MONTH_ALT})(?:\s+(?P<y1>{_YEAR}))?\s+"
            rf"(?:to|and|until|till|through|-)\s+(?P<m2>{_MONTH_ALT})(?:\s+(?P<y2>{_YEAR}))?\b",
            re.I,
        ),
    ),
    (
        "last_n",
        re.compile(
            rf"\b(?:last|past|previous|prior|recent)\s+(?P<n>{_NUM_ALT})\s+months?\b",
            re.I,
        ),
    ),
    ("n_ago", re.compile(rf"\b(?P<n>{_NUM_ALT})\s+months?\s+ago\b", re.I)),
    ("before_last", re.compile(r"\b(?:the\s+)?month\s+before\s+last\b", re.I)),
    ("last_month", re.compile(r"\b(?:last|previous|prior|past)\s+month(?:'s)?\b", re.I)),
    ("this_month", re.compile(r"\b(?:this|current|the\s+current)\s+month(?:'s)?\b", re.I)),
    ("next_month", re.compile(r"\b(?:next|coming|upcoming)\s+month(?:'s)?\b", re.I)),
    (
        "this_year",
        re.compile(r"\b(?:this|current)\s+year(?:'s)?\b|\byear\s+to\s+date\b|\bytd\b", re.I),
    ),
    ("past_year", re.compile(r"\bpast\s+(?:year|12\s+months)\b", re.I)),
    ("last_year", re.compile(r"\b(?:last|previous)\s+year(?:'s)?\b", re.I)),
    ("this_week", re.compile(r"\bthis\s+week\b", re.I)),
    ("last_week", re.compile(r"\b(?:last|previous|past)\s+week\b", re.I)),
    (
        "since_month",
        re.compile(
            rf"\b(?:since|from)\s+(?:the\s+start\s+of\s+)?(?P<m>{_MONTH_ALT})"
            rf"(?:\s+(?P<y>{_YEAR}))?\b(?!\s+(?:to|until|till|through)\b)",
            re.I,
        ),
    ),
    (
        "month",
        re.compile(
            rf"(?:\b(?P<prep>{_PREP})\s+(?:the\s+month\s+of\s+)?)?\b(?P<m>{_MONTH_ALT})\b"
            rf"(?:,?\s+(?P<y>{_YEAR})\b)?",
            re.I,
        ),
    ),
    ("year", re.compile(rf"\b(?:{_PREP})\s+(?P<y>{_YEAR})\b", re.I)),
]

_CN_NUM = "一二两三四五六七八九十"
_CN_YEAR = "[一二][〇零九][〇零一二三四五六七八九]{2}"
_CN_M = rf"(?:[{_CN_NUM}]{{1,3}}|\d{{1,2}})"
_ZH_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "range",
        re.compile(rf"(?:从)?(?P<m1>{_CN_M})月份?(?:到|至|-|~)(?P<m2>{_CN_M})月份?"),
    ),
    (
        "last_n",
        re.compile(rf"(?:最近|近|过去|前|上)(?:的)?(?P<n>[{_CN_NUM}]{{1,3}}|\d{{1,2}}|几)个?月"),
    ),
    ("half_year", re.compile(r"(?:最近|近|过去)半年")),
    ("past_year", re.compile(r"(?:最近|近|过去)一年")),
    ("year_month", re.compile(rf"(?P<rel>今年|去年|前年)(?P<m>{_CN_M})月份?")),
    ("before_last", re.compile(r"上上个?月")),
    ("last_month", re.compile(r"上个?月|上一个月")),
    ("this_month", re.compile(r"这个月|本月|这月|当月|这一个月")),
    ("next_month", re.compile(r"下个?月")),
    ("this_year", re.compile(r"今年|本年度|本年")),
    ("last_year", re.compile(r"去年|上一年|前一年")),
    ("this_week", re.compile(r"这周|本周|这个星期|这星期")),
    ("last_week", re.compile(r"上周|上个星期|上星期")),
    (
        "since_month",
        re.compile(
            rf"(?:从|自)(?:(?P<y>\d{{4}}|{_CN_YEAR})年)?(?P<m>{_CN_M})月份?(?:开始|以来|起|到现在|至今)"
        ),
    ),
    (
        "month",
        re.compile(
            rf"(?<![个上下这本])(?:(?P<y>\d{{4}}|{_CN_YEAR})年)?(?P<m>{_CN_M})月份?(?![份]?\d)"
        ),
    ),
    ("year", re.compile(rf"(?P<y>(?:19|20)\d{{2}}|{_CN_YEAR})年(?!\d{{1,2}}月)")),
]


def month_bounds(year: int, month: int) -> tuple[date, date]:
    """First and last day of a calendar month."""
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _shift(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def _num(text: str) -> int | None:
    t = re.sub(r"\s+", " ", text.lower())
    if t.isdigit():
        return int(t)
    if t in _SMALL_NUM:
        return _SMALL_NUM[t]
    if t == "几":
        return 3
    return cn_int(t)


def _month_num(text: str) -> int | None:
    m = _MONTHS.get(text.lower())
    if m is None:
        m = _num(text)
    return m if m is not None and 1 <= m <= 12 else None


def _year(text: str) -> int:
    return int(text) if text.isdigit() else int(cn_int(text) or 0)


def _recent(ref: date, month: int, year: str | None) -> int:
    if year:
        return _year(year)
    return ref.year if month <= ref.month else ref.year - 1


def _value(start: date, end: date) -> dict[str, str]:
    return {"start": start.isoformat(), "end": end.isoformat()}


def _resolve(rule: str, m: re.Match[str], ref: date) -> dict[str, str] | None:
    y, mo = ref.year, ref.month
    if rule in ("last_month", "this_month", "next_month", "before_last"):
        delta = {"last_month": -1, "this_month": 0, "next_month": 1, "before_last": -2}[rule]
        return _value(*month_bounds(*_shift(y, mo, delta)))
    if rule == "n_ago":
        n = _num(m.group("n"))
        if n is None or not 0 < n <= 120:
            return None
        return _value(*month_bounds(*_shift(y, mo, -n)))
    if rule == "year_month":
        month = _month_num(m.group("m"))
        if month is None:
            return None
        year = y - {"今年": 0, "去年": 1, "前年": 2}[m.group("rel")]
        return _value(*month_bounds(year, month))
    if rule in ("last_n", "half_year", "past_year"):
        n = {"half_year": 6, "past_year": 12}.get(rule) or _num(m.group("n"))
        if n is None or not 0 < n <= 120:
            return None
        first = month_bounds(*_shift(y, mo, -n))[0]
        last = month_bounds(*_shift(y, mo, -1))[1]
        return _value(first, last)
    if rule == "this_year":
        return _value(date(y, 1, 1), date(y, 12, 31))
    if rule == "last_year":
        return _value(date(y - 1, 1, 1), date(y - 1, 12, 31))
    if rule in ("this_week", "last_week"):
        monday = ref - timedelta(days=ref.weekday()) - timedelta(weeks=rule == "last_week")
        return _value(monday, monday + timedelta(days=6))
    if rule == "year":
        year = _year(m.group("y"))
        if not 1900 <= year <= 2100:
            return None
        return _value(date(year, 1, 1), date(year, 12, 31))
    if rule == "since_month":
        month = _month_num(m.group("m"))
        if month is None:
            return None
        year = _recent(ref, month, m.group("y"))
        return _value(month_bounds(year, month)[0], month_bounds(y, mo)[1])
    if rule == "range":
        m1, m2 = _month_num(m.group("m1")), _month_num(m.group("m2"))
        if m1 is None or m2 is None:
            return None
        groups = m.groupdict()
        y2 = _recent(ref, m2, groups.get("y2"))
        y1 = int(groups["y1"]) if groups.get("y1") else (y2 if m1 <= m2 else y2 - 1)
        return _value(month_bounds(y1, m1)[0], month_bounds(y2, m2)[1])
    # a single month
    word = m.group("m")
    month = _month_num(word)
    if month is None:
        return None
    return _value(*month_bounds(_recent(ref, month, m.group("y")), month))


def _english_month_ok(m: re.Match[str]) -> bool:
    """Short or ambiguous month words ("may", "mar", "jan") need a preposition or a year."""
    word = m.group("m").lower()
    if m.group("prep") or m.group("y"):
        return True
    if word == "may" or word not in _FULL_MONTHS:
        return bool(
            re.match(
                r"\s+(?:bill|bills|invoice|statement|usage|payment)\b", m.string[m.end() :], re.I
            )
        )
    return True


def find_periods(text: str, reference_date: date | None = None) -> list[Span]:
    """Period mentions in ``text`` as ``period`` spans, resolved against ``reference_date``.

    Args:
        text: The message.
        reference_date: "Today" for relative periods; defaults to :func:`date.today`.

    Returns:
        Non-overlapping spans in order; ``value`` is ``{"start", "end"}`` (ISO dates).
    """
    ref = reference_date or date.today()
    spans = SpanSet()
    for rules in (_EN_RULES, _ZH_RULES):
        for rule, pattern in rules:
            for m in pattern.finditer(text):
                if not spans.is_free(m.start(), m.end()):
                    continue
                if rules is _EN_RULES and rule == "month" and not _english_month_ok(m):
                    continue
                try:
                    value = _resolve(rule, m, ref)
                except (ValueError, OverflowError):  # "0000年3月", dates beyond year 9999
                    value = None
                if value is None:
                    continue
                start = m.start()
                if rule == "month" and rules is _EN_RULES and m.group("prep"):
                    start = m.start("m")
                elif rules is _EN_RULES and rule == "year":
                    start = m.start("y")
                spans.add(Span("period", value, start, m.end(), {"rule": rule}))
    return list(spans)
