"""CAM++ + GE2E score fusion at a subgroup-safe threshold (issue 18, third round).

The second round (``bench/voice_fusion.py``, 2026-12-07 23:06 UTC) picked the fusion
``0.6 * cos_campplus + 0.4 * cos_ge2e`` at 0.739 (FAR-0.1 % rule on the calibration
group); on the held-out group it rejected 2.3 % of genuine probes at FAR 0.078 %, but
children's FAR rose from 0.296 % (shipped CAM++ cosine at 0.706) to 0.385 %, and the
issue allows no change that raises anyone's false accepts. This script applies a new
threshold rule to the same fusion (weight 0.6 not re-picked), :data:`SAFE_RULE`.

**Disclosure.** The rule was written by the lead on 2026-12-08 at about 00:55 UTC,
*after* the second round's held-out result had been seen: the idea (fusion with GE2E),
the weight 0.6 and the wish to protect subgroups all come from that round, so this
held-out group is no longer untouched for the fusion. The threshold itself is chosen on
the calibration group only.

On the voiceprints cached by ``bench/voice_speakers.py`` (same speakers, enrollments,
probes, gates and seed-18 split; nothing is embedded here) it

1. checks that the cache reproduces the shipped cosine (0.706; held-out FAR
   337/557,568, FRR 179/4,224) and the second round's fusion (weight 0.6 fitted,
   0.739; FAR 434/557,568, FRR 96/4,224), and stops if not (:data:`REFERENCE`);
2. picks the fused threshold by :data:`SAFE_RULE` (:func:`safe_threshold`) on the
   calibration group;
3. reports the fusion at it on the held-out group, overall and per subgroup
   (adults, children, FSDD + LibriSpeech), beside the cosine at 0.706, with exact
   95 % intervals, and the data checks of the rule (:func:`data_checks`); the
   attack and timing checks come from ``bench/voice.py`` (the whole verifier);
4. reports, without using them to choose, the refresh margin and the enrollment
   consistency figures for the fused score by the rules the cosine used.

Run from the repository root (a few minutes of numpy, no timing)::

    chrt -i 0 nice -n 19 .venv/bin/python bench/voice_fusion_safe.py \
        --cache /work/data/cache/voice-speakers-v4.pkl

Writes ``bench/results/voice_fusion_safe.json`` and ``bench/results/voice_fusion_safe_det.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.heldout import TARGET_FAR, at_threshold, det_plot, rate  # noqa: E402
from bench.voice_campplus_levers import (  # noqa: E402
    heldout_subgroups,
    run_header,
    subgroup_results,
)
from bench.voice_fusion import Trials, load_voiceprints, run_fold, unit  # noqa: E402
from bench.voice_speakers import SPLIT_SEED, _round_up, speaker_groups  # noqa: E402

RESULTS = ROOT / "bench" / "results"
#: The fusion weight of CAM++ (GE2E gets the rest), as the second round's calibration-only
#: rule picked it; not re-picked here.
FUSION_W = 0.6
#: The shipped CAM++ raw cosine threshold every comparison is made against.
COSINE_THRESHOLD = 0.706
#: The most FRR the fusion may have on the held-out group (point estimate).
TARGET_FRR = 0.03
GRID = 0.001
SAFE_RULE = (
    "written by the lead 2026-12-08 ~00:55 UTC, after the second round's held-out result was "
    "seen (the fusion idea and its weight 0.6 come from that round). Candidate: fusion "
    "0.6 * cos_campplus + 0.4 * cos_ge2e (weight as picked by the second round's "
    "calibration-only rule; not re-picked). Threshold ('subgroup-safe FAR rule'): the "
    "smallest threshold on a 0.001 grid such that, on the calibration group only, the fused "
    "impostor FAR overall AND in each subgroup (adults, children, FSDD+LibriSpeech) is <= the "
    "shipped cosine's (CAM++ at 0.706) FAR on the same calibration trials and subgroup (where "
    "the cosine's subgroup FAR is 0, require 0), and overall <= 0.1 %. Ship only if on the "
    "held-out group at that threshold: FAR <= 0.1 %; FRR <= 3.0 % (point estimate) and below "
    "the cosine's 4.2 %; overall FAR and every subgroup's FAR <= the shipped cosine's upper "
    "95 % bound on the held-out group (overall 0.067 %, children 0.330 %, adults and "
    "FSDD/LibriSpeech likewise from the json); the attack runs not worse than the cosine; "
    "verification <= 1.5 s for 3 s of audio on one core. If any check fails: do NOT ship. "
    "Also report (without using it to choose) the refresh margin and enrollment-consistency "
    "figures for the fused score, with the same rules the cosine used (refresh: the pass "
    "level must exceed every calibration impostor trial; consistency: keep the CAM++ 0.65 "
    "check unless the data say otherwise by the old rule)."
)
#: What the cache must reproduce before anything else is computed (held-out group, seed 18).
REFERENCE = {
    "raw5": {"threshold": 0.706, "far": (337, 557_568), "frr": (179, 4_224)},
    "fuse": {"w": 0.6, "threshold": 0.739, "far": (434, 557_568), "frr": (96, 4_224)},
}


def fused(tr: Trials, w: float = FUSION_W) -> np.ndarray:
    """The (templates x probes) fused score matrix of ``tr``."""
    return w * tr.cam.raw + (1 - w) * tr.ge2e


def impostor_masks(tr: Trials, group: list[str], subgroups: dict[str, set[str]]) -> dict[str, Any]:
    """Boolean (templates x probes) masks of the impostor trials: ``all`` and per subgroup.

    A subgroup's trials are those whose template and probe both belong to its speakers.
    """
    sc = tr.cam
    imp = sc.t_owner[:, None] != sc.p_owner[None, :]
    out = {"all": imp}
    for name, members in subgroups.items():
        own = np.array([p in members for p in group])
        out[name] = imp & own[sc.t_owner][:, None] & own[sc.p_owner][None, :]
    return out


def safe_threshold(
    fused_scores: np.ndarray, cosine_scores: np.ndarray, masks: dict[str, np.ndarray],
    cosine_t: float = COSINE_THRESHOLD, target: float = TARGET_FAR, step: float = GRID,
) -> dict[str, Any]:  # fmt: skip
    """The subgroup-safe FAR rule (:data:`SAFE_RULE`) on one (calibration) group's trials.

    The smallest multiple of ``step`` at which the fused impostor trials that pass
    (score >= threshold) are, in every mask (``all`` and each subgroup), no more than the
    cosine's at ``cosine_t`` on the same trials (none where the cosine lets none
    through), and overall at most ``target``. Returns the threshold, each mask's allowed
    and fused counts at it, and which constraint bound it.
    """
    limits = {m: int((cosine_scores[mask] >= cosine_t).sum()) for m, mask in masks.items()}
    n_all = int(masks["all"].sum())
    allowed = {m: limits[m] for m in masks}
    allowed["all"] = min(limits["all"], int(np.floor(target * n_all)))
    lowest = {}
    for m, mask in masks.items():
        s = np.sort(fused_scores[mask])[::-1]
        k = allowed[m]
        # The fewest passes is k: the threshold must lie above the (k+1)-th highest score.
        i = int(np.floor(s[k] / step)) if k < s.size else int(np.floor(s[-1] / step))
        while (s >= round(i * step, 3)).sum() > k:  # on the grid, as the product compares
            i += 1
        while i > 0 and (s >= round((i - 1) * step, 3)).sum() <= k:
            i -= 1
        lowest[m] = round(i * step, 3)
    t = max(lowest.values())
    return {
        "threshold": t,
        "binding": sorted(m for m, v in lowest.items() if v == t),
        "lowest_per_constraint": lowest,
        "calibration_cosine_far": {
            m: rate(limits[m], int(mask.sum())) for m, mask in masks.items()
        },
        "calibration_fused_far": {
            m: rate(int((fused_scores[mask] >= t).sum()), int(mask.sum()))
            for m, mask in masks.items()
        },
    }


def data_checks(fuse: dict[str, Any], cosine: dict[str, Any]) -> dict[str, bool]:
    """The held-out checks of :data:`SAFE_RULE` that the cached voiceprints can decide.

    ``fuse`` and ``cosine`` are held-out results (``heldout`` and ``heldout_subgroups``).
    The attack and timing checks need the whole verifier (``bench/voice.py``).
    """
    f, c = fuse["heldout"], cosine["heldout"]
    return {
        "far_at_most_0.1%": f["far"]["rate"] <= TARGET_FAR,
        "frr_at_most_3.0%": f["frr"]["rate"] <= TARGET_FRR,
        "frr_below_cosine": f["frr"]["rate"] < c["frr"]["rate"],
        "far_at_most_cosine_upper_bound": f["far"]["rate"] <= c["far"]["ci95"][1],
        **{
            f"{g}_far_at_most_cosine_upper_bound": fuse["heldout_subgroups"][g]["far"]["rate"]
            <= cosine["heldout_subgroups"][g]["far"]["ci95"][1]
            for g in cosine["heldout_subgroups"]
        },
    }


def reproduces(raw5: dict[str, Any], fuse: dict[str, Any]) -> dict[str, Any]:
    """Whether the cache gives the shipped cosine's and the second round's figures."""
    got = {
        "raw5": {
            "threshold": raw5["threshold"],
            "far": (raw5["heldout"]["far"]["k"], raw5["heldout"]["far"]["n"]),
            "frr": (raw5["heldout"]["frr"]["k"], raw5["heldout"]["frr"]["n"]),
        },
        "fuse": {
            "w": fuse["params"]["w"],
            "threshold": fuse["threshold"],
            "far": (fuse["heldout"]["far"]["k"], fuse["heldout"]["far"]["n"]),
            "frr": (fuse["heldout"]["frr"]["k"], fuse["heldout"]["frr"]["n"]),
        },
    }
    return {"expected": REFERENCE, "got": got, "same": got == REFERENCE}


def worst_consistency(cam: np.ndarray, ge2e: np.ndarray, w: float) -> float:
    """The lowest fused leave-one-out consistency of one enrollment's five recordings.

    For each recording: ``w`` times its CAM++ cosine with the normalised mean of the
    other four CAM++ voiceprints plus ``1 - w`` times the same in GE2E (``w = 1``: the
    shipped CAM++ check).
    """

    def loo(rows: np.ndarray, i: int) -> float:
        return float(unit(np.delete(rows, i, 0).mean(0)) @ rows[i])

    return min(w * loo(cam, i) + (1 - w) * loo(ge2e, i) for i in range(len(cam)))


def consistency_scores(
    emb: dict[str, dict[str, Any]], people: list[str], rng: random.Random, w: float
) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, one-recording-swapped) worst consistencies of every enrollment of ``people``.

    The swaps are drawn as :func:`bench.voice_speakers.consistency_scores` draws them
    (same generator calls), the same recording of the same other speaker in both models,
    so ``w = 1`` gives its CAM++ figures.
    """
    genuine, mixed = [], []
    for p in people:
        for cam, ge2e in zip(emb[p]["c5_each"], emb[p]["t5_each"], strict=True):
            genuine.append(worst_consistency(cam, ge2e, w))
            q = rng.choice([x for x in people if x != p])
            j = rng.randrange(len(emb[q]["c5_each"]))  # what rng.choice(list) draws
            r = rng.randrange(5)
            cam2, ge2 = cam.copy(), ge2e.copy()
            slot = rng.randrange(5)
            cam2[slot] = emb[q]["c5_each"][j][r]
            ge2[slot] = emb[q]["t5_each"][j][r]
            mixed.append(worst_consistency(cam2, ge2, w))
    return np.array(genuine), np.array(mixed)


