"""Periods resolved against a reference date."""

from __future__ import annotations

from datetime import date

import pytest

from nlu.entities import extract_entities
from nlu.entities.periods import find_periods, month_bounds

REF = date(2026, 11, 22)  # a Sunday

PERIODS = [
    ("how much did i pay last month", "last month", "2026-10-01", "2026-10-31"),
    ("this month's bill", "this month's", "2026-11-01", "2026-11-30"),
    ("next month", "next month", "2026-12-01", "2026-12-31"),
    ("usage in March", "March", "2026-03-01", "2026-03-31"),
    ("usage in december", "december", "2025-12-01", "2025-12-31"),  # not yet this year
    ("bill for november", "november", "2026-11-01", "2026-11-30"),
    ("march 2025", "march 2025", "2025-03-01", "2025-03-31"),
    ("in feb 2024", "feb 2024", "2024-02-01", "2024-02-29"),
    ("in may", "may", "2026-05-01", "2026-05-31"),
    ("this year", "this year", "2026-01-01", "2026-12-31"),
    ("last year", "last year", "2025-01-01", "2025-12-31"),
    ("what was my bill in 2024", "2024", "2024-01-01", "2024-12-31"),
    ("last 3 months", "last 3 months", "2026-08-01", "2026-10-31"),
    ("the past six months", "past six months", "2026-05-01", "2026-10-31"),
    ("last couple of months", "last couple of months", "2026-09-01", "2026-10-31"),
    ("since January", "since January", "2026-01-01", "2026-11-30"),
    ("from march to may", "from march to may", "2026-03-01", "2026-05-31"),
    ("from november to february", "from november to february", "2025-11-01", "2026-02-28"),
    ("the month before last", "the month before last", "2026-09-01", "2026-09-30"),
    ("two months ago", "two months ago", "2026-09-01", "2026-09-30"),
    ("this week", "this week", "2026-11-16", "2026-11-22"),
    ("last week", "last week", "2026-11-09", "2026-11-15"),
    ("上个月", "上个月", "2026-10-01", "2026-10-31"),
    ("上月电费", "上月", "2026-10-01", "2026-10-31"),
    ("上上个月", "上上个月", "2026-09-01", "2026-09-30"),
    ("这个月", "这个月", "2026-11-01", "2026-11-30"),
    ("本月", "本月", "2026-11-01", "2026-11-30"),
    ("下个月", "下个月", "2026-12-01", "2026-12-31"),
    ("三月的电费", "三月", "2026-03-01", "2026-03-31"),
    ("3月份", "3月份", "2026-03-01", "2026-03-31"),
    ("十二月", "十二月", "2025-12-01", "2025-12-31"),
    ("2025年3月", "2025年3月", "2025-03-01", "2025-03-31"),
    ("2024年", "2024年", "2024-01-01", "2024-12-31"),
    ("今年", "今年", "2026-01-01", "2026-12-31"),
    ("去年", "去年", "2025-01-01", "2025-12-31"),
    ("最近三个月", "最近三个月", "2026-08-01", "2026-10-31"),
    ("近6个月", "近6个月", "2026-05-01", "2026-10-31"),
    ("最近半年", "最近半年", "2026-05-01", "2026-10-31"),
    ("从一月以来", "从一月以来", "2026-01-01", "2026-11-30"),
    ("三月到五月", "三月到五月", "2026-03-01", "2026-05-31"),
    ("上周", "上周", "2026-11-09", "2026-11-15"),
    ("去年十二月的燃气", "去年十二月", "2025-12-01", "2025-12-31"),
    ("今年3月", "今年3月", "2026-03-01", "2026-03-31"),
    ("最近一年", "最近一年", "2025-11-01", "2026-10-31"),
    ("usage over the past year", "past year", "2025-11-01", "2026-10-31"),
    ("the past 12 months", "past 12 months", "2025-11-01", "2026-10-31"),
    ("二〇二五年三月", "二〇二五年三月", "2025-03-01", "2025-03-31"),
    ("二零二四年", "二零二四年", "2024-01-01", "2024-12-31"),
]


@pytest.mark.parametrize(("text", "span", "start", "end"), PERIODS)
def test_periods(text: str, span: str, start: str, end: str) -> None:
    periods = [e for e in extract_entities(text, "en", REF) if e["entity"] == "period"]
    assert len(periods) == 1, periods
    p = periods[0]
    assert text[p["start"] : p["end"]] == span
    assert p["value"] == {"start": start, "end": end}


@pytest.mark.parametrize(
    "text",
    [
        "may I pay now",
        "I may be late",
        "三个月",
        "两个月的账单",
        "jan is my neighbour",
        "one month",
        "",
    ],
)
def test_not_periods(text: str) -> None:
    assert find_periods(text, REF) == []


@pytest.mark.parametrize("text", ["0000年3月", "9999年12月", "since january 9999", "3000年"])
def test_impossible_years_do_not_crash(text: str) -> None:
    for span in find_periods(text, REF):
        assert span.value["start"] <= span.value["end"]


def test_months_across_year_boundary_in_january() -> None:
    jan = date(2027, 1, 10)
    assert find_periods("last month", jan)[0].value == {"start": "2026-12-01", "end": "2026-12-31"}
    assert find_periods("last 3 months", jan)[0].value == {
        "start": "2026-10-01",
        "end": "2026-12-31",
    }
    assert find_periods("in march", jan)[0].value == {"start": "2026-03-01", "end": "2026-03-31"}


def test_default_reference_date_is_today() -> None:
    today = date.today()
    first, last = month_bounds(today.year, today.month)
    assert find_periods("this month")[0].value == {
        "start": first.isoformat(),
        "end": last.isoformat(),
    }


def test_leap_february() -> None:
    assert month_bounds(2028, 2)[1] == date(2028, 2, 29)
    assert month_bounds(2027, 2)[1] == date(2027, 2, 28)
