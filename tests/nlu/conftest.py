"""Fixtures of the NLU engine tests.

Models are real (TF-IDF + the real MiniLM encoder); to keep the suite fast the
encoder is shared and memoises sentence vectors, so k-fold training encodes each
example once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nlu.encoder import SentenceEncoder

HERE = Path(__file__).resolve().parent
HELDOUT_DIR = HERE / "heldout"

TINY_YAML = """\
version: "3.1"
nlu:
- intent: check_balance
  examples: |
    - how much do i owe
    - what's my balance
    - how much is my [electricity](utility) bill
    - hw much is my [power]{"entity": "utility", "value": "electricity"} bil
    - am i behind on anything
    - 我欠多少钱
    - 我的[电费]{"entity": "utility", "value": "electricity"}是多少
    - 账户余额多少
    - 这个月要交多少
    - 查一下余额
- intent: pay_bill
  examples: |
    - pay the [water](utility) bill
    - put [60](amount) on the water account
    - pay [150](amount) for [gas](utility)
    - i want to pay my bill
    - settle my balance
    - 交[300元](amount)燃气费
    - 我要交电费
    - 帮我付水费
    - 缴费
    - 付一下物业费
- intent: out_of_scope
  examples: |
    - what's the weather
    - play some music
    - tell me a joke
    - book a table for two
    - 今天天气怎么样
    - 放首歌
    - 讲个笑话
    - my neighbour is noisy
    - how do i reset my phone
    - 帮我订机票
- synonym: electricity
  examples: |
    - power
    - elec
"""


class CachingEncoder(SentenceEncoder):
    """The real MiniLM encoder, memoising vectors per text (tests only)."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: dict[str, np.ndarray] = {}

    def encode(
        self, texts: list[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self.cache})
        if missing:
            vectors = super().encode(missing, batch_size=batch_size)
            self.cache.update(zip(missing, vectors, strict=True))
        if not texts:
            return super().encode([])
        return np.vstack([self.cache[t] for t in texts])


@pytest.fixture(scope="session")
def encoder() -> CachingEncoder:
    """A session-wide memoising MiniLM encoder."""
    return CachingEncoder()


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a small bilingual Rasa NLU file (3 intents)."""
    folder = tmp_path_factory.mktemp("tiny-nlu")
    (folder / "nlu.yml").write_text(TINY_YAML, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(
    tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, encoder: CachingEncoder
) -> Path:
    """A model trained on :func:`tiny_data_dir` and saved."""
    from nlu.rasa_yaml import load_training_data
    from nlu.train import train_on_data

    out = tmp_path_factory.mktemp("tiny-model")
    train_on_data(load_training_data(tiny_data_dir), out, encoder=encoder, progress=False)
    return out


@pytest.fixture(scope="session")
def default_model() -> Any:
    """The shipped default model (trained from nlu/data if missing or stale)."""
    import nlu

    nlu.ensure_default_model(progress=False)
    return nlu.load_model()
