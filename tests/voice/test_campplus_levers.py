"""bench/voice_campplus_levers.py: the cohort is calibration speechocean762 speakers only,
S-norm is AS-norm over the whole cohort, and the duration-aware fit is a logistic regression."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.voice_campplus_levers import (
    cohort_speakers,
    fit,
    fit_logistic,
    run_fold,
    trial_scores,
)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def emb() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(11)
    out: dict[str, dict[str, Any]] = {}
    for name in [f"so762:{i}" for i in range(8)] + ["fsdd:a", "fsdd:b"]:
        centre = 3 * rng.normal(size=16)
        out[name] = {
            "c5": _unit(centre + rng.normal(size=(2, 16))),
            "c8": _unit(centre + rng.normal(size=(2, 16))),
            "cprobes": _unit(centre + rng.normal(size=(5, 16))),
            "probe_voiced_s": rng.uniform(1.5, 4.0, size=5).astype(np.float32),
        }
    return out


def test_the_cohort_holds_speechocean762_calibration_speakers_only(
    emb: dict[str, dict[str, Any]],
) -> None:
    cal = ["fsdd:a", "so762:0", "so762:1", "so762:2"]
    params = fit(emb, cal, "asnorm")
    assert params["cohort_speakers"] == cohort_speakers(cal) == ["so762:0", "so762:1", "so762:2"]
    assert params["cohort"].shape == (15, 16)
    # stored as float16, like the product's cohort file
    np.testing.assert_array_equal(params["cohort"], params["cohort"].astype(np.float16))


def test_snorm_uses_the_whole_cohort_on_held_out_speakers(emb: dict[str, dict[str, Any]]) -> None:
    cal = [f"so762:{i}" for i in range(4)]
    held = [f"so762:{i}" for i in range(4, 8)]
    params = fit(emb, cal, "snorm")
    sc, s = trial_scores(emb, held, "snorm", params)
    rows = params["cohort"]
    ct, cp = sc.t @ rows.T, sc.p @ rows.T
    expected = 0.5 * (
        (sc.raw - ct.mean(1)[:, None]) / ct.std(1)[:, None]
        + (sc.raw - cp.mean(1)[None, :]) / cp.std(1)[None, :]
    )
    np.testing.assert_allclose(s, expected, rtol=1e-6, atol=1e-9)


def test_logistic_fit_separates_and_is_balanced() -> None:
    rng = np.random.default_rng(3)
    s = np.concatenate([rng.normal(0.8, 0.05, 200), rng.normal(0.3, 0.1, 20_000)])
    y = np.arange(s.size) < 200
    x = np.stack([np.ones_like(s), s], axis=1)
    beta = fit_logistic(x, y)
    assert beta[1] > 0
    boundary = -beta[0] / beta[1]  # balanced classes: between the two means
    assert 0.5 < boundary < 0.75


def test_a_fold_reports_subgroups_at_the_calibration_threshold(
    emb: dict[str, dict[str, Any]],
) -> None:
    cal = [f"so762:{i}" for i in range(4)] + ["fsdd:a"]
    held = [f"so762:{i}" for i in range(4, 8)] + ["fsdd:b"]
    res = run_fold(emb, cal, held, "raw5", {"fsdd": {"fsdd:b"}})
    assert res["threshold"] == pytest.approx(round(res["threshold"], 3))
    assert res["heldout"]["frr"]["n"] == 5 * 2 * 5  # speakers x templates x probes
    assert res["heldout_subgroups"]["fsdd"]["frr"]["n"] == 10
    assert res["heldout_subgroups"]["fsdd"]["far"]["n"] == 0
