"""bench/voice_fusion.py: templates from per-recording voiceprints, the fusion weight fitted
on the fitting group only, the pre-written choice rule, and the false-reject breakdown."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.voice_fusion import (
    CANDIDATES,
    Trials,
    choose,
    false_rejects,
    fit,
    leave_one_out_consistency,
    quality_weights,
    run_fold,
    template_kinds,
)
from bench.voice_speakers import shard_path


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def emb() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(5)
    out: dict[str, dict[str, Any]] = {}
    for name in [f"so762:{i}" for i in range(8)] + ["fsdd:a", "fsdd:b"]:
        cam, ge2e = 3 * rng.normal(size=12), 3 * rng.normal(size=20)
        each = [_unit(cam + rng.normal(size=(5, 12))) for _ in range(2)]
        out[name] = {
            "c5": _unit(np.stack([e.mean(0) for e in each])),
            "c5_each": each,
            "c5_voiced_s": [rng.uniform(1.0, 3.0, size=5).astype(np.float32) for _ in range(2)],
            "c5_snr_db": [rng.uniform(20, 40, size=5).astype(np.float32) for _ in range(2)],
            "t5": _unit(ge2e + rng.normal(size=(2, 20))),
            "cprobes": _unit(cam + rng.normal(size=(4, 12))),
            "probes": _unit(ge2e + 2 * rng.normal(size=(4, 20))),
            "probe_voiced_s": rng.uniform(1.5, 4.0, size=4).astype(np.float32),
            "probe_snr_db": rng.uniform(15, 45, size=4).astype(np.float32),
            "age": 10 if name.endswith(("0", "1")) else 30,
        }
    template_kinds(out)
    return out


def test_leave_one_out_consistency_singles_out_the_odd_recording() -> None:
    rng = np.random.default_rng(0)
    rows = _unit(np.vstack([5 + rng.normal(size=(4, 8)), -5 + rng.normal(size=(1, 8))]))
    cons = leave_one_out_consistency(rows.astype(np.float64))
    assert cons.argmin() == 4
    assert cons[4] < 0 < cons[:4].min()
    w = quality_weights(rows, np.ones(5))
    assert w[4] == 0.0
    assert w.sum() == pytest.approx(1.0)


def test_quality_weights_grow_with_voiced_seconds() -> None:
    rows = _unit(np.ones((3, 4)) + np.eye(3, 4) * 0.01).astype(np.float64)
    w = quality_weights(rows, np.array([1.0, 2.0, 4.0]))
    assert w[0] < w[1] < w[2]


def test_templates_are_aligned_with_the_enrollments(emb: dict[str, dict[str, Any]]) -> None:
    e = emb["so762:3"]
    for kind in ("centroid", "pooled_centroid", "qw_centroid"):
        assert e[kind].shape == (2, 12)
        np.testing.assert_allclose(np.linalg.norm(e[kind], axis=1), 1.0, rtol=1e-6)
    # mean_each: the mean of the five per-recording cosines
    p = e["cprobes"][0].astype(np.float64)
    expected = np.mean([float(r @ p) for r in e["c5_each"][1]])
    assert float(e["mean_each"][1] @ p) == pytest.approx(expected, rel=1e-6)


def test_fusion_weight_is_fitted_on_the_fitting_group_only(
    emb: dict[str, dict[str, Any]],
) -> None:
    cal = [f"so762:{i}" for i in range(4)] + ["fsdd:a"]
    held = [f"so762:{i}" for i in range(4, 8)] + ["fsdd:b"]
    w = fit(Trials(emb, cal), "fuse")["w"]
    assert 0.5 <= w <= 1.0
    # Changing the held-out speakers' GE2E voiceprints changes nothing the fold learns.
    other = {p: dict(e) for p, e in emb.items()}
    for p in held:
        other[p]["probes"] = -other[p]["probes"]
    a, b = run_fold(emb, cal, held, "fuse"), run_fold(other, cal, held, "fuse")
    assert a["params"] == b["params"] and a["threshold"] == b["threshold"]
    fused = Trials(emb, held).scores("fuse", {"w": 0.7})
    tr = Trials(emb, held)
    np.testing.assert_allclose(fused, 0.7 * tr.cam.raw + 0.3 * tr.ge2e)


def _inner(far_k: int, frr_k: int) -> dict[str, Any]:
    from bench.heldout import rate

    return {"pooled": {"far": rate(far_k, 100_000), "frr": rate(frr_k, 1_000)}}


def test_choice_rule_needs_a_half_point_gain_and_a_far_no_worse_than_raw5() -> None:
    inner = {c: _inner(100, 50) for c in CANDIDATES}
    assert choose(inner)[0] is None  # nobody better than raw5
    inner["centroid"] = _inner(100, 47)  # 0.3 point better: not enough
    assert choose(inner)[0] is None
    inner["fuse"] = _inner(100, 40)  # 1 point better
    assert choose(inner)[0] == "fuse"
    inner["fuse"] = _inner(200, 10)  # much lower FRR bought with FAR: not eligible
    picked, eligible = choose(inner)
    assert picked is None and "fuse" not in eligible


def test_false_rejects_are_broken_down_by_speaker_and_condition(
    emb: dict[str, dict[str, Any]],
) -> None:
    held = sorted(emb)
    adults = {p for p in held if emb[p]["age"] >= 16}
    res = false_rejects(emb, held, 0.9, adults)
    n = sum(len(emb[p]["cprobes"]) * len(emb[p]["c5"]) for p in held)
    assert res["false_rejects"]["n"] == n
    assert res["children"]["n"] + res["adults"]["n"] == n
    assert sum(b["n"] for b in res["probe_voiced_s"]) == n
    assert sum(b["k"] for b in res["enroll_min_consistency"]) == res["false_rejects"]["k"]
    assert sum(s["false_rejects"] for s in res["top_speakers"]) <= res["false_rejects"]["k"]


def test_shards_are_written_beside_the_cache(tmp_path: Any) -> None:
    cache = tmp_path / "v.pkl"
    assert shard_path(cache, 0, 2) == tmp_path / "v.pkl.part0of2"
    assert shard_path(cache, 1, 2) != shard_path(cache, 0, 2)
