"""The scoring back-end measured by bench/voice_backend.py (issue 18; not shipped).

Its conclusion (a PLDA / LDA back-end trained on some speakers does not separate
other speakers better than the raw cosine) rests on the back-end being right:
the PLDA score is the two-covariance log-likelihood ratio, the projection whitens
the within-speaker spread, and the calibration scores come from back-ends that
never saw the trial's speakers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bench.voice_backend import cross_fitted_impostors, training_set
from bench.voice_plda import _plda_llr, _scatter, fit


def test_plda_score_is_the_two_covariance_likelihood_ratio() -> None:
    rng = np.random.default_rng(3)
    between = np.array([2.0, 0.5, 0.1])
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    got = _plda_llr(a, b, between)
    for i in range(4):
        for j in range(5):
            same_cov = np.block(
                [[np.diag(between + 1), np.diag(between)], [np.diag(between), np.diag(between + 1)]]
            )
            same = multivariate_normal(np.zeros(6), same_cov).logpdf(np.r_[a[i], b[j]])
            diff = multivariate_normal(np.zeros(3), np.diag(between + 1)).logpdf(a[i])
            diff += multivariate_normal(np.zeros(3), np.diag(between + 1)).logpdf(b[j])
            assert got[i, j] == pytest.approx(same - diff, abs=1e-9)


def test_fitted_projection_whitens_the_within_speaker_spread() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 24))
    mix = rng.normal(size=(24, 24))
    x = np.repeat(centres, 8, axis=0) + rng.normal(size=(480, 24)) @ mix * 0.5
    y = np.repeat(np.arange(60), 8)
    b = fit(x, y, dim=16, method="cosine")
    z = (x - b.mean) @ b.projection
    within, _, _ = _scatter(z, y)
    np.testing.assert_allclose(within, np.eye(16), atol=1e-6)
    s = fit(x, y, dim=16, method="plda").score_matrix(x, x)
    same = y[:, None] == y[None, :]
    assert s[same].mean() > s[~same].mean()


def _emb() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(1)
    out: dict[str, dict[str, Any]] = {}
    for i in range(24):
        c = rng.normal(size=16)
        unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
        out[f"so762:{i:04d}"] = {
            "t5": unit(c + 0.5 * rng.normal(size=(2, 16))),
            "probes": unit(c + 0.8 * rng.normal(size=(4, 16))),
            "age": 20 if i % 2 else 10,
        }
    return out


def test_calibration_scores_come_from_backends_that_never_saw_the_speakers() -> None:
    emb = _emb()
    people = sorted(emb)
    seen: list[set[str]] = []
    import bench.voice_backend as vb

    real_train = vb.train

    def spy(e: dict[str, dict[str, Any]], ps: list[str], kind: str, method: str) -> Any:
        seen.append(set(ps))
        return real_train(e, ps, kind, method)

    vb.train = spy  # type: ignore[assignment]
    try:
        gen, imp = cross_fitted_impostors(emb, people, "ge2e", "plda")
    finally:
        vb.train = real_train  # type: ignore[assignment]
    assert len(seen) == vb.INNER_PARTS
    # Each part's back-end was trained on the other parts only; the parts cover everyone once.
    held_parts = [set(people) - s for s in seen]
    assert all(h and not (h & s) for h, s in zip(held_parts, seen, strict=True))
    assert sorted(p for h in held_parts for p in h) == people
    # Every genuine and impostor trial of every part was scored exactly once.
    n_t, n_p = 2, 4
    assert gen.size == len(people) * n_t * n_p
    assert gen.size + imp.size == sum((len(h) * n_t) * (len(h) * n_p) for h in held_parts)
    x, y = training_set(emb, people, "ge2e")
    assert x.shape == (len(people) * (n_t + n_p), 16) and len(set(y)) == len(people)
