"""The Rasa training data in ``nlu/data``: well-formed, large enough, consistent.

Every file is read with PyYAML (not through the NLU engine) so that a broken
reader cannot hide broken data.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlu.entities import METHODS, UTILITIES, normalise_method, normalise_utility
from nlu.entities.evaluation import AnnotatedExample, parse_annotated
from nlu.entities.periods import find_periods

DATA = Path(__file__).resolve().parents[2] / "nlu" / "data"
LANGUAGES = ("en", "zh")
#: The intents of CONTRACTS.md.
INTENTS = (
    "check_balance", "pay_bill", "due_date", "explain_bill", "payment_history", "usage",
    "submit_meter_reading", "manage_autopay", "request_receipt", "report_problem",
    "human_handoff", "enroll_biometrics", "link_account", "greet", "goodbye", "thank",
    "affirm", "deny", "cancel", "help", "out_of_scope",
)  # fmt: skip
CORE = ("check_balance", "pay_bill", "explain_bill", "usage", "due_date")
MINIMUM = {"en": 40, "zh": 25}
CORE_TARGET = {"en": 55, "zh": 35}
OUT_OF_SCOPE_MINIMUM = {"en": 150, "zh": 80}
AMOUNT_RE = re.compile(r"^\d+\.\d{2}$")
NUMBER_RE = re.compile(r"^\d+(?:\.\d+)?$")
LINK_CODE_RE = re.compile(r"^\d{6,8}$")
CJK_RE = re.compile(r"[\u4e00-\u9fff]")


def _files() -> list[Path]:
    return sorted(DATA.rglob("*.yml"))


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), path
    return doc


def _examples() -> list[tuple[str, AnnotatedExample]]:
    out: list[tuple[str, AnnotatedExample]] = []
    for lang in LANGUAGES:
        for path in sorted((DATA / lang).glob("*.yml")):
            for block in _load(path)["nlu"]:
                if "intent" not in block:
                    continue
                for raw in block["examples"].splitlines():
                    if raw.strip():
                        assert raw.startswith("- "), f"{path}: {raw!r}"
                        out.append((lang, parse_annotated(raw[2:], block["intent"], str(path))))
    return out


EXAMPLES = _examples()


def test_every_file_is_rasa_3_nlu_yaml() -> None:
    assert _files(), "no training data"
    for path in _files():
        doc = _load(path)
        assert doc.get("version") == "3.1", path
        assert isinstance(doc.get("nlu"), list) and doc["nlu"], path
        for block in doc["nlu"]:
            kinds = {"intent", "synonym", "lookup", "regex"} & set(block)
            assert len(kinds) == 1, f"{path}: {block!r}"
            assert isinstance(block.get("examples"), str), f"{path}: {block!r}"
            assert block["examples"].endswith("\n"), f"{path}: use a literal block (|)"


def test_languages_are_in_their_own_folders() -> None:
    for lang, ex in EXAMPLES:
        has_cjk = bool(CJK_RE.search(ex.text))
        if lang == "en":
            assert not has_cjk, ex
        elif ex.intent != "out_of_scope" and not ex.text.isdigit():
            assert has_cjk or ex.text.lower() in {"3q", "wifi密码是多少"}, ex


def test_every_intent_of_the_contract_is_covered_in_both_languages() -> None:
    seen = {(lang, ex.intent) for lang, ex in EXAMPLES}
    for lang in LANGUAGES:
        for intent in INTENTS:
            assert (lang, intent) in seen, f"{intent} missing in {lang}"
    assert {intent for _, intent in seen} == set(INTENTS)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_example_counts_per_intent(lang: str) -> None:
    counts = Counter(ex.intent for lg, ex in EXAMPLES if lg == lang)
    for intent in INTENTS:
        if intent == "out_of_scope":
            assert counts[intent] >= OUT_OF_SCOPE_MINIMUM[lang], (intent, counts[intent])
        else:
            assert counts[intent] >= MINIMUM[lang], (intent, counts[intent])
    for intent in CORE:
        assert counts[intent] >= CORE_TARGET[lang], (intent, counts[intent])


def test_no_duplicate_examples_and_no_example_under_two_intents() -> None:
    where: dict[str, set[str]] = defaultdict(set)
    seen: Counter[str] = Counter()
    for _, ex in EXAMPLES:
        key = " ".join(ex.text.lower().split())
        seen[key] += 1
        where[key].add(ex.intent)
    duplicates = [k for k, n in seen.items() if n > 1]
    assert not duplicates, duplicates
    ambiguous = {k: v for k, v in where.items() if len(v) > 1}
    assert not ambiguous, ambiguous


def test_no_held_out_message_is_trained_on() -> None:
    """``tests/nlu/heldout`` scores the engine on messages it never saw: keep them out."""
    heldout = DATA.parents[1] / "tests" / "nlu" / "heldout"
    if not heldout.is_dir():
        pytest.skip("no held-out set in this checkout")

    def norm(text: str) -> str:
        return " ".join(re.sub(r"[?!,.。？！，]", "", text.lower()).split())

    held = {
        norm(parse_annotated(line.strip()[2:]).text)
        for path in heldout.glob("*.yml")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("- ") and not line.strip().startswith("- intent:")
    }
    assert held, "held-out set is empty"
    leaked = [ex.text for _, ex in EXAMPLES if norm(ex.text) in held]
    assert not leaked, leaked


def test_examples_are_clean() -> None:
    for _, ex in EXAMPLES:
        assert ex.text == ex.text.strip() and ex.text, ex
        assert "[" not in ex.text and "]{" not in ex.text, f"broken annotation: {ex}"
        for entity, _, start, end in ex.entities:
            span = ex.text[start:end]
            assert span and span == span.strip(), (ex, entity)


def test_annotated_values_are_the_normalised_values_of_the_contract() -> None:
    ref = date(2026, 6, 15)
    for _, ex in EXAMPLES:
        for entity, value, start, end in ex.entities:
            span = ex.text[start:end]
            if entity == "utility":
                assert value in UTILITIES, ex
            elif entity == "payment_method":
                assert value in METHODS, ex
            elif entity == "amount":
                assert AMOUNT_RE.match(value), ex
            elif entity == "meter_reading":
                assert NUMBER_RE.match(value), ex
            elif entity == "link_code":
                assert LINK_CODE_RE.match(value), ex
            elif entity == "period":
                assert value == span, "a period's value is the span as written"
                found = find_periods(span, ref)
                assert len(found) == 1 and (found[0].start, found[0].end) == (0, len(span)), (
                    f"period {span!r} does not resolve: {ex}"
                )
            else:
                pytest.fail(f"entity {entity!r} is not in CONTRACTS.md: {ex}")


def _named_blocks(kind: str) -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    for path in _files():
        for block in _load(path)["nlu"]:
            if kind in block:
                items = [ln[2:].strip() for ln in block["examples"].splitlines() if ln.strip()]
                blocks[block[kind]] = items
    return blocks


def test_synonyms_map_to_contract_values_and_agree_with_the_parsers() -> None:
    synonyms = _named_blocks("synonym")
    assert set(synonyms) == set(UTILITIES) | set(METHODS)
    for value, forms in synonyms.items():
        for form in forms:
            if value in UTILITIES:
                assert normalise_utility(form) == value, (form, value)
            else:
                assert normalise_method(form) == value, (form, value)


def test_lookup_tables_are_recognised_by_the_parsers() -> None:
    lookups = _named_blocks("lookup")
    assert {"utility", "payment_method", "currency"} <= set(lookups)
    for form in lookups["utility"]:
        assert normalise_utility(form) in UTILITIES, form
    for form in lookups["payment_method"]:
        assert normalise_method(form) in METHODS, form
