"""Typo-tolerant matching of single words against a small vocabulary."""

from __future__ import annotations

import re
from collections.abc import Iterator

_WORD_RE = re.compile(r"[A-Za-z]{5,20}")


def damerau(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance between ``a`` and ``b``, capped at ``limit + 1``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        row_min = cur[0]
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
            row_min = min(row_min, cur[j])
        if row_min > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def fuzzy_words(
    text: str, vocabulary: dict[str, str], stop_words: frozenset[str]
) -> Iterator[tuple[int, int, str]]:
    """Yield ``(start, end, value)`` for words of ``text`` that are typos of a vocabulary word.

    A word of five or more letters matches a vocabulary word within one edit
    (two for words of nine letters or more), unless it is a real word listed in
    ``stop_words`` (e.g. "later" is not a typo of "water").
    """
    for m in _WORD_RE.finditer(text):
        word = m.group(0).lower()
        if word in stop_words or word in vocabulary:
            continue
        for target, value in vocabulary.items():
            if word[0] != target[0] and word[1:3] != target[1:3]:
                continue
            limit = 2 if len(target) >= 9 else 1
            if damerau(word, target, limit) <= limit:
                yield m.start(), m.end(), value
                break
