"""The held-out protocol shared by ``bench/face.py`` and ``bench/voice.py``.

People, not samples, are split: a seeded shuffle puts every identity (or
speaker) either in the *calibration* group, whose trials choose the threshold,
or in the *held-out* group, whose trials alone are used to report FAR and FRR.
Both lists are written into the results file, so the split can be checked and
re-made (:func:`split_people`). :func:`two_fold` then swaps the roles of the two
groups (calibrate on A, report on B; calibrate on B, report on A) and pools the
held-out trials of both folds, so every identity is held out exactly once.
Error rates carry exact 95 % Clopper-Pearson intervals (``ci95``; the Wilson
interval is kept beside it as ``wilson95``). Trials that share a template or a
probe are correlated, so both intervals are optimistic about the number of
independent trials.

Scores are "higher means more alike" here; face distances are negated by the
caller so one set of functions serves both.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TARGET_FAR = 0.001
Z_TAIL = 3.090  # one-sided standard-normal quantile for 0.1 %


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion ``k / n`` (``(0, 1)`` when ``n == 0``)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided ``1 - alpha`` interval of ``k / n``."""
    from scipy.stats import beta

    if n == 0:
        return 0.0, 1.0
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def rate(k: int, n: int) -> dict[str, Any]:
    """``{"k", "n", "rate", "ci95", "wilson95"}`` for ``k`` errors out of ``n`` trials.

    ``ci95`` is the exact Clopper-Pearson interval, ``wilson95`` the Wilson one.
    """
    return {
        "k": k,
        "n": n,
        "rate": k / n if n else 0.0,
        "ci95": list(clopper_pearson(k, n)),
        "wilson95": list(wilson(k, n)),
    }


def split_people(
    people: Iterable[str], seed: int, strata: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """Split identities into (calibration, held-out) halves, reproducibly.

    Each stratum (e.g. the data source) is shuffled with ``random.Random(seed)``
    and dealt alternately, so both groups get people from every source.
    """
    strata = strata or {}
    groups: dict[str, list[str]] = {}
    for p in sorted(set(people)):
        groups.setdefault(strata.get(p, ""), []).append(p)
    rng = random.Random(seed)
    cal: list[str] = []
    held: list[str] = []
    turn = 0
    for key in sorted(groups):
        members = groups[key][:]
        rng.shuffle(members)
        for p in members:
            (cal if turn % 2 == 0 else held).append(p)
            turn += 1
    return sorted(cal), sorted(held)


def calibrate(
    impostor: np.ndarray, within: np.ndarray | None = None, target: float = TARGET_FAR
) -> dict[str, float]:
    """The threshold for ``target`` FAR from calibration impostor scores (higher = alike).

    The threshold is the empirical quantile: the score that at most ``target``
    of the calibration impostor trials reach (with a few thousand trials this
    is set by the two or three most similar trials, i.e. by the look-alikes the
    calibration group holds). Normal-tail estimates, ``mean + 3.09 sd`` of the
    impostor trials within one data source and of all of them, are reported
    beside it as a diagnostic and not used: similarity scores are bounded and
    skewed, and a normal fit overstates their upper tail (voice: 0.86 against
    an observed calibration maximum of 0.82). This rule was fixed after a first
    run that took the stricter of the empirical and the pooled-normal estimate
    (see docs/face.md, docs/voice.md).
    """
    imp = np.sort(np.asarray(impostor, dtype=np.float64))
    allowed = math.floor(target * imp.size)
    empirical = float(imp[::-1][allowed]) if allowed < imp.size else float(imp[0])
    same = imp if within is None else np.asarray(within, dtype=np.float64)
    return {
        "empirical": empirical,
        "gaussian_within_source": float(same.mean() + Z_TAIL * same.std(ddof=1)),
        "gaussian_pooled": float(imp.mean() + Z_TAIL * imp.std(ddof=1)),
        "threshold": empirical,
    }


def at_threshold(genuine: np.ndarray, impostor: np.ndarray, t: float) -> dict[str, Any]:
    """FAR (impostor score >= t) and FRR (genuine score < t) with Wilson intervals."""
    gen = np.asarray(genuine)
    imp = np.asarray(impostor)
    return {
        "threshold": t,
        "far": rate(int((imp >= t).sum()), int(imp.size)),
        "frr": rate(int((gen < t).sum()), int(gen.size)),
    }


Trials = tuple[np.ndarray, np.ndarray, np.ndarray]


def two_fold(
    groups: tuple[list[str], list[str]],
    trials: Callable[[list[str]], Trials],
    *,
    shipped: float | None = None,
    target: float = TARGET_FAR,
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]:
    """Two-fold cross-validation by identity; (summary, pooled held-out (genuine, impostor)).

    Fold 1 calibrates (:func:`calibrate`) on group A's trials and reports on
    group B's; fold 2 the other way round. ``trials(group)`` returns the
    genuine, impostor and within-source impostor scores among the members of
    ``group`` only, so no trial of a fold's report involves a calibration
    identity. The pooled error counts add each fold's errors at *its own*
    threshold. ``shipped``, if given, is also applied to each group as a
    diagnostic (it is not held out when it was calibrated on everyone).
    ``target`` is the calibration FAR (0.1 % by default; a stricter one aims
    the calibrated threshold below the target, so that the held-out FAR's
    upper confidence bound can reach it).
    """
    a, b = groups
    folds = []
    gens, imps = [], []
    fa = fr = n_imp = n_gen = 0
    for name, cal, held in (("A->B", a, b), ("B->A", b, a)):
        _, ci, cw = trials(cal)
        hg, hi, _ = trials(held)
        t = calibrate(ci, cw, target)["threshold"]
        res = at_threshold(hg, hi, t)
        fold: dict[str, Any] = {
            "fold": name,
            "calibration": cal,
            "heldout": held,
            "calibration_impostor_trials": int(ci.size),
            "threshold": t,
            "heldout_at_threshold": res,
            "heldout_max_impostor": float(hi.max()) if hi.size else None,
        }
        if shipped is not None:
            fold["heldout_at_shipped"] = at_threshold(hg, hi, shipped)
        folds.append(fold)
        fa += res["far"]["k"]
        n_imp += res["far"]["n"]
        fr += res["frr"]["k"]
        n_gen += res["frr"]["n"]
        gens.append(hg)
        imps.append(hi)
    summary = {
        "calibration_target_far": target,
        "folds": folds,
        "pooled_heldout": {"far": rate(fa, n_imp), "frr": rate(fr, n_gen)},
    }
    return summary, (np.concatenate(gens), np.concatenate(imps))


def cross_validate(
    groups: tuple[list[str], list[str]],
    trials: Callable[[list[str]], Trials],
    *,
    shipped: float,
    path: Path,
    title: str,
    distance: bool = False,
) -> dict[str, Any]:
    """:func:`two_fold` with the FAR 0.1 % rule and a strict 0.01 % rule, and their DET plot.

    Returns ``{"two_fold": ..., "two_fold_strict": ...}``; each also holds
    ``all_people_rule_threshold``, the rule applied to the trials among all
    identities (what shipping the rule on everyone would give). Scores are
    "higher = alike"; with ``distance=True`` ``shipped`` and the plot's marks
    are distances (the caller's scores are negated distances).
    """
    a, b = groups
    _, all_imp, all_within = trials(a + b)
    curves_ab = ("held-out B (fold A->B)", "held-out A (fold B->A)")
    marks: dict[str, list[tuple[str, float]]] = {}
    out: dict[str, Any] = {}
    pooled: tuple[np.ndarray, np.ndarray] | None = None
    sign = -1.0 if distance else 1.0
    for key, target in (("two_fold", TARGET_FAR), ("two_fold_strict", TARGET_FAR / 10)):
        cv, pooled_t = two_fold(groups, trials, shipped=sign * shipped, target=target)
        cv["all_people_rule_threshold"] = calibrate(all_imp, all_within, target)["threshold"]
        out[key] = cv
        tag = "" if key == "two_fold" else "strict "
        for f, curve in zip(cv["folds"], curves_ab, strict=True):
            t = sign * f["threshold"]
            marks.setdefault(curve, []).append((f"{tag}{t:.3f}", t))
        pooled = pooled_t if pooled is None else pooled
    assert pooled is not None
    det_plot(
        {curves_ab[0]: trials(b)[:2], curves_ab[1]: trials(a)[:2], "pooled held-out": pooled},
        [(f"shipped {shipped:.3f}", shipped)],
        path,
        f"{title}\ndots: each fold's calibrated threshold (FAR 0.1 % rule; strict = 0.01 % rule)",
        distance=distance,
        curve_marks=marks,
    )
    return out


def frr_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float]:
    """(FRR, threshold) at the highest threshold whose empirical FAR is <= ``far``."""
    imp = np.sort(np.asarray(impostor))[::-1]
    allowed = math.floor(far * imp.size)
    t = float(np.nextafter(imp[allowed], np.inf)) if allowed < imp.size else float(imp[-1])
    return float((np.asarray(genuine) < t).mean()), t


