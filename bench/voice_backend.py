"""A trained scoring back-end and a second embedding, two-fold by speaker (issue 18).

Reads the voiceprints cached by ``bench/voice_speakers.py`` (266 real speakers:
FSDD 6, LibriSpeech test-other 10, speechocean762 250; its cache holds GE2E and
CAM++ vectors) and compares, for GE2E (the voiceprint shipped until issue 18) and
CAM++ (shipped since, :mod:`biometrics.voice.campplus`):

- ``raw``: cosine of the raw embeddings (shipped);
- ``lda``: LDA + WCCN + length normalisation, then cosine;
- ``plda``: the same projection, then a two-covariance PLDA log-likelihood ratio
  (:mod:`biometrics.voice.backend`).

Protocol (the split of ``bench/voice_speakers.py``, seed 18, stratified): for each
fold the back-end is trained **only on the calibration group's** speakers (their
probe voiceprints and enrollment templates). Its threshold is chosen on the
calibration group too, by the FAR-0.1 % rule over *cross-fitted* scores: the
calibration group is split into four parts by speaker, a back-end trained on
three parts scores the trials of the fourth, so no threshold-setting score comes
from a speaker the scoring back-end was trained on (scores of training speakers
are over-separated and would set the threshold too low). The back-end trained
on the whole calibration group then scores the held-out group, at that
threshold. Both folds are pooled, with exact 95 % intervals, and the held-out
trials are also reported for adults and children separately.

A last diagnostic trains and calibrates on the 250 speechocean762 speakers only and
scores the 16 FSDD / LibriSpeech speakers (another domain).

Run from the repository root::

    flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/voice_backend.py

Writes ``bench/results/voice_backend.json`` and ``bench/results/voice_backend_det.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.heldout import at_threshold, calibrate, det_plot, frr_at_far, rate, split_people  # noqa: E402
from bench.voice_plda import Backend, fit  # noqa: E402
from bench.voice_speakers import SPLIT_SEED  # noqa: E402

RESULTS = ROOT / "bench" / "results"
INNER_PARTS = 4
#: Fixed before any held-out number was seen: LDA dimensions, within-scatter shrinkage.
DIM = 100
SHRINK = 0.05
EMBEDDINGS = {"ge2e": ("t5", "probes"), "campplus": ("c5", "cprobes")}
METHODS = ("raw", "lda", "plda")


def stratum(p: str, emb: dict[str, dict[str, Any]]) -> str:
    """The split stratum of speaker ``p`` (data source; speechocean762 by age group)."""
    if not p.startswith("so762:"):
        return p.split(":")[0]
    return "so762-" + ("adult" if emb[p].get("age", 0) >= 16 else "child")


class Trials:
    """Every template of ``people`` against every probe of ``people``, for one embedding."""

    def __init__(self, emb: dict[str, dict[str, Any]], people: list[str], kind: str) -> None:
        tkey, pkey = EMBEDDINGS[kind]
        self.t = np.vstack([emb[p][tkey] for p in people]).astype(np.float64)
        self.p = np.vstack([emb[p][pkey] for p in people]).astype(np.float64)
        self.t_owner = np.concatenate([[i] * len(emb[p][tkey]) for i, p in enumerate(people)])
        self.p_owner = np.concatenate([[i] * len(emb[p][pkey]) for i, p in enumerate(people)])
        self.people = people

    def scores(self, backend: Backend | None) -> np.ndarray:
        """The (templates x probes) score matrix: raw cosine when ``backend`` is None."""
        if backend is None:
            return np.asarray(self.t @ self.p.T)
        return backend.score_matrix(self.t, self.p)

    def split(self, s: np.ndarray, keep: set[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(genuine, impostor) scores; ``keep``: only trials whose two speakers are in it."""
        same = self.t_owner[:, None] == self.p_owner[None, :]
        mask = np.ones_like(same)
        if keep is not None:
            ok = np.array([p in keep for p in self.people])
            mask = ok[self.t_owner][:, None] & ok[self.p_owner][None, :]
        return s[same & mask], s[~same & mask]


