"""speech.grammar: artefacts generated from the NLU data load into pocketsphinx."""

from __future__ import annotations

from pathlib import Path

from speech.grammar import arpa_trigram, build_domain_model, digit_grammar, example_tokens
from speech.sphinx import SphinxDecoder, write_dictionary


def test_example_tokens_strip_annotations_and_slot_entities() -> None:
    assert example_tokens(
        'pay [150]{"entity": "amount", "value": "150.00"} for [water](utility)'
    ) == ["pay", "<amount>", "for", "<utility>"]
    assert example_tokens('pay [last month\'s]{"entity": "period"} bill') == [
        "pay",
        "last",
        "month's",
        "bill",
    ]
    assert example_tokens("my reading is 12 on the 3rd") == [
        "my", "reading", "is", "twelve", "on", "the", "third",
    ]  # fmt: skip
    assert example_tokens("交水费") == []


def test_typed_contractions_are_one_spoken_word() -> None:
    # The NLU data has "whats my balance" beside "what's my balance": the LM keeps one.
    assert example_tokens("whats left to pay") == ["what's", "left", "to", "pay"]
    assert example_tokens("dont pay it") == ["don't", "pay", "it"]


def test_domain_model_from_nlu_yaml(tmp_path: Path) -> None:
    data = tmp_path / "nlu.yml"
    data.write_text(
        'version: "3.1"\nnlu:\n- intent: pay_bill\n  examples: |\n'
        "    - pay the [water](utility) bill\n"
        '    - pay [80]{"entity": "amount", "value": "80.00"} for [gas](utility)\n'
        "    - pymnt plz\n"
    )
    model = build_domain_model([data], force=True)
    assert model.sentences >= 2 and model.dropped == 1  # "pymnt plz" has no pronunciation
    words = {line.split()[0].split("(")[0] for line in model.dictionary.read_text().splitlines()}
    assert {"pay", "water", "gas", "yuan", "fen", "hundred"} <= words
    assert "pymnt" not in words
    # Each artefact loads into a real decoder.
    SphinxDecoder("lm", model.lm, model.dictionary)
    for grammar in model.answers.values():
        SphinxDecoder("jsgf", grammar, model.dictionary)


def test_arpa_is_a_normalised_backoff_model(tmp_path: Path) -> None:
    import math

    text = arpa_trigram([["pay", "my", "bill"], ["pay", "the", "bill"], ["my", "bill"]])
    unigrams = {}
    section = None
    for line in text.splitlines():
        if line.startswith("\\"):
            section = line
            continue
        if section == "\\1-grams:" and line.strip():
            parts = line.split("\t")
            unigrams[parts[1]] = 10 ** float(parts[0])
    assert math.isclose(sum(p for w, p in unigrams.items() if w != "<s>"), 1.0, rel_tol=1e-3)
    path = tmp_path / "t.lm"
    path.write_text(text)
    write_dictionary({"pay", "my", "the", "bill"}, tmp_path / "t.dict")
    SphinxDecoder("lm", path, tmp_path / "t.dict")


def test_digit_grammars() -> None:
    fixed, dic = digit_grammar(6)
    assert fixed.read_text().count("<d>") == 7  # the rule and six references
    free, _ = digit_grammar(None)
    assert "<d>+" in free.read_text()
    assert "oh" in dic.read_text().split()