def det_plot(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    marks: Sequence[tuple[str, float]],
    path: Path,
    title: str,
    *,
    distance: bool = False,
    curve_marks: dict[str, Sequence[tuple[str, float]]] | None = None,
) -> None:
    """A DET curve (FRR against FAR, log axes) per named (genuine, impostor) set.

    ``marks`` are (label, threshold) operating points drawn on every curve;
    with ``distance=True`` the thresholds are given as distances (the scores are
    negated distances). ``curve_marks`` adds operating points to one named
    curve only (e.g. each fold's threshold on its own held-out curve).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    floor = 1e-4
    for name, (gen, imp) in curves.items():
        # A rate of 0 is drawn at the floor (below 1/n, where the data cannot reach).
        ts = np.unique(np.concatenate([gen, imp]))
        if ts.size > 20_000:  # a million trials: a grid of quantiles draws the same curve
            ts = np.unique(np.quantile(ts, np.linspace(0, 1, 20_001)))
        s_imp, s_gen = np.sort(imp), np.sort(gen)
        far = 1.0 - np.searchsorted(s_imp, ts, side="left") / max(imp.size, 1)
        frr = np.searchsorted(s_gen, ts, side="left") / max(gen.size, 1)
        (line,) = ax.plot(
            np.maximum(far, floor),
            np.maximum(frr, floor),
            ls="--" if name.startswith("calibration") else "-",
            label=f"{name} ({gen.size} genuine / {imp.size} impostor)",
        )
        for label, t in [*marks, *(curve_marks or {}).get(name, ())]:
            st = -t if distance else t
            ax.plot(
                max(float((imp >= st).mean()), floor),
                max(float((gen < st).mean()), floor),
                "o",
                color=line.get_color(),
            )
            ax.annotate(
                label,
                (max(float((imp >= st).mean()), floor), max(float((gen < st).mean()), floor)),
                fontsize=7,
            )
    ax.axvline(TARGET_FAR, color="grey", ls=":", lw=1)
    ax.axhline(0.03, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FAR (false accepts)")
    ax.set_ylabel("FRR (false rejects)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