def training_set(
    emb: dict[str, dict[str, Any]], people: list[str], kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Raw vectors and speaker labels of ``people`` (probes and templates) to fit on."""
    tkey, pkey = EMBEDDINGS[kind]
    xs, ys = [], []
    for p in people:
        for key in (pkey, tkey):
            xs.append(emb[p][key])
            ys += [p] * len(emb[p][key])
    return np.vstack(xs), np.array(ys)


def train(
    emb: dict[str, dict[str, Any]], people: list[str], kind: str, method: str
) -> Backend | None:
    """The back-end of ``method`` trained on ``people`` (None for raw cosine)."""
    if method == "raw":
        return None
    x, y = training_set(emb, people, kind)
    return fit(x, y, dim=DIM, method="cosine" if method == "lda" else "plda", shrink=SHRINK)


def cross_fitted_impostors(
    emb: dict[str, dict[str, Any]], people: list[str], kind: str, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores of ``people`` from back-ends that never saw the trial's part.

    ``people`` is dealt into ``INNER_PARTS`` parts per stratum; each part's trials
    (among its own speakers) are scored by a back-end trained on the other parts.
    """
    strata = {p: stratum(p, emb) for p in people}
    parts: list[list[str]] = [[] for _ in range(INNER_PARTS)]
    by_stratum: dict[str, list[str]] = {}
    for p in sorted(people):
        by_stratum.setdefault(strata[p], []).append(p)
    rng = np.random.default_rng(SPLIT_SEED)
    for members in by_stratum.values():
        for i, p in enumerate(rng.permutation(members)):
            parts[i % INNER_PARTS].append(str(p))
    gen, imp = [], []
    for i, part in enumerate(parts):
        rest = [p for j, q in enumerate(parts) if j != i for p in q]
        tr = Trials(emb, sorted(part), kind)
        g, m = tr.split(tr.scores(train(emb, rest, kind, method)))
        gen.append(g)
        imp.append(m)
    return np.concatenate(gen), np.concatenate(imp)


def run_fold(
    emb: dict[str, dict[str, Any]], cal: list[str], held: list[str], kind: str, method: str,
    groups: dict[str, set[str]],
) -> dict[str, Any]:  # fmt: skip
    """Train and calibrate on ``cal``, report on ``held`` (all, and per group)."""
    backend = train(emb, cal, kind, method)
    if method == "raw":
        tr = Trials(emb, cal, kind)
        _, cal_imp = tr.split(tr.scores(None))
    else:
        _, cal_imp = cross_fitted_impostors(emb, cal, kind, method)
    t = calibrate(cal_imp)["threshold"]
    naive = None
    if method != "raw":  # the biased rule, for comparison: training speakers' own trials
        trc = Trials(emb, cal, kind)
        naive = calibrate(trc.split(trc.scores(backend))[1])["threshold"]
    th = Trials(emb, held, kind)
    s = th.scores(backend)
    out: dict[str, Any] = {"threshold": t, "naive_threshold": naive}
    curves = {}
    for name, keep in groups.items():
        g, i = th.split(s, keep if name != "all" else None)
        res = at_threshold(g, i, t)
        res["frr_at_own_far_0.1%"] = frr_at_far(g, i, 0.001)[0]
        if naive is not None:
            res["at_naive_threshold"] = at_threshold(g, i, naive)
        out[name] = res
        curves[name] = (g, i)
    return out | {"_curves": curves}


def pooled(folds: list[dict[str, Any]], group: str, key: str = "") -> dict[str, Any]:
    """Pooled held-out FAR/FRR of ``group`` over the folds."""
    get = (lambda f: f[group][key]) if key else (lambda f: f[group])
    fa = sum(get(f)["far"]["k"] for f in folds)
    n_imp = sum(get(f)["far"]["n"] for f in folds)
    fr = sum(get(f)["frr"]["k"] for f in folds)
    n_gen = sum(get(f)["frr"]["n"] for f in folds)
    return {"far": rate(fa, n_imp), "frr": rate(fr, n_gen)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "billtalk-voice-speakers-v2.pkl"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    with args.cache.open("rb") as f:
        emb: dict[str, dict[str, Any]] = pickle.load(f)
    emb = {p: e for p, e in emb.items() if len(e["probes"])}
    people = sorted(emb)
    kinds = [k for k in EMBEDDINGS if all(EMBEDDINGS[k][1] in emb[p] for p in people)]
    cal, held = split_people(people, SPLIT_SEED, {p: stratum(p, emb) for p in people})
    adults = {p for p in people if not p.startswith("so762:") or emb[p].get("age", 0) >= 16}
    groups = {
        "all": set(people),
        "adults": adults,
        "children": set(people) - adults,
        "speechocean762": {p for p in people if p.startswith("so762:")},
    }
    info = {
        "speechocean762": "github.com/jimbozhang/speechocean762@613968e WAVE/, 250 speakers "
        "(README: free for commercial and non-commercial use; Hugging Face copy Apache-2.0)",
        "fsdd": "github.com/Jakobovski/free-spoken-digit-dataset@26eb9aa, 6 speakers, CC BY-SA 4.0",
        "librispeech": "LibriSpeech test-other, 10 speakers from "
        "github.com/resemble-ai/Resemblyzer@15d828e, CC BY 4.0",
    }
    out: dict[str, Any] = {
        "date": started.isoformat(timespec="minutes"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPU, "
        f"Python {platform.python_version()}",
        "load_avg_before": load_before,
        "data": info,
        "speakers": len(people),
        "adults": len(adults),
        "split": {"seed": SPLIT_SEED, "calibration": cal, "heldout": held},
        "lda_dim": DIM,
        "shrink": SHRINK,
        "inner_parts": INNER_PARTS,
        "results": {},
    }
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    marks: dict[str, list[tuple[str, float]]] = {}
    for kind in kinds:
        for method in METHODS:
            folds = []
            for name, c, h in (("A->B", cal, held), ("B->A", held, cal)):
                res = run_fold(emb, c, h, kind, method, groups)
                cur = res.pop("_curves")
                res["fold"] = name
                folds.append(res)
                if method != "lda":
                    label = f"{kind} {method}, held-out {name[-1]}"
                    curves[label] = cur["all"]
                    marks[label] = [(f"{res['threshold']:.3g}", res["threshold"])]
            summary = {g: pooled(folds, g) for g in groups}
            if method != "raw":
                summary["all_at_naive_threshold"] = pooled(folds, "all", "at_naive_threshold")
            out["results"][f"{kind}/{method}"] = {"folds": folds, "pooled": summary}
            brief = {g: (v["far"]["rate"], v["frr"]["rate"]) for g, v in summary.items()}
            print(kind, method, json.dumps(brief), file=sys.stderr)
    # Another domain: trained and calibrated on the 250 speechocean762 speakers only, scored
    # on the 16 FSDD / LibriSpeech speakers (other datasets, languages, recording set-ups).
    so = sorted(groups["speechocean762"])
    old = sorted(set(people) - groups["speechocean762"])
    out["cross_domain_so762_to_old16"] = {}
    for kind in kinds:
        for method in METHODS:
            res = run_fold(emb, so, old, kind, method, {"all": set(old)})
            res.pop("_curves")
            out["cross_domain_so762_to_old16"][f"{kind}/{method}"] = res
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["load_avg_after"] = os.getloadavg()
    title = (
        f"Voice, two-fold by speaker, {len(people)} real speakers: back-end trained\n"
        "and threshold set on the calibration half only (GE2E and CAM++, raw cosine shipped)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    det_plot(curves, [], RESULTS / "voice_backend_det.png", title, curve_marks=marks)
    (RESULTS / "voice_backend.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
