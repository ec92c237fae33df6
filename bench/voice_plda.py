"""A trained scoring back-end for voiceprints: LDA, WCCN, length normalisation, PLDA.

Measured by ``bench/voice_backend.py`` (issue 18) and **not shipped**: trained on
one half of the 266 real speakers it did not separate the other half better than
the raw cosine at a fixed FAR, and trained on speechocean762 it let 0.4-4.6 % of
other people's voices through on the FSDD / LibriSpeech speakers (raw cosine: 0
of 11,835); see the voice section of ``bench/RESULTS.md``.

Cosine similarity of raw speaker embeddings treats every direction of the
embedding alike, including directions in which one speaker's recordings vary
(channel, text, length) as much as different speakers do. A back-end learned on
labelled speakers removes them before scoring, the standard recipe of speaker
verification:

1. centre on the training mean;
2. LDA: keep the ``dim`` directions that best separate speakers relative to the
   spread within a speaker (regularised within-class scatter);
3. WCCN: whiten the within-speaker covariance in that subspace;
4. length-normalise;
5. score either by cosine (``method="cosine"``) or by the log-likelihood ratio
   of a two-covariance PLDA model fitted in the same space (``method="plda"``).

Parameters are fitted by :func:`fit`. A back-end works on the raw embeddings
that the product's templates store, so it could apply to templates enrolled
before it, without re-enrollment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

Method = Literal["cosine", "plda"]


@dataclass(frozen=True)
class Backend:
    """Fitted back-end parameters.

    Attributes:
        mean: Training mean of the raw embeddings, (d,).
        projection: LDA followed by WCCN, (d, k); its output is length-normalised.
        post: Applied after length normalisation, (k, k): for PLDA the whitening of
            the within-speaker covariance and the rotation that makes the
            between-speaker covariance diagonal; the identity for cosine.
        between: PLDA between-speaker variances per dimension of ``post``'s output,
            (k,) (the within-speaker covariance is the identity there).
        method: ``"cosine"`` or ``"plda"``.
        meta: Provenance (training data, licences, command); never used to score.
    """

    mean: npt.NDArray[np.float64]
    projection: npt.NDArray[np.float64]
    post: npt.NDArray[np.float64]
    between: npt.NDArray[np.float64]
    method: Method
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        """The raw embedding size the back-end was trained on."""
        return int(self.mean.shape[0])

    def project(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Raw embeddings (n, d) or (d,) -> projected, length-normalised (n, k)."""
        v = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if v.shape[1] != self.input_dim:
            raise ValueError(f"embedding of size {v.shape[1]}, back-end expects {self.input_dim}")
        y = (v - self.mean) @ self.projection
        norm = np.linalg.norm(y, axis=1, keepdims=True)
        # Length normalisation to the expected radius sqrt(k) keeps PLDA's scale.
        return np.asarray((y / np.maximum(norm, 1e-12) * np.sqrt(y.shape[1])) @ self.post)

    def score_matrix(self, templates: npt.ArrayLike, probes: npt.ArrayLike) -> np.ndarray:
        """Scores of every template (rows) against every probe (columns)."""
        a, b = self.project(templates), self.project(probes)
        if self.method == "cosine":
            k = a.shape[1]
            return np.asarray((a @ b.T) / k)
        return _plda_llr(a, b, self.between)

    def score(self, template: npt.ArrayLike, probe: npt.ArrayLike) -> float:
        """The score of one template against one probe (higher means more alike)."""
        return float(self.score_matrix(template, probe)[0, 0])


def _plda_llr(a: np.ndarray, b: np.ndarray, between: np.ndarray) -> np.ndarray:
    """Two-covariance PLDA log-likelihood ratios, same vs. different speaker.

    In the projected space the within-speaker covariance is ``I`` and the
    between-speaker one ``diag(between)``; per dimension, with ``s = between``::

        LLR = log(s + 1) - log(2s + 1) / 2
              - ((s + 1)(x^2 + y^2) - 2 s x y) / (2 (2s + 1)) + (x^2 + y^2) / (2 (s + 1))
    """
    s = between
    c_same = (s + 1) / (2 * (2 * s + 1))
    c_diff = 1 / (2 * (s + 1))
    sq = c_diff - c_same  # weight of x^2 and of y^2
    cross = s / (2 * s + 1)  # weight of x * y
    const = float(np.sum(np.log(s + 1) - 0.5 * np.log(2 * s + 1)))
    return np.asarray(const + ((a * a) @ sq)[:, None] + ((b * b) @ sq)[None, :] + (a * cross) @ b.T)


def _scatter(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(within-speaker covariance, between-speaker covariance of means, number of speakers)."""
    classes = np.unique(labels)
    d = x.shape[1]
    sw = np.zeros((d, d))
    means = np.empty((len(classes), d))
    for i, c in enumerate(classes):
        xc = x[labels == c]
        means[i] = xc.mean(0)
        dev = xc - means[i]
        sw += dev.T @ dev
    sw /= len(x)
    centred = means - means.mean(0)
    sb = centred.T @ centred / len(classes)
    return sw, sb, len(classes)


def fit(
    vectors: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    dim: int = 100,
    method: Method = "plda",
    shrink: float = 0.05,
    meta: dict[str, Any] | None = None,
) -> Backend:
    """Fit the back-end on raw embeddings of labelled speakers.

    Args:
        vectors: Raw embeddings, (n, d).
        labels: The speaker of each row.
        dim: LDA dimensions kept (at most the number of speakers - 1 and ``d``).
        method: How projected vectors are scored.
        shrink: Within-class scatter regularisation, as a fraction of its mean
            variance added to the diagonal (few speakers, many dimensions).
        meta: Provenance to store with the parameters.
    """
    x = np.asarray(vectors, dtype=np.float64)
    y = np.asarray(labels)
    mean = x.mean(0)
    xc = x - mean
    sw, sb, n_classes = _scatter(xc, y)
    sw_reg = sw + shrink * np.trace(sw) / sw.shape[0] * np.eye(sw.shape[0])
    from scipy.linalg import eigh

    k = int(min(dim, n_classes - 1, x.shape[1]))
    values, vecs = eigh(sb, sw_reg)
    lda = vecs[:, np.argsort(values)[::-1][:k]]
    # WCCN: make the within-speaker covariance of the projected vectors the identity.
    z = xc @ lda
    w2, _, _ = _scatter(z, y)
    chol = np.linalg.cholesky(np.linalg.inv(w2 + 1e-9 * np.eye(k)))
    proj = lda @ chol
    post, between = np.eye(k), np.ones(k)
    if method == "plda":
        # After length normalisation: whiten the within-speaker covariance again, then
        # rotate so that the between-speaker covariance is diagonal.
        zn = Backend(mean, proj, post, between, "cosine").project(x)
        w3, _, _ = _scatter(zn, y)
        chol3 = np.linalg.cholesky(np.linalg.inv(w3 + 1e-9 * np.eye(k)))
        _, b3, _ = _scatter(zn @ chol3, y)
        bvals, bvecs = np.linalg.eigh(b3)
        post = chol3 @ bvecs
        between = np.maximum(bvals, 1e-6)
    return Backend(mean, proj, post, between, method, dict(meta or {}))
