"""Evaluate a model on labelled Rasa NLU data and write a readable report.

``billtalk nlu test`` calls :func:`evaluate_model` then :func:`write_report`, which
writes ``report.json``, ``report.md`` (tables), ``confusion_matrix.png`` and
``confidence_histogram.png``.

Scoring rules:

* ``nlu_fallback`` counts as ``out_of_scope`` (both mean "not for us").
* An entity is correct when the type matches, the spans overlap and the value
  matches. The gold value is the annotation's explicit ``value``; an annotation
  without one (value = the text as written) is matched on type and span only.
  Structured values (periods) are compared as canonical JSON.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from nlu.classifier import OUT_OF_SCOPE
from nlu.language import detect_language
from nlu.model import FALLBACK_INTENT
from nlu.rasa_yaml import EntityAnnotation, Example, TrainingData

BATCH = 64


def _canonical(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = str(value).strip()
    if text.startswith("{"):
        try:
            return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
        except json.JSONDecodeError:
            pass
    return text.lower()


def entity_matches(gold: EntityAnnotation, surface: str, pred: dict[str, Any]) -> bool:
    """Whether predicted entity ``pred`` matches annotation ``gold`` (see module doc)."""
    if pred.get("entity") != gold.entity:
        return False
    start, end = int(pred.get("start", -1)), int(pred.get("end", -1))
    if start >= gold.end or end <= gold.start:
        return False
    if gold.value == surface:  # no explicit normalised value in the annotation
        return True
    return _canonical(pred.get("value")) == _canonical(gold.value)


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "support": tp + fn}


def score_entities(
    examples: list[Example], predictions: list[list[dict[str, Any]]]
) -> dict[str, dict[str, float]]:
    """Per-entity-type and micro ("all") precision, recall and F1."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for ex, preds in zip(examples, predictions, strict=True):
        used: set[int] = set()
        for gold in ex.entities:
            surface = ex.text[gold.start : gold.end]
            hit = next(
                (
                    i
                    for i, p in enumerate(preds)
                    if i not in used and entity_matches(gold, surface, p)
                ),
                None,
            )
            if hit is None:
                counts[gold.entity][2] += 1
            else:
                used.add(hit)
                counts[gold.entity][0] += 1
        for i, p in enumerate(preds):
            if i not in used:
                counts[str(p.get("entity"))][1] += 1
    result = {name: _prf(*c) for name, c in sorted(counts.items())}
    total = np.sum([c for c in counts.values()], axis=0) if counts else np.zeros(3, dtype=int)
    result["all"] = _prf(int(total[0]), int(total[1]), int(total[2]))
    return result


def _as_scope(name: str) -> str:
    return OUT_OF_SCOPE if name == FALLBACK_INTENT else name


