"""Bad input never crashes the parser and always gets a well-formed result."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_ALPHABETS = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=50),
    st.text(alphabet=st.sampled_from(list("电费水燃气交元块😀🙂💸\u200b\ufeff ")), max_size=60),
    st.text(alphabet=st.characters(categories=["So", "Cs", "Co", "Zs"]), max_size=40),
    st.just(" " * 500),
    st.just("x" * 10_000),
    st.just("pay 60 " * 1500),
    st.just("交300元燃气费" * 1200),
)


def _check(model: Any, text: str) -> None:
    result = model.parse(text)
    assert isinstance(result["intent"]["name"], str)
    assert 0.0 <= result["intent"]["confidence"] <= 1.0
    assert result["language"] in {"en", "zh"}
    assert isinstance(result["intent_ranking"], list) and result["intent_ranking"]
    assert isinstance(result["entities"], list)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=_ALPHABETS)
def test_any_text_gets_a_result(default_model: Any, text: str) -> None:
    _check(default_model, text)


def test_empty_and_whitespace_fall_back(default_model: Any) -> None:
    for text in ["", "   ", "\n\t", "\x00\x01", "\u200b"]:
        result = default_model.parse(text)
        assert result["intent"]["name"] == "nlu_fallback"
        assert result["intent_ranking"]


def test_ten_thousand_characters_are_clipped_not_crashed(default_model: Any) -> None:
    text = "why is my electricity bill so high " * 300
    assert len(text) > 10_000
    result = default_model.parse(text)
    assert result["text"] == text
    assert result["intent"]["name"] == "explain_bill"
    assert all(e["end"] <= 2000 for e in result["entities"])


def test_lone_surrogates_are_replaced(default_model: Any) -> None:
    result = default_model.parse("pay \udcff bill")
    assert "\udcff" not in result["text"]
