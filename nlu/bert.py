"""A lean, inference-only BERT encoder forward pass over MiniLM's safetensors weights.

:class:`transformers.BertModel` computes the same thing, but for one short message
most of its time goes to Python around the arithmetic (module hooks, mask builders,
signature inspection) and to a pooler layer the sentence embedding never uses. This
module runs the same operations with :mod:`torch.nn.functional` only: one fused
query/key/value projection per layer, PyTorch's fused attention, no attention mask
when nothing is padded. ``tests/nlu/test_bert.py`` checks that its output equals
``transformers``' to float rounding.

Weights are read with :func:`safetensors.torch.load_file` (a plain tensor format:
nothing is unpickled or executed).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class _Layer:
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor
    out_weight: torch.Tensor
    out_bias: torch.Tensor
    attention_norm: tuple[torch.Tensor, torch.Tensor]
    up_weight: torch.Tensor
    up_bias: torch.Tensor
    down_weight: torch.Tensor
    down_bias: torch.Tensor
    output_norm: tuple[torch.Tensor, torch.Tensor]


class LeanBert:
    """The encoder stack of a BERT model (absolute positions, exact GELU), inference only.

    Args:
        weights: The model's tensors, named as in a ``BertModel`` state dict.
        config: The model's ``config.json`` as a dict.

    Raises:
        ValueError: If the config asks for something this forward pass does not do.
    """

    def __init__(self, weights: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
        if config.get("hidden_act") != "gelu":
            raise ValueError(f"unsupported activation {config.get('hidden_act')!r}")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported")
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.max_positions = int(config["max_position_embeddings"])

        def w(name: str) -> torch.Tensor:
            return weights[name].float().contiguous()

        self.word = w("embeddings.word_embeddings.weight")
        self.positions = w("embeddings.position_embeddings.weight")
        self.token_type = w("embeddings.token_type_embeddings.weight")[0]
        self.embedding_norm = (w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"))
        self.layers = [
            self._layer(w, f"encoder.layer.{i}.") for i in range(int(config["num_hidden_layers"]))
        ]

    @staticmethod
    def _layer(w: Callable[[str], torch.Tensor], p: str) -> _Layer:
        attention = p + "attention."
        qkv = [f"{attention}self.{n}." for n in ("query", "key", "value")]
        return _Layer(
            qkv_weight=torch.cat([w(n + "weight") for n in qkv]),
            qkv_bias=torch.cat([w(n + "bias") for n in qkv]),
            out_weight=w(attention + "output.dense.weight"),
            out_bias=w(attention + "output.dense.bias"),
            attention_norm=(
                w(attention + "output.LayerNorm.weight"),
                w(attention + "output.LayerNorm.bias"),
            ),
            up_weight=w(p + "intermediate.dense.weight"),
            up_bias=w(p + "intermediate.dense.bias"),
            down_weight=w(p + "output.dense.weight"),
            down_bias=w(p + "output.dense.bias"),
            output_norm=(w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias")),
        )

    @classmethod
    def from_folder(cls, folder: Path) -> LeanBert:
        """Load ``model.safetensors`` and ``config.json`` from ``folder``."""
        from safetensors.torch import load_file

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return cls(load_file(str(folder / "model.safetensors")), config)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states, shape ``(batch, tokens, hidden)``, for token ids and their
        0/1 attention mask (both ``(batch, tokens)``)."""
        batch, length = input_ids.shape
        if length > self.max_positions:
            raise ValueError(f"{length} tokens exceed the model's {self.max_positions}")
        shape = (self.hidden,)
        x = F.embedding(input_ids, self.word) + self.positions[:length] + self.token_type
        x = F.layer_norm(x, shape, *self.embedding_norm, eps=self.eps)
        # Boolean mask over keys: True = attend. None when no row is padded (faster path).
        mask = None if bool(attention_mask.all()) else attention_mask.bool()[:, None, None, :]
        head_dim = self.hidden // self.heads
        for layer in self.layers:
            qkv = F.linear(x, layer.qkv_weight, layer.qkv_bias)
            q, k, v = qkv.view(batch, length, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            context = context.transpose(1, 2).reshape(batch, length, self.hidden)
            x = F.layer_norm(
                F.linear(context, layer.out_weight, layer.out_bias) + x,
                shape,
                *layer.attention_norm,
                eps=self.eps,
            )
            up = F.gelu(F.linear(x, layer.up_weight, layer.up_bias))
            x = F.layer_norm(
                F.linear(up, layer.down_weight, layer.down_bias) + x,
                shape,
                *layer.output_norm,
                eps=self.eps,
            )
        return x
