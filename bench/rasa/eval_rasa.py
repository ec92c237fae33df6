"""Score a trained Rasa NLU model on CLINC150 validation (runs in the Rasa venv).

Usage::

    python bench/rasa/eval_rasa.py MODEL.tar.gz VAL_NLU_YML OUT_JSON

Reports in-scope accuracy and out-of-scope recall two ways:

* ``oos_as_class``: the top intent ignoring ``nlu_fallback`` (``out_of_scope`` is
  a trained intent);
* ``fallback_0.3``: Rasa's own FallbackClassifier output (``nlu_fallback`` or
  ``out_of_scope`` count as out of scope);

plus a sweep over confidence thresholds, and single-message parse latency
(p50/p95, warm, on the first 500 messages).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

import yaml
from rasa.core.agent import Agent

OOS = "out_of_scope"


def _load_examples(path: str) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    pairs = []
    for block in data["nlu"]:
        for line in block["examples"].splitlines():
            line = line.strip()
            if line.startswith("- "):
                pairs.append((line[2:], block["intent"]))
    return pairs


def _score(gold: list[str], pred: list[str]) -> dict[str, float]:
    ins = [(g, p) for g, p in zip(gold, pred, strict=True) if g != OOS]
    oos = [(g, p) for g, p in zip(gold, pred, strict=True) if g == OOS]
    return {
        "in_scope_accuracy": sum(g == p for g, p in ins) / len(ins),
        "oos_recall": sum(p == OOS for _, p in oos) / len(oos),
    }


async def main(model: str, val: str, out: str) -> None:
    agent = Agent.load(model)
    pairs = _load_examples(val)
    await agent.parse_message("warm up")
    results, latencies = [], []
    for i, (text, _) in enumerate(pairs):
        start = time.perf_counter()
        results.append(await agent.parse_message(text))
        if i < 500:
            latencies.append((time.perf_counter() - start) * 1000)
        if i % 500 == 0:
            print(f"parsed {i}/{len(pairs)}", file=sys.stderr, flush=True)
    gold = [g for _, g in pairs]
    raw_top, raw_conf, fallback_pred = [], [], []
    for r in results:
        ranking = [x for x in r.get("intent_ranking", []) if x["name"] != "nlu_fallback"]
        raw_top.append(ranking[0]["name"] if ranking else OOS)
        raw_conf.append(ranking[0]["confidence"] if ranking else 0.0)
        name = r["intent"]["name"]
        fallback_pred.append(OOS if name in ("nlu_fallback", OOS) else name)
    report = {
        "model": model,
        "n_val": len(pairs),
        "oos_as_class": _score(gold, raw_top),
        "fallback_0.3": _score(gold, fallback_pred),
        "sweep": [],
        "latency_ms": {
            "p50": statistics.median(latencies),
            "p95": statistics.quantiles(latencies, n=20)[18],
            "n": len(latencies),
        },
    }
    for t in [x / 20 for x in range(1, 20)]:
        pred = [OOS if c < t else p for p, c in zip(raw_top, raw_conf, strict=True)]
        report["sweep"].append({"threshold": t, **_score(gold, pred)})
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
