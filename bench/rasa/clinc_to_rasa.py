"""Convert CLINC150 (``train_val.json``) to Rasa 3 NLU YAML.

Training data = ``train`` + ``oos_train`` (the out-of-scope queries become the
intent ``out_of_scope``); evaluation data = ``val`` + ``oos_val``.

Usage::

    python bench/rasa/clinc_to_rasa.py ../shared/data/clinc150/train_val.json OUT_DIR

writes ``OUT_DIR/train/nlu.yml`` and ``OUT_DIR/val/nlu.yml``. Only the standard
library is used so the script runs in the Rasa venv (Python 3.10) as well as in
billtalk's own venv.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

OOS = "out_of_scope"
_MARKUP = re.compile(r"[\[\]{}()]")


def _clean(text: str) -> str:
    # Brackets would be read as Rasa entity annotations; CLINC has no entities.
    return " ".join(_MARKUP.sub(" ", text).split())


def _intent(label: str) -> str:
    return OOS if label == "oos" else label


def to_yaml(pairs: list[list[str]]) -> str:
    """Return Rasa 3 NLU YAML for ``[text, label]`` pairs (``oos`` → ``out_of_scope``)."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, label in pairs:
        cleaned = _clean(text)
        if cleaned:
            by_intent[_intent(label)].append(cleaned)
    lines = ['version: "3.1"', "nlu:"]
    for intent in sorted(by_intent):
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        lines.extend(f"    - {text}" for text in by_intent[intent])
    return "\n".join(lines) + "\n"


def convert(source: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write ``train/nlu.yml`` and ``val/nlu.yml`` under ``out_dir``; return both paths."""
    data = json.loads(source.read_text(encoding="utf-8"))
    outputs = []
    for name, keys in (("train", ("train", "oos_train")), ("val", ("val", "oos_val"))):
        path = out_dir / name / "nlu.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_yaml([p for key in keys for p in data[key]]), encoding="utf-8")
        outputs.append(path)
    return outputs[0], outputs[1]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: clinc_to_rasa.py TRAIN_VAL_JSON OUT_DIR")
    train, val = convert(Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps({"train": str(train), "val": str(val)}))