def consistency_report(
    emb: dict[str, dict[str, Any]], cal: list[str], held: list[str], w: float
) -> dict[str, Any]:
    """The old consistency rule on score ``w`` (highest 0.01 step refusing <= 1 % of the
    calibration group's genuine enrollments) and its held-out figures."""
    gc, mc = consistency_scores(emb, cal, random.Random(SPLIT_SEED), w)
    value = float(np.floor(np.quantile(gc, 0.01) * 100) / 100)
    hc, hm = consistency_scores(emb, held, random.Random(SPLIT_SEED + 1), w)
    return {
        "w": w,
        "value_by_old_rule": value,
        "calibration": {
            "genuine_refused": rate(int((gc < value).sum()), int(gc.size)),
            "mixed_caught": rate(int((mc < value).sum()), int(mc.size)),
        },
        "heldout": {
            "genuine_refused": rate(int((hc < value).sum()), int(hc.size)),
            "mixed_caught": rate(int((hm < value).sum()), int(hm.size)),
        },
    }


def refresh_report(
    cal_imp: np.ndarray, held_gen: np.ndarray, held_imp: np.ndarray, t: float
) -> dict[str, Any]:
    """The cosine's refresh rule on the fused score: a pass must exceed every calibration
    impostor trial; the margin is that distance above ``t``, rounded up to 0.01."""
    margin = _round_up(float(cal_imp.max()) - t, 0.01)
    level = t + margin
    if level <= float(cal_imp.max()):
        margin = round(margin + 0.01, 2)
        level = t + margin
    return {
        "margin": margin,
        "pass_level": round(level, 3),
        "calibration_max_impostor": float(cal_imp.max()),
        "heldout_impostors_at_or_above": rate(int((held_imp >= level).sum()), int(held_imp.size)),
        "heldout_genuine_at_or_above": rate(int((held_gen >= level).sum()), int(held_gen.size)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="bench/voice_speakers.py cache")
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    emb = load_voiceprints(args.cache)
    people, _strata, cal, held, adults = speaker_groups(emb)
    emb = {p: emb[p] for p in people}
    held_sub = heldout_subgroups(held, adults)
    cal_sub = heldout_subgroups(cal, adults)  # the same subgroups, among the calibration group

    # 1. Reproduce the shipped cosine and the second round's fusion, else stop.
    raw5 = run_fold(emb, cal, held, "raw5", held_sub)
    fuse2 = run_fold(emb, cal, held, "fuse", held_sub)
    cosine_curve = raw5.pop("_curve")
    fuse2.pop("_curve")
    check = reproduces(raw5, fuse2)
    print("reproduction", json.dumps(check["got"]), check["same"], file=sys.stderr)
    out: dict[str, Any] = run_header(started, load_before, args.cache, people, cal, held) | {
        "safe_rule": SAFE_RULE,
        "fusion_w": FUSION_W,
        "reproduction": check,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not check["same"]:
        out["load_avg_after"] = os.getloadavg()
        (RESULTS / "voice_fusion_safe.json").write_text(json.dumps(out, indent=2))
        sys.exit("the cache does not reproduce the shipped figures; nothing else computed")

    # 2. The threshold, on the calibration group only.
    ctr = Trials(emb, cal)
    cfs = fused(ctr)
    rule = safe_threshold(cfs, ctr.cam.raw, impostor_masks(ctr, cal, cal_sub))
    t = rule["threshold"]
    cg, ci = ctr.split(cfs)
    print("safe threshold", t, rule["binding"], rule["lowest_per_constraint"], file=sys.stderr)

    # 3. The held-out group at it, beside the cosine.
    htr = Trials(emb, held)
    hfs = fused(htr)
    hg, hi = htr.split(hfs)
    safe = {
        "threshold": t,
        "calibration": at_threshold(cg, ci, t),
        "heldout": at_threshold(hg, hi, t) | {"max_impostor": float(hi.max())},
        "heldout_subgroups": subgroup_results(htr.cam, hfs, held, held_sub, t),
    }
    checks = data_checks(safe, raw5)
    print("held-out", json.dumps({k: safe["heldout"][k]["rate"] for k in ("far", "frr")}),
          json.dumps(checks), file=sys.stderr)  # fmt: skip

    # 4. Reported, not used to choose: refresh margin and enrollment consistency.
    out |= {
        "rule": rule,
        "cosine": {
            k: raw5[k] for k in ("threshold", "calibration", "heldout", "heldout_subgroups")
        },
        "second_round_fusion": {
            k: fuse2[k] for k in ("params", "threshold", "heldout", "heldout_subgroups")
        },
        "safe_fusion": safe,
        "data_checks": checks,
        "data_checks_pass": all(checks.values()),
        "pending_checks": "attacks (bench/voice.py --attacks-only) and timing (--timing-only) "
        "through the whole verifier",
        "refresh": refresh_report(ci, hg, hi, t),
        "consistency": {
            "campplus": consistency_report(emb, cal, held, 1.0),
            "fused": consistency_report(emb, cal, held, FUSION_W),
        },
    }
    det_plot(
        {
            "held-out, CAM++ cosine (shipped)": cosine_curve,
            f"held-out, fusion {FUSION_W:g} CAM++ + {1 - FUSION_W:g} GE2E": (hg, hi),
        },
        [],
        RESULTS / "voice_fusion_safe_det.png",
        f"Voice, held-out group ({len(held)} of {len(people)} speakers); thresholds from the "
        "calibration group only\nfusion: subgroup-safe rule (no calibration subgroup's FAR "
        "above the cosine's)",
        curve_marks={
            "held-out, CAM++ cosine (shipped)": [(f"{COSINE_THRESHOLD:.3f}", COSINE_THRESHOLD)],
            f"held-out, fusion {FUSION_W:g} CAM++ + {1 - FUSION_W:g} GE2E": [
                (f"safe {t:.3f}", t),
                (f"2nd round {fuse2['threshold']:.3f}", fuse2["threshold"]),
            ],
        },
    )
    out["load_avg_after"] = os.getloadavg()
    (RESULTS / "voice_fusion_safe.json").write_text(json.dumps(out, indent=2))
    print(json.dumps({k: out[k] for k in ("data_checks", "data_checks_pass", "refresh")}))


if __name__ == "__main__":
    main()
