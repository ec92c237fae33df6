"""Train an :class:`~nlu.model.NluModel` from Rasa 3 NLU YAML.

Procedure (documented in ``docs/nlu.md``):

1. read the data (:func:`nlu.rasa_yaml.load_training_data`), normalise the texts,
   detect each example's language, encode them once with MiniLM;
2. hold out every fifth example of each intent (intents with at least 5 examples,
   seeded shuffle); fit one classifier on the rest and, at the same time, the final
   classifier on all examples;
3. on the held-out part, fit the softmax temperature and the out-of-scope score's
   statistics with the first classifier, and measure accuracy / out-of-scope recall
   / in-scope fallback for a grid of thresholds (stored in the metadata);
4. the final classifier takes over the statistics from step 3.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from billtalk.logs import get_logger
from nlu.classifier import OUT_OF_SCOPE, IntentClassifier
from nlu.encoder import DIMENSIONS, ENCODER_NAME, WEIGHTS_SHA256, SentenceEncoder, shared_encoder
from nlu.features import normalise_text
from nlu.language import detect_language
from nlu.model import ENGINE_VERSION, FORMAT, NluModel
from nlu.rasa_yaml import TrainingData, load_training_data
from nlu.settings import get_nlu_settings

log = get_logger(__name__)

#: Default threshold: the share of typical in-scope messages allowed to fall back.
#: Chosen on CLINC150 validation (the middle of the 0.004-0.009 range that meets both
#: 95.5 % in-scope accuracy and 75 % out-of-scope recall) and checked on the resident
#: held-out set (docs/nlu.md).
DEFAULT_THRESHOLD = 0.0075
THRESHOLD_GRID = (0.0, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05)
HOLDOUT_EVERY = 5


def holdout_split(
    labels: list[str], *, every: int = HOLDOUT_EVERY, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices: every ``every``-th example of each label (after a seeded shuffle)
    is held out, for labels with at least ``every`` examples. Returns (train, held)."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    held: list[int] = []
    for label in sorted(by_label):
        idx = by_label[label]
        if len(idx) >= every:
            shuffled = rng.permutation(idx)
            held.extend(int(x) for x in shuffled[::every])
    held_arr = np.array(sorted(held), dtype=int)
    train_arr = np.setdiff1d(np.arange(len(labels)), held_arr)
    return train_arr, held_arr


def operating_points(
    classifier: IntentClassifier,
    decision: np.ndarray,
    embeddings: np.ndarray | None,
    gold: list[str],
    languages: list[str],
) -> list[dict[str, float]]:
    """Accuracy, out-of-scope recall and in-scope fallback rate for each threshold."""
    labels = classifier.labels
    top = [labels[j] for j in decision.argmax(axis=1)]
    ranks = classifier.in_scope_rank(classifier.scope_scores(decision, embeddings), languages)
    gold_arr = np.array(gold)
    in_scope = gold_arr != OUT_OF_SCOPE
    points = []
    for t in THRESHOLD_GRID:
        pred = np.array(
            [
                OUT_OF_SCOPE if (p == OUT_OF_SCOPE or r < t) else p
                for p, r in zip(top, ranks, strict=True)
            ]
        )
        point = {"threshold": t}
        if in_scope.any():
            point["in_scope_accuracy"] = float((pred[in_scope] == gold_arr[in_scope]).mean())
            point["in_scope_fallback"] = float((pred[in_scope] == OUT_OF_SCOPE).mean())
        if (~in_scope).any():
            point["oos_recall"] = float((pred[~in_scope] == OUT_OF_SCOPE).mean())
        points.append(point)
    return points


def train_on_data(
    data: TrainingData,
    out_dir: Path | None,
    *,
    use_encoder: bool | None = None,
    encoder: SentenceEncoder | None = None,
    progress: bool = True,
    sources: Iterable[str] = (),
) -> NluModel:
    """Train on already loaded :class:`TrainingData`; save to ``out_dir`` if given.

    See :func:`nlu.train` for the arguments.
    """
    started = time.perf_counter()
    use_encoder = get_nlu_settings().use_encoder if use_encoder is None else use_encoder
    texts = [normalise_text(e.text) for e in data.examples]
    labels = [e.intent for e in data.examples]
    languages: list[str] = [detect_language(e.text) for e in data.examples]
    bar = tqdm(total=4, desc="nlu train", unit="step", file=sys.stderr, disable=not progress)

    embeddings: np.ndarray | None = None
    if use_encoder:
        bar.set_postfix_str(f"encoding {len(texts)} examples")
        embeddings = (encoder or shared_encoder()).encode(texts, batch_size=128, progress=progress)
    bar.update(1)

    train_idx, held_idx = holdout_split(labels)
    do_holdout = bool(held_idx.size) and len({labels[i] for i in train_idx}) > 1

    def take(xs: list[str], idx: np.ndarray) -> list[str]:
        return [xs[i] for i in idx]

    def fit_holdout() -> IntentClassifier:
        emb = embeddings[train_idx] if embeddings is not None else None
        return IntentClassifier(use_embeddings=use_encoder).fit(
            take(texts, train_idx), take(labels, train_idx), take(languages, train_idx), emb
        )

    def fit_final() -> IntentClassifier:
        return IntentClassifier(use_embeddings=use_encoder).fit(
            texts, labels, languages, embeddings
        )

    # The held-out model and the final model are independent: fit them at the same
    # time (liblinear releases the GIL, so two cores are used).
    bar.set_postfix_str(f"fitting held-out ({len(held_idx)}) and final models")
    with ThreadPoolExecutor(max_workers=2) as pool:
        holdout_future = pool.submit(fit_holdout) if do_holdout else None
        classifier = pool.submit(fit_final).result()
        holdout_state = holdout_future.result() if holdout_future is not None else None
    bar.update(1)

    metrics: dict[str, Any] = {}
    if holdout_state is not None:
        emb_held = embeddings[held_idx] if embeddings is not None else None
        held_texts, held_labels = take(texts, held_idx), take(labels, held_idx)
        held_langs = take(languages, held_idx)
        decision = holdout_state.decision(held_texts, emb_held, held_langs)
        holdout_state.calibrate(decision, emb_held, held_labels, held_langs)
        points = operating_points(holdout_state, decision, emb_held, held_labels, held_langs)
        metrics = {"holdout_size": int(held_idx.size), "holdout": points}
        # The final model inherits the statistics measured on data it did not see...
        classifier.temperature = holdout_state.temperature
        classifier.stats = holdout_state.stats
    else:  # too little data to hold any out: calibrate on the training data itself
        classifier.calibrate(
            classifier.decision(texts, embeddings, languages), embeddings, labels, languages
        )
    bar.update(1)

    metadata: dict[str, Any] = {
        "format": FORMAT,
        "engine_version": ENGINE_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_data": {
            "sha256": data.fingerprint(),
            "sources": list(sources),
            "examples": len(texts),
            "intents": dict(sorted(Counter(labels).items())),
            "entity_types": data.entity_types,
        },
        "languages": sorted(set(languages)),
        "language_counts": dict(sorted(Counter(languages).items())),
        "encoder": {
            "name": ENCODER_NAME,
            "weights_sha256": WEIGHTS_SHA256,
            "dimensions": DIMENSIONS,
        }
        if use_encoder
        else None,
        "threshold": DEFAULT_THRESHOLD,
        "threshold_meaning": "share of held-out in-scope messages allowed to fall back",
        "metrics": metrics,
        "synonyms": data.synonyms,
        "training_seconds": None,
    }
    model = NluModel(classifier, metadata, encoder=encoder)
    model.metadata["training_seconds"] = round(time.perf_counter() - started, 2)
    if out_dir is not None:
        bar.set_postfix_str(f"saving to {out_dir}")
        model.save(Path(out_dir))
    bar.update(1)
    bar.close()
    log.info(
        "nlu.trained",
        examples=len(texts),
        intents=len(classifier.labels),
        seconds=model.metadata["training_seconds"],
        out=str(out_dir),
    )
    return model


def train(
    data_paths: Path | str | Iterable[Path | str],
    out_dir: Path | str | None,
    *,
    use_encoder: bool | None = None,
    progress: bool = True,
) -> NluModel:
    """Train a model from Rasa NLU YAML files or folders and save it.

    Args:
        data_paths: File(s) or folder(s) of Rasa 3 NLU YAML.
        out_dir: Where to write ``metadata.json`` and ``weights.npz`` (``None``: don't).
        use_encoder: Use MiniLM embeddings (default: ``BILLTALK_NLU_USE_ENCODER``).
        progress: Show a progress bar on stderr.

    Returns:
        The trained :class:`~nlu.model.NluModel`.

    Raises:
        nlu.rasa_yaml.RasaYamlError: If the data cannot be read.
    """
    if isinstance(data_paths, str | Path):
        data_paths = [data_paths]
    paths = [Path(p) for p in data_paths]
    data = load_training_data(paths)
    return train_on_data(
        data,
        Path(out_dir) if out_dir is not None else None,
        use_encoder=use_encoder,
        progress=progress,
        sources=[str(p) for p in paths],
    )
