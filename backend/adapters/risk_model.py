"""The payment anomaly model: scikit-learn's IsolationForest, trained and scored.

``train`` fits an :class:`~sklearn.ensemble.IsolationForest` on feature vectors
(:data:`backend.domain.risk.FEATURE_NAMES`) and calibrates its anomaly score on
the training data: the median training payment maps to 0 and the 99th
percentile to 50, so a score of 50 or more means "more unusual than 99 % of this
community's own payments". The fitted forest is saved with :mod:`joblib`.

Scoring one payment goes through :class:`LeanForest`, which walks the fitted
trees' arrays directly (the same arithmetic as ``score_samples``, without
scikit-learn's per-call validation): about 0.1 ms instead of several.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.domain.risk import FEATURE_NAMES


def _average_path_length(n: float) -> float:
    """c(n): the average path length of an unsuccessful BST search (Liu et al.)."""
    if n <= 1:
        return 0.0
    if n == 2:
        return 1.0
    return 2.0 * (math.log(n - 1.0) + np.euler_gamma) - 2.0 * (n - 1.0) / n


@dataclass
class _Tree:
    left: list[int]
    right: list[int]
    feature: list[int]
    threshold: list[float]
    leaf_depth: list[float]
    columns: list[int]


class LeanForest:
    """A fitted IsolationForest's trees as plain lists, scored one sample at a time.

    ``raw(x)`` equals ``-forest.score_samples([x])[0]`` (tested).
    """

    def __init__(self, forest: Any) -> None:
        self.trees: list[_Tree] = []
        for est, cols in zip(forest.estimators_, forest.estimators_features_, strict=True):
            t = est.tree_
            n = t.node_count
            depth = [0] * n
            leaf_depth = [0.0] * n
            for node in range(n):
                left, right = int(t.children_left[node]), int(t.children_right[node])
                if left == -1:
                    leaf_depth[node] = depth[node] + _average_path_length(
                        float(t.n_node_samples[node])
                    )
                else:
                    depth[left] = depth[right] = depth[node] + 1
            self.trees.append(
                _Tree(
                    [int(v) for v in t.children_left],
                    [int(v) for v in t.children_right],
                    [int(v) for v in t.feature],
                    [float(v) for v in t.threshold],
                    leaf_depth,
                    [int(c) for c in cols],
                )
            )
        self.norm = _average_path_length(float(forest.max_samples_))

    def raw(self, x: list[float]) -> float:
        """The anomaly score in (0, 1]: higher is more anomalous."""
        x = [float(v) for v in np.asarray(x, dtype=np.float32)]  # as the trees were fitted
        total = 0.0
        for t in self.trees:
            node = 0
            left, right, feature, threshold = t.left, t.right, t.feature, t.threshold
            while left[node] != -1:
                node = left[node] if x[t.columns[feature[node]]] <= threshold[node] else right[node]
            total += t.leaf_depth[node]
        return float(2.0 ** (-(total / len(self.trees)) / self.norm))


@dataclass
class RiskModel:
    """A trained model with its calibration."""

    forest: Any
    lean: LeanForest
    q50: float
    q99: float
    trained_on: int
    feature_names: tuple[str, ...]

    def score(self, x: list[float]) -> int:
        """0-100: 0 up to the median training payment, 50 at its 99th percentile."""
        raw = self.lean.raw(x)
        span = max(self.q99 - self.q50, 1e-9)
        return int(max(0.0, min(100.0, round(50.0 * (raw - self.q50) / span))))


def train(rows: list[list[float]], *, seed: int = 7, trees: int = 100) -> RiskModel:
    """Fit and calibrate an IsolationForest on feature vectors."""
    from sklearn.ensemble import IsolationForest

    if len(rows) < 10:
        raise ValueError(f"need at least 10 payments to train, got {len(rows)}")
    X = np.asarray(rows, dtype=float)
    forest = IsolationForest(n_estimators=trees, random_state=seed, contamination="auto")
    forest.fit(X)
    raw = -forest.score_samples(X)
    q50, q99 = (float(v) for v in np.quantile(raw, [0.5, 0.99]))
    return RiskModel(forest, LeanForest(forest), q50, q99, len(rows), FEATURE_NAMES)


def save(model: RiskModel, path: Path) -> None:
    """Write the model (joblib)."""
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(
        {
            "forest": model.forest,
            "q50": model.q50,
            "q99": model.q99,
            "trained_on": model.trained_on,
            "feature_names": list(model.feature_names),
        },
        path,
    )


_cache: dict[str, tuple[float, RiskModel | None]] = {}
_cache_lock = threading.Lock()


def load(path: Path) -> RiskModel | None:
    """The model at ``path`` (cached; reloaded when the file changes), or ``None``.

    A model trained on other features than :data:`FEATURE_NAMES` is ignored.
    """
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    key = str(path)
    cached = _cache.get(key)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    with _cache_lock:
        import joblib

        data = joblib.load(path)
        model: RiskModel | None = None
        if tuple(data.get("feature_names", ())) == FEATURE_NAMES:
            forest = data["forest"]
            model = RiskModel(
                forest,
                LeanForest(forest),
                float(data["q50"]),
                float(data["q99"]),
                int(data["trained_on"]),
                FEATURE_NAMES,
            )
        _cache[key] = (mtime, model)
        return model
