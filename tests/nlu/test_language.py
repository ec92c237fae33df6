from __future__ import annotations

import pytest

from nlu.language import detect_language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("how much is my bill", "en"),
        ("hw much is my electrcity bil", "en"),
        ("交300元燃气费", "zh"),
        ("上个月电费多少", "zh"),
        ("我的 electricity 账单", "zh"),
        ("pay 电费", "zh"),
        ("my WeChat account 微信", "en"),
        ("", "en"),
        ("12345", "en"),
        ("🙂🙂🙂", "en"),
        ("ＰＡＹ the bill", "en"),
    ],
)
def test_detect_language(text: str, expected: str) -> None:
    assert detect_language(text) == expected
