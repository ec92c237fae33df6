"""The lean MiniLM forward pass computes what transformers and sentence-transformers do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlu.bert import LeanBert
from nlu.encoder import SentenceEncoder, model_path

TEXTS = [
    "how much is my electricity bill",
    "hw much is my electrcity bil",
    "put 60 on the water account please, and tell me when it's done",
    "交300元燃气费",
    "what's the weather 🌧️ like tmrw",
    "a",
    "x " * 300,  # longer than the 256-token cap: truncated the same way
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path()), device="cpu", local_files_only=True)
    return np.asarray(model.encode(TEXTS, normalize_embeddings=True, batch_size=len(TEXTS)))


def test_sentence_vectors_equal_sentence_transformers(reference: np.ndarray) -> None:
    ours = SentenceEncoder(threads=1).encode(TEXTS, batch_size=3)
    cosines = np.sum(ours * reference, axis=1)
    assert cosines.min() > 0.99999, cosines
    assert np.abs(ours - reference).max() < 1e-4


def test_single_messages_equal_padded_batches() -> None:
    encoder = SentenceEncoder(threads=1)
    batched = encoder.encode(TEXTS, batch_size=len(TEXTS))
    one_by_one = np.vstack([encoder.encode([t]) for t in TEXTS])
    assert np.abs(batched - one_by_one).max() < 1e-5


def test_hidden_states_equal_transformers_bert_model() -> None:
    from transformers import AutoModel, AutoTokenizer

    folder = model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    bert = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.inference_mode():
        expected = bert(**batch).last_hidden_state
        ours = LeanBert.from_folder(folder)(batch["input_ids"], batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert torch.allclose(ours[real], expected[real], atol=1e-4)


def test_unsupported_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="activation"):
        LeanBert({}, {"hidden_act": "relu"})
    with pytest.raises(ValueError, match="position"):
        LeanBert({}, {"hidden_act": "gelu", "position_embedding_type": "relative_key"})
