"""MiniLM as an ONNX graph, the sentence encoder's default runtime (issue 13).

:func:`export` writes the hash-checked MiniLM weights (:func:`nlu.encoder_files.verify_files`)
as one ONNX file: the same arithmetic as :class:`nlu.bert.LeanBert` (with an additive
padding mask always applied, so the graph is traceable), then attention-masked mean
pooling and the L2 norm, fp32. ``torch.onnx.export`` (TorchScript exporter, opset 17);
nothing is downloaded. The file is ``BILLTALK_DATA_DIR/nlu-encoder/minilm-<weights
sha256 prefix>.onnx`` (:func:`onnx_path`), written under a temporary name and renamed,
so a reader never sees half a file and two processes exporting at once both end with
a whole one. ``scripts/setup.sh`` runs ``python -m nlu.encoder_onnx`` once; the
encoder exports at first use if the file is missing.

Measured (``bench/nlu_encoder_onnx.py``, bench/RESULTS.md "NLU"): single-message
encode 4.4 ms CPU vs torch's 9.2, embeddings identical to rounding.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from nlu.encoder_files import WEIGHTS_SHA256, model_path, verify_files

#: ONNX opset of the export.
OPSET = 17


def onnx_dir() -> Path:
    """Folder of the exported encoder (``settings.data_dir / "nlu-encoder"``)."""
    from billtalk.settings import get_settings

    return Path(get_settings().data_dir) / "nlu-encoder"


def onnx_path(folder: Path | None = None) -> Path:
    """The ONNX file for the pinned weights, in ``folder`` (default :func:`onnx_dir`)."""
    return (folder or onnx_dir()) / f"minilm-{WEIGHTS_SHA256[:16]}.onnx"


def _graph(weights_folder: Path) -> Any:
    """A ``torch.nn.Module``: LeanBert's forward with mask, mean pooling, L2 norm.

    The weights are registered parameters so the exporter writes them as initializers.
    """
    import torch
    from torch.nn import functional as F

    from nlu.bert import LeanBert

    lean = LeanBert.from_folder(weights_folder)

    def param(t: torch.Tensor) -> torch.nn.Parameter:
        return torch.nn.Parameter(t, requires_grad=False)

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.ParameterDict(
                {
                    "word": param(lean.word),
                    "positions": param(lean.positions),
                    "token_type": param(lean.token_type),
                    "norm_w": param(lean.embedding_norm[0]),
                    "norm_b": param(lean.embedding_norm[1]),
                }
            )
            self.layers = torch.nn.ModuleList(
                torch.nn.ParameterDict(
                    {
                        "qkv_w": param(ly.qkv_weight),
                        "qkv_b": param(ly.qkv_bias),
                        "out_w": param(ly.out_weight),
                        "out_b": param(ly.out_bias),
                        "an_w": param(ly.attention_norm[0]),
                        "an_b": param(ly.attention_norm[1]),
                        "up_w": param(ly.up_weight),
                        "up_b": param(ly.up_bias),
                        "down_w": param(ly.down_weight),
                        "down_b": param(ly.down_bias),
                        "on_w": param(ly.output_norm[0]),
                        "on_b": param(ly.output_norm[1]),
                    }
                )
                for ly in lean.layers
            )

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            e, eps = self.emb, lean.eps
            length = input_ids.shape[1]
            shape = (lean.hidden,)
            x = F.embedding(input_ids, e["word"]) + e["positions"][:length] + e["token_type"]
            x = F.layer_norm(x, shape, e["norm_w"], e["norm_b"], eps=eps)
            keep = attention_mask.to(x.dtype)
            bias = ((1.0 - keep) * -1e9)[:, None, None, :]
            heads, head_dim = lean.heads, lean.hidden // lean.heads
            layers: Any = self.layers  # ParameterDicts (mypy sees plain Modules)
            for ly in layers:
                qkv = F.linear(x, ly["qkv_w"], ly["qkv_b"])
                q, k, v = qkv.view(qkv.shape[0], qkv.shape[1], 3, heads, head_dim).permute(
                    2, 0, 3, 1, 4
                )
                scores = q @ k.transpose(-1, -2) / float(head_dim) ** 0.5 + bias
                context = torch.softmax(scores, dim=-1) @ v
                context = context.transpose(1, 2).reshape(x.shape)
                x = F.layer_norm(
                    F.linear(context, ly["out_w"], ly["out_b"]) + x,
                    shape,
                    ly["an_w"],
                    ly["an_b"],
                    eps=eps,
                )
                up = F.gelu(F.linear(x, ly["up_w"], ly["up_b"]))
                x = F.layer_norm(
                    F.linear(up, ly["down_w"], ly["down_b"]) + x,
                    shape,
                    ly["on_w"],
                    ly["on_b"],
                    eps=eps,
                )
            mask = keep.unsqueeze(-1)
            pooled = (x * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return F.normalize(pooled, dim=1)

    return Graph()


def export(target: Path | None = None, *, weights_folder: Path | None = None) -> Path:
    """Export the pinned MiniLM to ``target`` (default :func:`onnx_path`) unless it exists.

    Args:
        target: The ``.onnx`` file to write.
        weights_folder: The MiniLM files (default: the installed package); checked
            against the pinned hashes first.

    Returns:
        ``target``.

    Raises:
        nlu.encoder.EncoderUnavailable: If the weights are missing or fail the hash check.
    """
    target = target or onnx_path()
    if target.is_file():
        return target
    weights_folder = weights_folder or model_path()
    verify_files(weights_folder)
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    ids = torch.tensor([[101, 2129, 2172, 2079, 1045, 12533, 102], [101, 3477, 102, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    handle, partial = tempfile.mkstemp(
        dir=target.parent, prefix=target.name + ".", suffix=".partial"
    )
    os.close(handle)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter and tracer notices
            torch.onnx.export(
                _graph(weights_folder),
                (ids, mask),
                partial,
                dynamo=False,
                opset_version=OPSET,
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "embedding": {0: "batch"},
                },
            )
        os.chmod(partial, 0o644)  # mkstemp makes it owner-only
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def session(model: Path, threads: int) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU with ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No busy-waiting between parallel sections: the intra-op threads sleep instead of
    # spinning (a 16-text batch on 2 threads: 34.1 -> 25.7 ms CPU, wall 14.7 -> 14.2 ms);
    # the spin took cores from the other turns and worker processes on the same machine.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])


if __name__ == "__main__":  # pragma: no cover - run by scripts/setup.sh
    import sys

    print(f"nlu: encoder ONNX file {export()}", file=sys.stderr)
