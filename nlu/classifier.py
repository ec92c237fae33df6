"""The intent classifier and its out-of-scope score.

Method (chosen by measurement on CLINC150 validation, see ``docs/nlu.md``):

* **Features**: word + character TF-IDF (:mod:`nlu.features`) concatenated with the
  MiniLM sentence embedding scaled per language by :data:`EMBEDDING_WEIGHTS` (MiniLM is
  English-centric: on the resident data it adds 7 points of accuracy in English and
  helps Chinese only at a lower weight).
* **Classifier**: one-vs-rest linear SVM (``LinearSVC``); the ranking's confidences
  are a softmax of the decision values with a temperature fitted on held-out data.
* **Out-of-scope score**: the sum of two standardised signals, the winning class's
  SVM decision value and the cosine similarity of the message embedding to that
  class's centroid (per language). Both are standardised with statistics of
  held-out in-scope messages, and the sum is reported as its percentile rank among
  held-out in-scope messages (:meth:`IntentClassifier.in_scope_rank`), so the
  threshold reads as "the share of in-scope messages allowed to fall back".
* An ``out_of_scope`` intent in the training data is a class like any other.

All parameters are NumPy arrays and JSON-able values (:meth:`to_state` /
:meth:`from_state`); nothing is pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.svm import LinearSVC

from nlu.features import TfidfFeaturizer

OUT_OF_SCOPE = "out_of_scope"
#: Weight of the (unit-length) sentence embedding next to the TF-IDF blocks, per
#: message language (measured on CLINC150 val and the resident data, docs/nlu.md).
EMBEDDING_WEIGHTS = {"en": 2.0, "zh": 1.0}
#: LinearSVC regularisation (C) chosen on CLINC150 validation.
SVM_C = 0.5


@dataclass
class ScopeStats:
    """Standardisation of the two out-of-scope signals and held-out reference scores."""

    margin_center: float = 0.0
    margin_scale: float = 1.0
    cosine_center: float = 0.0
    cosine_scale: float = 1.0
    #: Sorted combined scores of held-out in-scope messages, per language ("all" too).
    reference: dict[str, np.ndarray] = field(default_factory=dict)


def _robust_stats(values: np.ndarray) -> tuple[float, float]:
    if values.size < 2:
        return 0.0, 1.0
    scale = float(values.std())
    return float(np.median(values)), scale if scale > 1e-6 else 1.0


class IntentClassifier:
    """Linear SVM over TF-IDF (+ MiniLM) features with an out-of-scope score.

    Use :meth:`fit`, then :meth:`calibrate` with held-out data; :meth:`predict`
    returns decision values, the top in-scope class and its combined scope score.
    """

    def __init__(self, *, use_embeddings: bool) -> None:
        self.use_embeddings = use_embeddings
        self.labels: list[str] = []
        self.featurizer = TfidfFeaturizer()
        self.w_sparse = np.zeros((0, 0), dtype=np.float32)
        self.w_dense = np.zeros((0, 0), dtype=np.float32)
        self.bias = np.zeros(0, dtype=np.float32)
        self.centroids = np.zeros((0, 0), dtype=np.float32)
        self.centroid_label = np.zeros(0, dtype=np.int32)
        self.temperature = 1.0
        self.stats = ScopeStats()
        self.embedding_weights = dict(EMBEDDING_WEIGHTS)

    # -- training ---------------------------------------------------------------
    def fit(
        self,
        texts: list[str],
        labels: list[str],
        languages: list[str],
        embeddings: np.ndarray | None,
    ) -> IntentClassifier:
        """Fit features, SVM and centroids on normalised ``texts`` with their labels.

        Args:
            texts: Normalised messages (:func:`nlu.features.normalise_text`).
            labels: Intent of each message.
            languages: ``"en"``/``"zh"`` of each message (for per-language centroids).
            embeddings: ``(n, 384)`` unit vectors when the classifier uses embeddings.
        """
        self.labels = sorted(set(labels))
        y = np.array([self.labels.index(label) for label in labels])
        tfidf = self.featurizer.fit_transform(texts)
        features = self._stack(tfidf, embeddings, languages)
        if len(self.labels) == 1:
            n = features.shape[1]
            weights, bias = np.zeros((1, n), dtype=np.float32), np.ones(1, dtype=np.float32)
        else:
            svm = LinearSVC(C=SVM_C, tol=1e-3, random_state=0)
            svm.fit(features, y)
            weights = np.asarray(svm.coef_, dtype=np.float32)
            bias = np.asarray(svm.intercept_, dtype=np.float32)
            if len(self.labels) == 2:  # binary LinearSVC has one row: class 1 vs class 0
                weights = np.vstack([-weights, weights])
                bias = np.concatenate([-bias, bias])
        n_sparse = tfidf.shape[1]
        self.w_sparse = np.ascontiguousarray(weights[:, :n_sparse].T)
        self.w_dense = np.ascontiguousarray(weights[:, n_sparse:].T)
        self.bias = bias
        if self.use_embeddings and embeddings is not None:
            rows, owners = [], []
            lang_arr = np.array(languages)
            for index, label in enumerate(self.labels):
                if label == OUT_OF_SCOPE:
                    continue
                for lang in sorted(set(languages)):
                    mask = (y == index) & (lang_arr == lang)
                    if mask.any():
                        centroid = embeddings[mask].mean(axis=0)
                        rows.append(centroid / max(float(np.linalg.norm(centroid)), 1e-9))
                        owners.append(index)
            self.centroids = np.asarray(rows, dtype=np.float32).reshape(-1, embeddings.shape[1])
            self.centroid_label = np.asarray(owners, dtype=np.int32)
        return self

    def _weighted(self, embeddings: np.ndarray | None, languages: list[str]) -> np.ndarray:
        if embeddings is None:
            raise ValueError("this classifier needs sentence embeddings")
        weights = np.array(
            [self.embedding_weights.get(lang, 1.0) for lang in languages], dtype=np.float32
        )
        return embeddings * weights[:, None]

    def _stack(
        self, tfidf: sparse.csr_matrix, embeddings: np.ndarray | None, languages: list[str]
    ) -> Any:
        if not self.use_embeddings:
            return tfidf
        dense = self._weighted(embeddings, languages)
        return sparse.hstack([tfidf, sparse.csr_matrix(dense)], format="csr")

    # -- inference --------------------------------------------------------------
    def decision(
        self, texts: list[str], embeddings: np.ndarray | None, languages: list[str]
    ) -> np.ndarray:
        """SVM decision values, shape ``(n, n_labels)``."""
        scores = self.featurizer.transform(texts) @ self.w_sparse
        if self.use_embeddings:
            scores = scores + self._weighted(embeddings, languages) @ self.w_dense
        return np.asarray(scores, dtype=np.float64) + self.bias

    def _raw_scope(
        self, decision: np.ndarray, embeddings: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (top in-scope class index, its margin, its centroid cosine)."""
        masked = decision.copy()
        if OUT_OF_SCOPE in self.labels and len(self.labels) > 1:
            masked[:, self.labels.index(OUT_OF_SCOPE)] = -np.inf
        top = masked.argmax(axis=1)
        margin = masked[np.arange(len(top)), top]
        cosine = np.zeros(len(top))
        if self.use_embeddings and embeddings is not None and self.centroids.size:
            sims = embeddings @ self.centroids.T
            for i, cls in enumerate(top):
                own = sims[i, self.centroid_label == cls]
                cosine[i] = float(own.max()) if own.size else float(sims[i].max())
        return top, margin, cosine

    def scope_scores(self, decision: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        """Combined in-scope score (higher = more typical of the training intents)."""
        _, margin, cosine = self._raw_scope(decision, embeddings)
        st = self.stats
        score = (margin - st.margin_center) / st.margin_scale
        if self.use_embeddings and self.centroids.size:
            score = score + (cosine - st.cosine_center) / st.cosine_scale
        return score

    def in_scope_rank(self, scores: np.ndarray, languages: list[str]) -> np.ndarray:
        """Percentile rank (0–1) of each score among held-out in-scope messages of its
        language; a message scoring below the threshold's share falls back."""
        ranks = np.ones(len(scores))
        for i, (score, lang) in enumerate(zip(scores, languages, strict=True)):
            ref = self.stats.reference.get(lang, self.stats.reference.get("all"))
            if ref is None or ref.size == 0:
                continue
            ranks[i] = float(np.searchsorted(ref, score, side="right")) / ref.size
        return ranks

    def probabilities(self, decision: np.ndarray) -> np.ndarray:
        """Temperature-scaled softmax over all labels."""
        z = decision / self.temperature
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    # -- calibration ------------------------------------------------------------
    def calibrate(
        self,
        decision: np.ndarray,
        embeddings: np.ndarray | None,
        gold: list[str],
        languages: list[str],
    ) -> None:
        """Fit the temperature and the scope statistics on held-out predictions.

        ``decision`` comes from a model that did not see these messages (the final
        model is then refit on everything and inherits these statistics).
        """
        gold_arr = np.array(gold)
        in_scope = gold_arr != OUT_OF_SCOPE
        known = np.array([g in self.labels for g in gold])
        if (known & in_scope).any():
            idx = np.array([self.labels.index(g) for g in gold_arr[known & in_scope]])
            d = decision[known & in_scope]
            best, best_nll = 1.0, np.inf
            for t in np.geomspace(0.02, 5.0, 60):
                z = d / t
                z = z - z.max(axis=1, keepdims=True)
                nll = float(-(z[np.arange(len(idx)), idx] - np.log(np.exp(z).sum(1))).mean())
                if nll < best_nll:
                    best, best_nll = float(t), nll
            self.temperature = best
        _, margin, cosine = self._raw_scope(decision, embeddings)
        ref_mask = in_scope if in_scope.any() else np.ones(len(gold), dtype=bool)
        stats = ScopeStats()
        stats.margin_center, stats.margin_scale = _robust_stats(margin[ref_mask])
        stats.cosine_center, stats.cosine_scale = _robust_stats(cosine[ref_mask])
        self.stats = stats
        combined = self.scope_scores(decision, embeddings)
        lang_arr = np.array(languages)
        stats.reference["all"] = np.sort(combined[ref_mask])
        for lang in sorted(set(languages)):
            mask = ref_mask & (lang_arr == lang)
            if mask.sum() >= 20:
                stats.reference[lang] = np.sort(combined[mask])

    # -- persistence ------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Export as ``(json_part, arrays)`` for :mod:`nlu.model_files`."""
        feat_state, feat_arrays = self.featurizer.to_state()
        st = self.stats
        state = {
            "labels": self.labels,
            "use_embeddings": self.use_embeddings,
            "embedding_weights": self.embedding_weights,
            "temperature": self.temperature,
            "scope": {
                "margin_center": st.margin_center,
                "margin_scale": st.margin_scale,
                "cosine_center": st.cosine_center,
                "cosine_scale": st.cosine_scale,
                "reference_languages": sorted(st.reference),
            },
            "features": feat_state,
        }
        arrays = {
            **{f"features.{k}": v for k, v in feat_arrays.items()},
            "w_sparse": self.w_sparse,
            "w_dense": self.w_dense,
            "bias": self.bias,
            "centroids": self.centroids,
            "centroid_label": self.centroid_label,
            **{f"reference.{k}": v for k, v in st.reference.items()},
        }
        return state, arrays

    @classmethod
    def from_state(cls, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> IntentClassifier:
        """Rebuild from :meth:`to_state` output, checking shapes.

        Raises:
            ValueError: If the arrays do not fit the labels and vocabularies.
        """
        self = cls(use_embeddings=bool(state["use_embeddings"]))
        self.labels = [str(x) for x in state["labels"]]
        self.temperature = float(state["temperature"])
        # Engine 1.0 models had one weight for every language.
        weights = state.get("embedding_weights") or dict.fromkeys(
            EMBEDDING_WEIGHTS, state["embedding_weight"]
        )
        self.embedding_weights = {str(k): float(v) for k, v in weights.items()}
        feat_arrays = {
            k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("features.")
        }
        self.featurizer = TfidfFeaturizer.from_state(state["features"], feat_arrays)
        n_labels = len(self.labels)
        self.w_sparse = np.asarray(arrays["w_sparse"], dtype=np.float32)
        self.w_dense = np.asarray(arrays["w_dense"], dtype=np.float32)
        self.bias = np.asarray(arrays["bias"], dtype=np.float32)
        if self.w_sparse.shape != (self.featurizer.n_features, n_labels):
            raise ValueError(f"w_sparse has shape {self.w_sparse.shape}")
        if self.bias.shape != (n_labels,):
            raise ValueError(f"bias has shape {self.bias.shape}")
        if self.use_embeddings and self.w_dense.shape[1:] != (n_labels,):
            raise ValueError(f"w_dense has shape {self.w_dense.shape}")
        self.centroids = np.asarray(arrays["centroids"], dtype=np.float32)
        self.centroid_label = np.asarray(arrays["centroid_label"], dtype=np.int32)
        if self.centroid_label.size and (
            self.centroid_label.min() < 0 or self.centroid_label.max() >= n_labels
        ):
            raise ValueError("centroid_label out of range")
        scope = state["scope"]
        self.stats = ScopeStats(
            margin_center=float(scope["margin_center"]),
            margin_scale=float(scope["margin_scale"]),
            cosine_center=float(scope["cosine_center"]),
            cosine_scale=float(scope["cosine_scale"]),
            reference={
                lang: np.asarray(arrays[f"reference.{lang}"], dtype=np.float64)
                for lang in scope["reference_languages"]
            },
        )
        return self
