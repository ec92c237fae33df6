"""The held-out protocol shared by ``bench/face.py`` and ``bench/voice.py``.

People, not samples, are split: a seeded shuffle puts every identity (or
speaker) either in the *calibration* group, whose trials choose the threshold,
or in the *held-out* group, whose trials alone are used to report FAR and FRR.
Both lists are written into the results file, so the split can be checked and
re-made (:func:`split_people`). Error rates carry 95 % Wilson score intervals.

Scores are "higher means more alike" here; face distances are negated by the
caller so one set of functions serves both.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
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


def rate(k: int, n: int) -> dict[str, Any]:
    """``{"k", "n", "rate", "ci95"}`` for ``k`` errors out of ``n`` trials."""
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else 0.0, "ci95": [lo, hi]}


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
) -> None:
    """A DET curve (FRR against FAR, log axes) per named (genuine, impostor) set.

    ``marks`` are (label, threshold) operating points drawn on every curve;
    with ``distance=True`` the thresholds are given as distances (the scores are
    negated distances).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    floor = 1e-4
    for name, (gen, imp) in curves.items():
        # A rate of 0 is drawn at the floor (below 1/n, where the data cannot reach).
        ts = np.unique(np.concatenate([gen, imp]))
        far = np.array([(imp >= t).mean() for t in ts])
        frr = np.array([(gen < t).mean() for t in ts])
        (line,) = ax.plot(
            np.maximum(far, floor),
            np.maximum(frr, floor),
            ls="--" if name.startswith("calibration") else "-",
            label=f"{name} ({gen.size} genuine / {imp.size} impostor)",
        )
        for label, t in marks:
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
