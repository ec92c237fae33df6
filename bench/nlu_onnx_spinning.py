"""CPU of the NLU encoder's batch session with ONNX Runtime's thread spinning on and off.

A 16-text batch on 2 intra-op threads (what ``nlu.encoder`` uses for a batch of 16 or
more on this machine), run 200 times with 5-ms gaps (as batches arrive in a busy
worker). Prints CPU and wall milliseconds per batch for ``allow_spinning`` 1 and 0.
Run under the benchmark lock from the repository root::

    flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/nlu_onnx_spinning.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TEXTS = [
    "how much do I owe?",
    "why is my electricity bill so high?",
    "pay 1 for water",
    "what is my balance",
] * 4
RUNS, GAP_S = 200, 0.005


def main() -> None:
    """Time the batch session both ways and print the result."""
    import onnxruntime as ort

    from nlu.encoder import SentenceEncoder

    encoder = SentenceEncoder(runtime="onnx")
    encoder.encode(TEXTS)  # loads the tokenizer, exports the graph if missing
    batch = encoder._tokenizer(TEXTS, padding=True, truncation=True, return_tensors="np")
    for spin in ("1", "0"):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
        session = ort.InferenceSession(
            str(encoder._onnx_file), opts, providers=["CPUExecutionProvider"]
        )
        names = {i.name for i in session.get_inputs()}
        feeds = {
            k: np.asarray(batch[k], dtype=np.int64)
            for k in ("input_ids", "attention_mask")
            if k in names
        }
        for _ in range(5):
            session.run(None, feeds)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(RUNS):
            session.run(None, feeds)
            time.sleep(GAP_S)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0 - RUNS * GAP_S
        print(
            f"allow_spinning={spin}: {1000 * cpu / RUNS:.2f} ms CPU per 16-text batch, "
            f"{1000 * wall / RUNS:.2f} ms wall (gaps excluded)"
        )


if __name__ == "__main__":
    main()
