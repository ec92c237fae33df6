"""bench/voice_fusion_safe.py: the subgroup-safe threshold rule (calibration group only),
the held-out data checks, the refresh margin rule and the fused enrollment consistency."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from bench.heldout import rate
from bench.voice_campplus_levers import heldout_subgroups
from bench.voice_fusion import Trials, unit
from bench.voice_fusion_safe import (
    FUSION_W,
    SAFE_RULE,
    consistency_scores,
    data_checks,
    fused,
    impostor_masks,
    refresh_report,
    safe_threshold,
)
from bench.voice_speakers import consistency_scores as campplus_consistency


def _unit(x: np.ndarray) -> np.ndarray:
    return unit(x).astype(np.float32)  # as the cache holds them


@pytest.fixture()
def emb() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(7)
    out: dict[str, dict[str, Any]] = {}
    for name in [f"so762:{i}" for i in range(8)] + ["fsdd:a", "fsdd:b"]:
        cam, ge2e = 2 * rng.normal(size=12), 2 * rng.normal(size=20)
        out[name] = {
            "c5": _unit(cam + rng.normal(size=(2, 12))),
            "c5_each": [_unit(cam + rng.normal(size=(5, 12))) for _ in range(2)],
            "t5_each": [_unit(ge2e + rng.normal(size=(5, 20))) for _ in range(2)],
            "t5": _unit(ge2e + rng.normal(size=(2, 20))),
            "cprobes": _unit(cam + rng.normal(size=(4, 12))),
            "probes": _unit(ge2e + 2 * rng.normal(size=(4, 20))),
            "age": 10 if name.endswith(("0", "1", "2")) else 30,
        }
    return out


def _groups(emb: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, set[str]]]:
    group = sorted(emb)
    adults = {p for p in group if emb[p]["age"] >= 16}
    return group, heldout_subgroups(group, adults)


def test_the_rule_is_written_down_with_its_disclosure() -> None:
    assert FUSION_W == 0.6
    assert "after the second round's held-out result was seen" in SAFE_RULE
    assert "0.6 * cos_campplus + 0.4 * cos_ge2e" in SAFE_RULE


def test_safe_threshold_lets_no_subgroup_pass_more_than_the_cosine(
    emb: dict[str, dict[str, Any]],
) -> None:
    group, subgroups = _groups(emb)
    tr = Trials(emb, group)
    masks = impostor_masks(tr, group, subgroups)
    assert set(masks) == {"all", "adults", "children", "fsdd_librispeech"}
    fs = fused(tr)
    np.testing.assert_allclose(fs, 0.6 * tr.cam.raw + 0.4 * tr.ge2e)
    cos_t = float(np.quantile(tr.cam.raw[masks["all"]], 0.9))
    rule = safe_threshold(fs, tr.cam.raw, masks, cos_t, target=0.2)
    t = rule["threshold"]
    assert t == round(t, 3)
    for mask in masks.values():
        assert (fs[mask] >= t).sum() <= (tr.cam.raw[mask] >= cos_t).sum()
    assert (fs[masks["all"]] >= t).sum() <= np.floor(0.2 * masks["all"].sum())
    # The smallest such threshold on the grid: one step lower breaks a binding constraint.
    lower = round(t - 0.001, 3)
    assert any(
        (fs[mask] >= lower).sum() > rule["calibration_cosine_far"][m]["k"]
        or (m == "all" and (fs[mask] >= lower).sum() > np.floor(0.2 * mask.sum()))
        for m, mask in masks.items()
    )
    assert rule["binding"] and all(rule["lowest_per_constraint"][b] == t for b in rule["binding"])


def test_a_subgroup_the_cosine_never_lets_through_must_stay_shut() -> None:
    cosine = np.array([[0.9, 0.1, 0.2, 0.3]])
    fusedm = np.array([[0.9, 0.5, 0.45, 0.2]])
    masks = {
        "all": np.array([[False, True, True, True]]),
        "children": np.array([[False, True, True, False]]),
    }
    rule = safe_threshold(fusedm, cosine, masks, cosine_t=0.25, target=1.0)
    # cosine: children 0 of 2 pass, all 1 of 3 pass; fused must let no child through.
    assert rule["threshold"] == 0.501
    assert rule["binding"] == ["children"]
    assert rule["calibration_fused_far"]["children"]["k"] == 0
    assert rule["calibration_fused_far"]["all"]["k"] == 0


def _result(far: tuple[int, int], frr: tuple[int, int], subs: dict[str, tuple[int, int]]):
    return {
        "heldout": {"far": rate(*far), "frr": rate(*frr)},
        "heldout_subgroups": {g: {"far": rate(*v)} for g, v in subs.items()},
    }


def test_data_checks_need_every_subgroup_under_the_cosine_upper_bound() -> None:
    cosine = _result(
        (337, 557_568), (179, 4_224), {"children": (316, 106_740), "adults": (21, 173_595)}
    )
    good = _result(
        (300, 557_568), (110, 4_224), {"children": (320, 106_740), "adults": (20, 173_595)}
    )
    assert all(data_checks(good, cosine).values())
    bad = _result(
        (300, 557_568), (110, 4_224), {"children": (411, 106_740), "adults": (20, 173_595)}
    )
    checks = data_checks(bad, cosine)
    assert not checks["children_far_at_most_cosine_upper_bound"]
    assert checks["adults_far_at_most_cosine_upper_bound"]
    high_frr = _result(
        (300, 557_568), (130, 4_224), {"children": (300, 106_740), "adults": (2, 173_595)}
    )
    assert not data_checks(high_frr, cosine)["frr_at_most_3.0%"]  # 3.08 %


def test_refresh_level_exceeds_every_calibration_impostor() -> None:
    cal_imp = np.array([0.2, 0.5, 0.81])
    r = refresh_report(cal_imp, np.array([0.95, 0.7]), np.array([0.3, 0.82]), 0.74)
    assert r["margin"] == 0.08 and r["pass_level"] == 0.82
    assert r["pass_level"] > cal_imp.max()
    assert r["heldout_impostors_at_or_above"]["k"] == 1
    assert r["heldout_genuine_at_or_above"]["k"] == 1
    exact = refresh_report(np.array([0.8]), np.array([0.9]), np.array([0.1]), 0.74)
    assert exact["pass_level"] > 0.8


def test_fused_consistency_with_weight_one_is_the_shipped_campplus_check(
    emb: dict[str, dict[str, Any]],
) -> None:
    people = sorted(emb)
    g1, m1 = consistency_scores(emb, people, random.Random(3), 1.0)
    g0, m0 = campplus_consistency(emb, people, random.Random(3))
    np.testing.assert_allclose(g1, g0, rtol=1e-6)
    np.testing.assert_allclose(m1, m0, rtol=1e-6)
    gf, mf = consistency_scores(emb, people, random.Random(3), FUSION_W)
    assert gf.shape == g0.shape and mf.shape == m0.shape
    assert np.median(gf) > np.median(mf)  # a swapped-in stranger lowers it
