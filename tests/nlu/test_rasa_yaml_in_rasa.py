"""Our Rasa YAML, read by Rasa itself (only when RASA_PYTHON is set).

``RASA_PYTHON`` is the interpreter of a Rasa 3.6 venv (``/work/rasa-venv/bin/python``,
see docs/nlu.md). Rasa's own loader (``rasa.shared.nlu.training_data.loading``) must
read ``nlu/data`` and the output of :func:`nlu.rasa_yaml.dump_training_data` into the
same examples, entities, synonyms, lookups and regexes as :mod:`nlu.rasa_yaml` does.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nlu import DATA_DIR
from nlu.rasa_yaml import TrainingData, dump_training_data, load_training_data, parse_training_yaml

RASA_PYTHON = os.environ.get("RASA_PYTHON", "")

pytestmark = [
    pytest.mark.rasa,
    pytest.mark.skipif(not RASA_PYTHON, reason="RASA_PYTHON not set: no Rasa venv to load with"),
]

# Runs inside the Rasa venv: print what Rasa read, in the canonical form of _ours().
_RASA_READER = """
import json, sys
from rasa.shared.nlu.training_data.loading import load_data
td = load_data(sys.argv[1])
print(json.dumps({
    "examples": sorted(
        [m.get("text"), m.get("intent"), sorted(
            [e["entity"], e["start"], e["end"], str(e["value"]), e.get("role"), e.get("group")]
            for e in (m.get("entities") or []))]
        for m in td.intent_examples),
    "synonyms": sorted([k.lower(), v] for k, v in td.entity_synonyms.items()),
    "lookups": sorted([t["name"], sorted(t["elements"])] for t in td.lookup_tables),
    "regexes": sorted([r["name"], r["pattern"]] for r in td.regex_features),
}, ensure_ascii=False))
"""

# Every construct the writer emits: plain, valued, role/group and multi annotations,
# list-form examples with metadata, synonyms, lookups and regexes.
_ALL_FEATURES = """\
version: "3.1"
nlu:
- intent: pay_bill
  examples: |
    - pay [50]{"entity": "amount", "value": "50.00"} now
    - [power]{"entity": "utility", "value": "electricity"} bill
    - pay [water](utility) from [visa]{"entity": "payment_method", "role": "source"}
    - [gas]{"entity": "utility", "group": "1"} and [water]{"entity": "utility", "group": "2"}
    - [elec][{"entity": "utility", "value": "electricity"}, {"entity": "meter"}] bill
- intent: link_account
  examples:
  - text: my code is [12345678](link_code)
    metadata:
      source: resident
  - text: link code [87654321](link_code)
- synonym: bank_transfer
  examples: |
    - wire
    - bank transfer
- lookup: utility
  examples: |
    - electricity
    - 燃气
- regex: link_code
  examples: |
    - \\d{8}
"""


def _ours(data: TrainingData) -> dict[str, Any]:
    return {
        "examples": sorted(
            [
                e.text,
                e.intent,
                sorted([a.entity, a.start, a.end, a.value, a.role, a.group] for a in e.entities),
            ]
            for e in data.examples
        ),
        "synonyms": sorted([k, v] for k, v in data.synonyms.items()),
        "lookups": sorted([k, sorted(v)] for k, v in data.lookups.items()),
        "regexes": sorted([k, p] for k, ps in data.regexes.items() for p in ps),
    }


def _rasa_reads(path: Path, workdir: Path) -> dict[str, Any]:
    done = subprocess.run(
        [RASA_PYTHON, "-W", "ignore", "-c", _RASA_READER, str(path)],
        cwd=workdir,
        capture_output=True,
        timeout=300,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def test_rasa_reads_nlu_data_as_we_do(tmp_path: Path) -> None:
    ours = load_training_data(DATA_DIR)
    assert len(ours.examples) > 1000 and ours.lookups
    assert _rasa_reads(DATA_DIR, tmp_path) == _ours(ours)


def test_rasa_reads_what_our_writer_writes(tmp_path: Path) -> None:
    for name, data in (
        ("nlu_data", load_training_data(DATA_DIR)),
        ("features", parse_training_yaml(_ALL_FEATURES)),
    ):
        written = tmp_path / f"{name}.yml"
        written.write_text(dump_training_data(data), encoding="utf-8")
        assert _rasa_reads(written, tmp_path) == _ours(data), name
