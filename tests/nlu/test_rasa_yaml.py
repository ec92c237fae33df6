from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from nlu.rasa_yaml import (
    EntityAnnotation,
    RasaYamlError,
    dump_training_data,
    format_example,
    load_training_data,
    parse_annotated_text,
    parse_training_yaml,
)

FULL = """\
version: "3.1"
nlu:
- intent: pay_bill
  examples: |
    - pay [60](amount) on [water](utility)
    - pay [power]{"entity": "utility", "value": "electricity"} by [alipay](payment_method)
    - legacy [elec](utility:electricity) syntax
    - [交300元]{"entity": "amount", "value": "300.00", "role": "sum"}燃气费
- intent: greet
  metadata:
    source: manual
  examples:
  - text: |
      hello there
    metadata:
      sentiment: neutral
  - text: hi
- synonym: electricity
  examples: |
    - power
    - 电
- lookup: utility
  examples: |
    - water
    - gas
- regex: link_code
  examples: |
    - \\d{6}
"""


def test_parses_annotations_with_offsets() -> None:
    ex = parse_annotated_text("pay [60](amount) on [water](utility)", "pay_bill")
    assert ex.text == "pay 60 on water"
    assert ex.entities == (
        EntityAnnotation("amount", 4, 6, "60"),
        EntityAnnotation("utility", 10, 15, "water"),
    )
    assert ex.text[4:6] == "60"


def test_json_and_legacy_annotations() -> None:
    data = parse_training_yaml(FULL)
    by_text = {e.text: e for e in data.examples}
    power = by_text["pay power by alipay"]
    assert power.entities[0] == EntityAnnotation("utility", 4, 9, "electricity")
    assert power.entities[1].entity == "payment_method"
    assert by_text["legacy elec syntax"].entities[0].value == "electricity"
    zh = by_text["交300元燃气费"]
    assert zh.entities[0] == EntityAnnotation("amount", 0, 5, "300.00", role="sum")


def test_synonyms_lookups_regexes_and_metadata_items() -> None:
    data = parse_training_yaml(FULL)
    assert data.intents == ["greet", "pay_bill"]
    assert data.synonyms["power"] == "electricity"
    assert data.synonyms["电"] == "electricity"
    assert data.synonyms["elec"] == "electricity"  # implied by the legacy annotation
    assert data.lookups == {"utility": ["water", "gas"]}
    assert data.regexes == {"link_code": ["\\d{6}"]}
    greet = [e for e in data.examples if e.intent == "greet"]
    assert [e.text for e in greet] == ["hello there", "hi"]
    assert greet[0].metadata == {"sentiment": "neutral"}
    assert data.normalise("utility", "Power") == "electricity"


def test_round_trip_is_lossless() -> None:
    data = parse_training_yaml(FULL)
    again = parse_training_yaml(dump_training_data(data))
    assert again.examples == data.examples
    assert again.synonyms == data.synonyms
    assert again.lookups == data.lookups
    assert again.regexes == data.regexes
    assert again.fingerprint() == data.fingerprint()


def test_format_example_inverts_parse() -> None:
    for line in [
        "pay [60](amount) on [water](utility)",
        'pay [power]{"entity": "utility", "value": "electricity"} now',
        "no entities at all",
    ]:
        assert format_example(parse_annotated_text(line, "x")) == line


def test_fingerprint_changes_with_content() -> None:
    a = parse_training_yaml(FULL)
    b = parse_training_yaml(FULL.replace("hello there", "hello friend"))
    assert a.fingerprint() != b.fingerprint()


def test_shipped_data_round_trips() -> None:
    data = load_training_data(Path(__file__).resolve().parents[2] / "nlu" / "data")
    again = parse_training_yaml(dump_training_data(data))
    # The writer groups each intent's examples (the data has them in several files).
    assert Counter(again.examples) == Counter(data.examples)
    assert again.synonyms == data.synonyms
    assert len(data.intents) >= 20


def test_folder_loading_skips_non_nlu_yaml(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(FULL, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text(
        "nlu:\n- intent: bye\n  examples: |\n    - bye\n", encoding="utf-8"
    )
    (tmp_path / "domain.yml").write_text("intents:\n  - greet\n", encoding="utf-8")
    data = load_training_data(tmp_path)
    assert "bye" in data.intents and "pay_bill" in data.intents


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("nlu: [", "invalid YAML"),
        ("nlu:\n- intent: x\n  examples: |\n    no dash here\n", "must start with '- '"),
        ("nlu:\n- intent: x\n  examples: |\n    - [a]{not json}\n", "bad entity annotation"),
        ('nlu:\n- intent: x\n  examples: |\n    - [a]{"value": "b"}\n', "has no 'entity'"),
        ("nlu:\n- story: x\n", "unknown nlu item"),
        ("nlu: 5\n", "must be a list"),
    ],
)
def test_malformed_yaml_is_a_clear_error(content: str, message: str) -> None:
    with pytest.raises(RasaYamlError, match=message):
        parse_training_yaml(content, source="bad.yml")


def test_missing_path_and_empty_data(tmp_path: Path) -> None:
    with pytest.raises(RasaYamlError, match="no such file"):
        load_training_data(tmp_path / "nope.yml")
    (tmp_path / "empty.yml").write_text("version: '3.1'\n", encoding="utf-8")
    with pytest.raises(RasaYamlError, match="no intent examples"):
        load_training_data(tmp_path)
    (tmp_path / "latin1.yml").write_bytes(b"nlu:\n- intent: x\n  examples: |\n    - caf\xe9\n")
    with pytest.raises(RasaYamlError, match="not UTF-8"):
        load_training_data(tmp_path / "latin1.yml")
