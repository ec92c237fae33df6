"""AS-norm of bench/voice_speakers.py: the vectorised scores equal the definition.

The benchmark's conclusion about cohort normalisation (issue 18) rests on two
properties checked here on small random voiceprints: each normalised score is
``0.5 * ((s - mu_t) / sd_t + (s - mu_p) / sd_p)`` over the ``k`` highest cohort
similarities, and a calibration trial's two speakers are left out of the cohort
on both sides (otherwise the calibration impostors would look lower than
held-out ones and the threshold would be too lax).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.voice_speakers import Scores, asnorm, method_scores


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def emb() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(7)
    out: dict[str, dict[str, Any]] = {}
    for i in range(6):
        centre = rng.normal(size=32)
        out[f"so762:{i}"] = {
            "t5": _unit(centre + rng.normal(size=(2, 32))),
            "t8": _unit(centre + rng.normal(size=(2, 32))),
            "probes": _unit(centre + rng.normal(size=(4, 32))),
        }
    return out


def _top_stats(x: np.ndarray, cohort: np.ndarray, k: int) -> tuple[float, float]:
    top = np.sort(cohort @ x)[::-1][:k]
    return float(top.mean()), float(top.std())


def test_calibration_trial_leaves_both_speakers_out(emb: dict[str, dict[str, Any]]) -> None:
    group = sorted(emb)
    sc = Scores(emb, group, "t5")
    cohort = np.vstack([emb[p]["probes"] for p in group]).astype(np.float64)
    owners = np.concatenate([[i] * 4 for i in range(len(group))])
    got = asnorm(sc, cohort, owners, k=5, per_speaker=4)
    t, p = 1, int(np.where(sc.p_owner == 3)[0][2])  # template of speaker 0, probe of speaker 3
    strangers = np.vstack(
        [emb[q]["probes"] for i, q in enumerate(group) if i not in (0, 3)]
    ).astype(np.float64)
    s = float(sc.t[t] @ sc.p[p])
    mt, st = _top_stats(sc.t[t], strangers, 5)
    mp, sp = _top_stats(sc.p[p], strangers, 5)
    assert got[t, p] == pytest.approx(0.5 * ((s - mt) / st + (s - mp) / sp))


def test_heldout_group_uses_the_whole_calibration_cohort(emb: dict[str, dict[str, Any]]) -> None:
    people = sorted(emb)
    cal, held = people[:3], people[3:]
    gen, imp, _ = method_scores(emb, held, "asnorm", cal, k=4)
    sc = Scores(emb, held, "t5")
    cohort = np.vstack([emb[p]["probes"] for p in cal]).astype(np.float64)
    expected = np.empty_like(sc.raw)
    for i, t in enumerate(sc.t):
        for j, p in enumerate(sc.p):
            mt, st = _top_stats(t, cohort, 4)
            mp, sp = _top_stats(p, cohort, 4)
            expected[i, j] = 0.5 * ((sc.raw[i, j] - mt) / st + (sc.raw[i, j] - mp) / sp)
    exp_gen, exp_imp, _ = sc.split(expected)
    np.testing.assert_allclose(gen, exp_gen)
    np.testing.assert_allclose(imp, exp_imp)
    assert gen.size == 3 * 2 * 4 and imp.size == 3 * 2 * 8