def evaluate_model(model: Any, data: TrainingData, *, progress: bool = True) -> dict[str, Any]:
    """Parse every example of ``data`` with ``model`` and score intents and entities.

    Returns:
        A JSON-able report: ``summary``, ``per_intent``, ``per_language``,
        ``entities``, ``misclassified``, ``confusion`` (labels + matrix) and the
        top confidences (for the histogram).
    """
    examples = data.examples
    results: list[dict[str, Any]] = []
    bar = tqdm(
        total=len(examples), desc="nlu test", unit="msg", file=sys.stderr, disable=not progress
    )
    for start in range(0, len(examples), BATCH):
        batch = examples[start : start + BATCH]
        results.extend(model.parse_many([e.text for e in batch]))
        bar.update(len(batch))
    bar.close()

    gold = [_as_scope(e.intent) for e in examples]
    pred = [_as_scope(r["intent"]["name"]) for r in results]
    conf = [float(r["intent"]["confidence"]) for r in results]
    langs = [
        r.get("language") or detect_language(e.text) for e, r in zip(examples, results, strict=True)
    ]
    labels = sorted(set(gold) | set(pred))
    per_intent = {}
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(p == label and g != label for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, pred, strict=True))
        per_intent[label] = _prf(tp, fp, fn)
    in_scope = [i for i, g in enumerate(gold) if g != OUT_OF_SCOPE]
    oos = [i for i, g in enumerate(gold) if g == OUT_OF_SCOPE]

    def frac(idx: list[int], ok: Any) -> float | None:
        return sum(1 for i in idx if ok(i)) / len(idx) if idx else None

    summary = {
        "examples": len(examples),
        "intent_accuracy": frac(list(range(len(gold))), lambda i: gold[i] == pred[i]),
        "in_scope_accuracy": frac(in_scope, lambda i: gold[i] == pred[i]),
        "in_scope_fallback": frac(in_scope, lambda i: pred[i] == OUT_OF_SCOPE),
        "oos_recall": frac(oos, lambda i: pred[i] == OUT_OF_SCOPE),
    }
    per_language = {}
    for lang in sorted(set(langs)):
        idx = [i for i, lg in enumerate(langs) if lg == lang]
        ins = [i for i in idx if gold[i] != OUT_OF_SCOPE]
        out = [i for i in idx if gold[i] == OUT_OF_SCOPE]
        per_language[lang] = {
            "examples": len(idx),
            "intent_accuracy": frac(idx, lambda i: gold[i] == pred[i]),
            "in_scope_accuracy": frac(ins, lambda i: gold[i] == pred[i]),
            "in_scope_fallback": frac(ins, lambda i: pred[i] == OUT_OF_SCOPE),
            "oos_recall": frac(out, lambda i: pred[i] == OUT_OF_SCOPE),
        }
    entities = score_entities(examples, [r["entities"] for r in results])
    summary["entity_f1"] = entities["all"]["f1"] if entities["all"]["support"] else None
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for g, p in zip(gold, pred, strict=True):
        matrix[index[g], index[p]] += 1
    misclassified = [
        {
            "text": examples[i].text,
            "gold": gold[i],
            "predicted": results[i]["intent"]["name"],
            "confidence": conf[i],
            "language": langs[i],
        }
        for i in range(len(gold))
        if gold[i] != pred[i]
    ]
    return {
        "summary": summary,
        "per_language": per_language,
        "per_intent": per_intent,
        "entities": entities,
        "misclassified": misclassified,
        "confusion": {"labels": labels, "matrix": matrix.tolist()},
        "confidences": {
            "correct": [c for c, g, p in zip(conf, gold, pred, strict=True) if g == p],
            "wrong": [c for c, g, p in zip(conf, gold, pred, strict=True) if g != p],
        },
        "predicted_counts": dict(Counter(pred)),
    }


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def write_report(report: dict[str, Any], out_dir: Path) -> None:
    """Write ``report.json``, ``report.md`` and the two PNG plots into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(
        json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8"
    )

    labels = report["confusion"]["labels"]
    matrix = np.array(report["confusion"]["matrix"])
    size = max(6.0, 0.28 * len(labels))
    fig, ax = plt.subplots(figsize=(size + 2, size))
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Intent confusion matrix (row-normalised)")
    if len(labels) <= 30:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if shown[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(out_dir / "confusion_matrix.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 21).tolist()
    ax.hist(
        [report["confidences"]["correct"], report["confidences"]["wrong"]],
        bins=bins,
        label=["correct", "wrong"],
        color=["tab:green", "tab:red"],
        stacked=True,
    )
    ax.set_xlabel("intent confidence")
    ax.set_ylabel("messages")
    ax.set_title("Confidence of the returned intent")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "confidence_histogram.png", dpi=110)
    plt.close(fig)

    s = report["summary"]
    lines = [
        "# NLU evaluation report",
        "",
        f"Examples: {s['examples']}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| intent accuracy | {_pct(s['intent_accuracy'])} |",
        f"| in-scope accuracy | {_pct(s['in_scope_accuracy'])} |",
        f"| in-scope messages falling back | {_pct(s['in_scope_fallback'])} |",
        f"| out-of-scope recall | {_pct(s['oos_recall'])} |",
        f"| entity F1 (micro) | {_pct(s['entity_f1'])} |",
        "",
        "## Per language",
        "",
        "| language | examples | intent acc. | in-scope acc. | fallback | OOS recall |",
        "|---|---|---|---|---|---|",
    ]
    for lang, m in report["per_language"].items():
        lines.append(
            f"| {lang} | {m['examples']} | {_pct(m['intent_accuracy'])} | "
            f"{_pct(m['in_scope_accuracy'])} | {_pct(m['in_scope_fallback'])} | "
            f"{_pct(m['oos_recall'])} |"
        )
    lines += [
        "",
        "## Per intent",
        "",
        "| intent | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for name, m in report["per_intent"].items():
        lines.append(
            f"| {name} | {_pct(m['precision'])} | {_pct(m['recall'])} | "
            f"{_pct(m['f1'])} | {m['support']} |"
        )
    lines += [
        "",
        "## Entities",
        "",
        "| entity | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for name, m in report["entities"].items():
        lines.append(
            f"| {name} | {_pct(m['precision'])} | {_pct(m['recall'])} | "
            f"{_pct(m['f1'])} | {m['support']} |"
        )
    lines += [
        "",
        f"## Misclassified ({len(report['misclassified'])})",
        "",
        "| text | gold | predicted | confidence |",
        "|---|---|---|---|",
    ]
    for m in report["misclassified"][:300]:
        text = m["text"].replace("|", "\\|")[:120]
        lines.append(f"| {text} | {m['gold']} | {m['predicted']} | {m['confidence']:.2f} |")
    lines += [
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "![confidence histogram](confidence_histogram.png)",
        "",
    ]
    (out_dir / "report.md").write_text("\n".join(lines), encoding="utf-8")
