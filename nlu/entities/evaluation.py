"""Score :func:`~nlu.entities.extract_entities` against annotated Rasa training examples.

Used by the tests (``tests/nlu/test_entities_f1.py``) and available to ``billtalk nlu
test``. Matching is on *normalised values*: a predicted entity is a true positive
when an annotated entity of the same type has the same value. Periods are
annotated with their text as written (CONTRACTS.md), so for them the predicted span
text is compared with the annotated text, case-insensitively.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from nlu.entities import extract_entities

__all__ = [
    "AnnotatedExample",
    "EntityScores",
    "iter_examples",
    "parse_annotated",
    "score_entities",
]

#: Rasa's entity annotation syntax: ``[text](entity)``, ``[text](entity:value)``,
#: ``[text]{"entity": ..., "value": ...}``.
ANNOTATION_RE = re.compile(
    r"\[(?P<text>[^\]]+?)\]"
    r"(?:\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)|\{(?P<dict>[^}]+?)\})"
)


@dataclass(frozen=True)
class AnnotatedExample:
    """One training example with its entities.

    Attributes:
        text: The plain message, annotations removed.
        intent: The intent it is filed under.
        entities: ``(entity, value, start, end)`` tuples, offsets into ``text``.
        source: The file it came from.
    """

    text: str
    intent: str
    entities: tuple[tuple[str, str, int, int], ...]
    source: str = ""


def parse_annotated(line: str, intent: str = "", source: str = "") -> AnnotatedExample:
    """Strip Rasa annotations from one example line and collect its entities.

    Raises:
        ValueError: For an annotation whose JSON is malformed or lacks ``entity``.
    """
    plain: list[str] = []
    entities: list[tuple[str, str, int, int]] = []
    pos = 0
    length = 0
    for m in ANNOTATION_RE.finditer(line):
        before = line[pos : m.start()]
        plain.append(before)
        length += len(before)
        text = m.group("text")
        if m.group("dict"):
            spec: dict[str, Any] = json.loads("{" + m.group("dict") + "}")
            if "entity" not in spec:
                raise ValueError(f"annotation without entity in {line!r}")
            entity, value = str(spec["entity"]), str(spec.get("value", text))
        else:
            entity, value = m.group("entity").strip(), (m.group("value") or text).strip()
        entities.append((entity, value, length, length + len(text)))
        plain.append(text)
        length += len(text)
        pos = m.end()
    plain.append(line[pos:])
    return AnnotatedExample("".join(plain), intent, tuple(entities), source)


def iter_examples(paths: Iterable[Path]) -> Iterator[AnnotatedExample]:
    """Every intent example in the Rasa NLU YAML files or folders ``paths``."""
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.rglob("*.yml")) if p.is_dir() else [p])
    for f in files:
        doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for block in doc.get("nlu") or []:
            if "intent" not in block:
                continue
            for raw in str(block.get("examples", "")).splitlines():
                raw = raw.strip()
                if raw.startswith("- "):
                    yield parse_annotated(raw[2:].strip(), block["intent"], str(f))


@dataclass
class EntityScores:
    """Precision, recall and F1 of the rule-based extractor, overall and per entity type.

    Attributes:
        tp: True positives per entity type.
        fp: False positives per entity type.
        fn: False negatives per entity type.
        errors: ``(text, missed, spurious)`` for every example with a mistake.
    """

    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    fn: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]] = field(
        default_factory=list
    )

    @staticmethod
    def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f

    def overall(self) -> tuple[float, float, float]:
        """Micro-averaged ``(precision, recall, f1)`` over every entity type."""
        return self._prf(sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values()))

    def per_type(self) -> dict[str, tuple[float, float, float]]:
        """``(precision, recall, f1)`` for each entity type seen."""
        types = sorted(set(self.tp) | set(self.fp) | set(self.fn))
        return {t: self._prf(self.tp[t], self.fp[t], self.fn[t]) for t in types}


def _key(entity: str, value: Any, text: str) -> tuple[str, str]:
    if entity == "period":
        return entity, text.lower()
    return entity, str(value)


def score_entities(
    examples: Iterable[AnnotatedExample], reference_date: date | None = None
) -> EntityScores:
    """Compare :func:`extract_entities` with the annotations of ``examples``.

    Args:
        examples: Annotated examples, e.g. from :func:`iter_examples`.
        reference_date: "Today" for resolving periods (fixed, for reproducible scores).
    """
    ref = reference_date or date(2026, 6, 15)
    scores = EntityScores()
    for ex in examples:
        gold = Counter(_key(e, v, ex.text[s:t]) for e, v, s, t in ex.entities)
        pred = Counter(
            _key(d["entity"], d["value"], ex.text[d["start"] : d["end"]])
            for d in extract_entities(ex.text, "en", ref)
        )
        hit = gold & pred
        missed = gold - pred
        spurious = pred - gold
        for (ent, _), n in hit.items():
            scores.tp[ent] += n
        for (ent, _), n in missed.items():
            scores.fn[ent] += n
        for (ent, _), n in spurious.items():
            scores.fp[ent] += n
        if missed or spurious:
            scores.errors.append((ex.text, sorted(missed.elements()), sorted(spurious.elements())))
    return scores
