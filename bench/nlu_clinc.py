"""CLINC150 benchmark of billtalk's NLU engine (validation split).

Steps: convert ``../shared/data/clinc150/train_val.json`` to Rasa YAML
(``bench/rasa/clinc_to_rasa.py``), train through ``billtalk nlu train`` (wall and
CPU time of the subprocess), parse ``val`` + ``oos_val`` and report in-scope
accuracy and out-of-scope recall at the model's default threshold, with ``oos`` as a
trained class only (threshold 0), and over a threshold sweep (PNG), then single
message parse latency (warm, one thread, p50/p95).

Usage::

    nice -n 10 .venv/bin/python bench/nlu_clinc.py [--work /tmp/nlu-clinc] [--model DIR]

``--model`` skips training and evaluates an existing model folder. Writes
``bench/results/nlu_clinc.json`` and ``bench/results/nlu_clinc_tradeoff.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench" / "rasa"))
sys.path.insert(0, str(ROOT))

from clinc_to_rasa import convert  # noqa: E402

RESULTS = ROOT / "bench" / "results"
OOS = "out_of_scope"


def _score(gold: list[str], pred: list[str]) -> tuple[float, float]:
    ins = [(g, p) for g, p in zip(gold, pred, strict=True) if g != OOS]
    out = [p for g, p in zip(gold, pred, strict=True) if g == OOS]
    return (sum(g == p for g, p in ins) / len(ins), sum(p == OOS for p in out) / len(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--clinc",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "clinc150" / "train_val.json",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/nlu-clinc-bench"))
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--latency-n", type=int, default=300)
    args = parser.parse_args()

    train_yml, val_yml = convert(args.clinc, args.work / "data")
    report: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} CPUs, "
        f"Python {platform.python_version()}",
    }
    model_dir = args.model
    if model_dir is None:
        model_dir = args.work / "model"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            [
                str(Path(sys.executable).with_name("billtalk")),
                "nlu",
                "train",
                "--data",
                str(train_yml),
                "--out",
                str(model_dir),
            ],
            check=True,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        report["train_wall_s"] = round(time.perf_counter() - started, 1)
        report["train_cpu_s"] = round(
            (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1
        )

    from nlu.model import load_model_dir
    from nlu.rasa_yaml import load_training_data

    model = load_model_dir(model_dir)
    report["training_seconds_in_process"] = model.metadata.get("training_seconds")
    val = load_training_data(val_yml).examples
    texts, gold = [e.text for e in val], [e.intent for e in val]
    results = []
    for start in tqdm(range(0, len(texts), 64), desc="parse val", file=sys.stderr):
        results.extend(model.parse_many(texts[start : start + 64]))
    top = [r["intent_ranking"][0]["name"] for r in results]
    ranks = np.array([r["scope"]["score"] for r in results])
    threshold = float(model.threshold)

    def at(t: float) -> tuple[float, float]:
        pred = [OOS if (p == OOS or r < t) else p for p, r in zip(top, ranks, strict=True)]
        return _score(gold, pred)

    acc, rec = _score(
        gold,
        [
            OOS if r["intent"]["name"] in (OOS, "nlu_fallback") else r["intent"]["name"]
            for r in results
        ],
    )
    report["default"] = {"threshold": threshold, "in_scope_accuracy": acc, "oos_recall": rec}
    report["oos_as_class"] = dict(zip(("in_scope_accuracy", "oos_recall"), at(0.0), strict=True))
    sweep = [
        {
            "threshold": float(t),
            **dict(zip(("in_scope_accuracy", "oos_recall"), at(t), strict=True)),
        }
        for t in sorted(
            {
                *np.round(np.arange(0.0, 0.02, 0.0025), 4),
                *np.round(np.arange(0.02, 0.1001, 0.01), 3),
            }
        )
    ]
    report["sweep"] = sweep
    # Per-message outcome, so other thresholds can be scored without parsing again.
    (args.work / "val_predictions.json").write_text(
        json.dumps(
            [
                {"gold": g, "top": p, "rank": float(r)}
                for g, p, r in zip(gold, top, ranks, strict=True)
            ]
        ),
        encoding="utf-8",
    )

    # Latency: one message at a time, warm, in this process (one torch thread).
    sample = texts[:: max(1, len(texts) // args.latency_n)][: args.latency_n]
    for text in sample[:10]:
        model.parse(text)
    latencies, cpu = [], []
    for text in tqdm(sample, desc="latency", file=sys.stderr):
        started, started_cpu = time.perf_counter(), time.process_time()
        model.parse(text)
        latencies.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    # Wall time suffers from other load on a shared machine; CPU time of the process
    # (one torch thread) is the load-independent figure.
    report["latency_ms"] = {
        "p50": round(statistics.median(latencies), 2),
        "p95": round(float(np.percentile(latencies, 95)), 2),
        "cpu_p50": round(statistics.median(cpu), 2),
        "cpu_p95": round(float(np.percentile(cpu, 95)), 2),
        "n": len(latencies),
    }

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "nlu_clinc.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(
        [p["oos_recall"] for p in sweep],
        [p["in_scope_accuracy"] for p in sweep],
        marker="o",
        ms=3,
        label="billtalk (threshold sweep)",
    )
    ax.scatter([rec], [acc], color="red", zorder=3, label=f"default threshold {threshold}")
    ax.axhline(0.955, color="grey", ls="--", lw=0.8)
    ax.axvline(0.75, color="grey", ls="--", lw=0.8)
    rasa = sorted(RESULTS.glob("nlu_rasa_diet_e*.json"))
    for path in rasa:
        data = json.loads(path.read_text(encoding="utf-8"))
        pts = data.get("sweep", [])
        ax.plot(
            [p["oos_recall"] for p in pts],
            [p["in_scope_accuracy"] for p in pts],
            marker="x",
            ms=3,
            label=f"Rasa DIET ({data.get('epochs')} epochs)",
        )
    ax.set_xlabel("out-of-scope recall (CLINC150 val)")
    ax.set_ylabel("in-scope accuracy (CLINC150 val)")
    ax.set_title("CLINC150 validation: accuracy vs out-of-scope recall")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "nlu_clinc_tradeoff.png", dpi=110)
    print(json.dumps({k: report[k] for k in report if k != "sweep"}, indent=2))


if __name__ == "__main__":
    main()
