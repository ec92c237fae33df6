"""The spoken rendering (bot/spoken.py): what a speaker says for the engine's replies."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from bot.responses import ButtonSpec, Money, Reply, Term, default_responses
from bot.spoken import limit_sentences, speak, speak_replies


def _say(replies: list[Reply], language: str = "en") -> str:
    return speak_replies(replies, language, default_responses())


def test_the_payment_confirmation_is_a_spoken_question() -> None:
    reply = Reply(
        "confirm_payment_stepup",
        {
            "amount": Money(Decimal("51.25")),
            "utility": Term("utility", "water"),
            "method": Term("method", "wallet"),
            "periods": [
                Reply("period_range", {"start": date(2026, 10, 1), "end": date(2026, 10, 31)})
            ],
        },
        buttons=[
            ButtonSpec("button_pay", "/confirm", {"amount": Money(Decimal("51.25"))}),
            ButtonSpec("button_cancel", "/cancel"),
        ],
    )
    assert _say([reply]) == "Pay 51.25 yuan for water by wallet. Say yes to pay, or no."
    zh = _say([reply], "zh")
    assert "51.25元" in zh and "说“是”付款" in zh and "¥" not in zh


def test_choices_are_said_in_the_question_without_cancel() -> None:
    reply = Reply(
        "ask_utility",
        buttons=[
            ButtonSpec(
                "button_utility_amount",
                "/u",
                {"utility": Term("utility", "water"), "amount": Money(Decimal("39.77"))},
            ),
            ButtonSpec(
                "button_utility_amount",
                "/u",
                {"utility": Term("utility", "electricity"), "amount": Money(Decimal("85.54"))},
            ),
            ButtonSpec("button_cancel", "/cancel"),
        ],
    )
    assert _say([reply]) == "Which bill would you like to pay: water or electricity?"
    assert _say([reply], "zh").endswith("：水费，还是电费？")


def test_amounts_keep_two_decimals_and_lose_symbols_and_grouping() -> None:
    assert speak("You owe ¥1,250.00 in total.") == "You owe 1250.00 yuan in total."
    assert speak("您共欠费1,250.00元。", language="zh") == "您共欠费1250.00元。"


def test_a_list_becomes_one_sentence() -> None:
    reply = Reply(
        "balance_total",
        {
            "total": Money(Decimal("125.31")),
            "bills": [
                Reply(
                    "balance_bill_line",
                    {
                        "utility": Term("utility", "water"),
                        "amount": Money(Decimal("39.77")),
                        "due_date": date(2026, 12, 16),
                    },
                ),
                Reply(
                    "balance_bill_overdue",
                    {
                        "utility": Term("utility", "electricity"),
                        "amount": Money(Decimal("85.54")),
                        "due_date": date(2026, 11, 16),
                    },
                ),
            ],
        },
    )
    said = _say([reply])
    assert said == "You owe 125.31 yuan in total: water 39.77 yuan, electricity 85.54 yuan."
    assert "\n" not in said and "-" not in said


def test_at_most_two_sentences_before_the_question() -> None:
    text = "One thing. Two things. Three things. Four things. Shall we go on?"
    assert limit_sentences(text, "en") == "One thing. Two things. Shall we go on?"
    assert limit_sentences("一。二。三。要继续吗？", "zh") == "一。二。要继续吗？"


def test_chinese_digits_spaced_as_whisper_writes_them_become_figures() -> None:
    from bot.channels.speaker.channel import spoken_figures

    assert spoken_figures("二 四 六 八 一 三") == "246813"
    assert spoken_figures("我的密码是 二四六八一三") == "我的密码是 246813"
    assert spoken_figures("一共多少钱") == "一共多少钱"  # not a digit run
