"""Face-verification benchmark: error rates, DET curve, attacks, speed and throughput.

Run from the repository root (the machine is shared, so be nice)::

    nice -n 10 .venv/bin/python bench/face.py

It reads ``../shared/data/faces`` (never copied into the repo) and writes:

* ``bench/results/face.json``: every number below;
* ``bench/results/face_det.png``: DET curve (FRR against FAR) for all pairs and
  the hardest subset, with the shipped thresholds marked;
* ``bench/results/face_distances.png``: genuine, impostor and attack distance
  distributions;
* ``bench/results/face_summary.md``: the tables pasted into ``bench/RESULTS.md``.

Pairs: genuine pairs are two ``role == pair`` photos of one person from
different ``photo_group``s (``derived`` resized copies are not independent);
impostor pairs are two ``pair`` photos of different people. Every pair is a
one-photo enrollment against one probe. The held-out estimate calibrates the
threshold (FAR <= 0.1%) on the other identities and applies it to the held-out
ones (leave-identities-out folds), as the checks outside this repo do.

``--protocol-only`` (issue 18) runs the held-out protocol instead on every source
it can reach, each read in place from a local mirror made by the search tool's
``fetch`` (``/work/.mirror/<owner>+<name>/repo``) at a pinned commit and extracted
to a temporary folder: serengil/deepface, justadudewhohacks/face-api.js and
debruine/webmorphR.stim (see :func:`protocol`). A source whose mirror is missing
is left out with a message, and the results file lists the photos per source.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from biometrics.face.errors import FaceError  # noqa: E402
from biometrics.face.settings import FaceSettings, get_face_settings  # noqa: E402

FACES = ROOT.parent / "shared" / "data" / "faces"
RESULTS = ROOT / "bench" / "results"
TARGET_FAR = 0.001
HARD_SUBSET = "dlib johns (5 middle-aged men, LFW-style crops)"


@dataclass(frozen=True)
class Photo:
    path: str
    person: str
    group: str
    role: str
    source: str


def manifest() -> list[Photo]:
    with (FACES / "manifest.csv").open() as fh:
        return [
            Photo(r["path"], r["person"], r["photo_group"], r["role"], r["source"])
            for r in csv.DictReader(fh)
        ]


def progress(iterable, desc: str, total: int | None = None):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False)


def encode_all(photos: Sequence[Photo]) -> dict[str, np.ndarray]:
    from biometrics.face.service import observe

    out = {}
    for p in progress(photos, "encoding photos"):
        try:
            obs = observe(FACES / p.path)
        except FaceError as exc:
            print(f"skip {p.path}: {exc.code}", file=sys.stderr)
            continue
        assert obs.encoding is not None
        out[p.path] = obs.encoding
    return out


def pair_distances(
    photos: Sequence[Photo], enc: dict[str, np.ndarray]
) -> tuple[list[tuple[Photo, Photo, float]], list[tuple[Photo, Photo, float]]]:
    usable = [p for p in photos if p.role == "pair" and p.path in enc]
    genuine, impostor = [], []
    for a, b in itertools.combinations(usable, 2):
        d = float(np.linalg.norm(enc[a.path] - enc[b.path]))
        if a.person == b.person:
            if a.group != b.group:
                genuine.append((a, b, d))
        else:
            impostor.append((a, b, d))
    return genuine, impostor


def rates(gen: np.ndarray, imp: np.ndarray, t: float) -> tuple[float, float]:
    """(FAR, FRR) at threshold ``t`` (match when distance <= t)."""
    far = float((imp <= t).mean()) if imp.size else 0.0
    frr = float((gen > t).mean()) if gen.size else 0.0
    return far, frr


def threshold_for_far(imp: np.ndarray, target: float) -> float:
    """The largest threshold whose FAR on ``imp`` is <= ``target``."""
    srt = np.sort(imp)
    allowed = int(np.floor(target * len(srt)))  # false accepts we may make
    # Accept strictly fewer than allowed+1 impostors: stay just below the (allowed+1)-th.
    return float(np.nextafter(srt[allowed], 0)) if allowed < len(srt) else float(srt[-1])


def heldout(genuine, impostor, folds: int = 5) -> dict[str, object]:  # type: ignore[no-untyped-def]
    people = sorted({x.person for a, b, _ in [*genuine, *impostor] for x in (a, b)})
    rng = np.random.default_rng(11)
    order = list(rng.permutation(people))
    fold_of = {p: i % folds for i, p in enumerate(order)}
    tot_fa = tot_imp = tot_fr = tot_gen = 0
    per_fold = []
    for k in range(folds):
        train_imp = np.array(
            [d for a, b, d in impostor if fold_of[a.person] != k and fold_of[b.person] != k]
        )
        t = threshold_for_far(train_imp, TARGET_FAR)
        test_gen = np.array([d for a, _, d in genuine if fold_of[a.person] == k])
        test_imp = np.array(
            [d for a, b, d in impostor if fold_of[a.person] == k and fold_of[b.person] == k]
            + [d for a, b, d in impostor if (fold_of[a.person] == k) != (fold_of[b.person] == k)]
        )
        fa, fr = int((test_imp <= t).sum()), int((test_gen > t).sum())
        tot_fa, tot_imp, tot_fr, tot_gen = (
            tot_fa + fa,
            tot_imp + test_imp.size,
            tot_fr + fr,
            tot_gen + test_gen.size,
        )
        per_fold.append(
            {
                "threshold": round(t, 4),
                "far": fa / max(1, test_imp.size),
                "frr": fr / max(1, test_gen.size),
                "genuine": int(test_gen.size),
                "impostor": int(test_imp.size),
            }
        )
    return {
        "folds": per_fold,
        "far": tot_fa / max(1, tot_imp),
        "frr": tot_fr / max(1, tot_gen),
        "false_accepts": tot_fa,
        "impostor_pairs": tot_imp,
        "false_rejects": tot_fr,
        "genuine_pairs": tot_gen,
    }


def attacks(photos: Sequence[Photo], enc: dict[str, np.ndarray], settings: FaceSettings):  # type: ignore[no-untyped-def]
    """Naive still-photo attacks through the real FaceVerifier under the payment policy."""
    import asyncio

    from biometrics.face.liveness import Motion  # noqa: F401  (import check)
    from biometrics.face.service import observe
    from biometrics.face.verifier import FaceVerifier
    from tests.face.synth import attack_variants
    from verification import Evidence, VerificationKind

    class _MemoryStore:
        """Holds one template in memory: the benchmark measures decisions, not the DB."""

        def __init__(self) -> None:
            self.vectors: dict[str, np.ndarray] = {}

        def load(self, resident_id: str, kind: str) -> np.ndarray | None:
            return self.vectors.get(resident_id)

        def is_enrolled(self, resident_id: str, kind: str) -> bool:
            return resident_id in self.vectors

    store = _MemoryStore()
    verifier = FaceVerifier(store, settings=settings, executor=ThreadPoolExecutor(1))  # type: ignore[arg-type]
    enrolled = [p for p in photos if p.role == "pair" and p.path in enc]
    by_kind: dict[str, list[dict[str, object]]] = {}
    derived_d = []
    for p in photos:
        if p.role == "derived":
            twin = next((q for q in enrolled if q.group == p.group), None)
            if twin is not None:
                with contextlib.suppress(FaceError):
                    derived_d.append(
                        float(np.linalg.norm(observe(FACES / p.path).encoding - enc[twin.path]))
                    )

    async def run() -> None:
        for p in progress(enrolled, "attacks"):
            store.vectors["r"] = enc[p.path][None, :]
            variants = attack_variants((FACES / p.path).read_bytes())
            for name, data in variants.items():
                challenge = await verifier.start("r")
                res = await verifier.verify("r", challenge, Evidence("image", data, "image/jpeg"))
                alone = res.passed and res.requires_also is None
                by_kind.setdefault(name, []).append(
                    {
                        "reason": res.reason,
                        "score": res.score,
                        "passed_alone": alone,
                        "passed_with_pin": res.passed and res.requires_also is VerificationKind.PIN,
                    }
                )

    asyncio.run(run())
    summary = {}
    for name, rows in by_kind.items():
        scores = [r["score"] for r in rows if r["score"] is not None]
        summary[name] = {
            "attempts": len(rows),
            "accepted_alone": sum(bool(r["passed_alone"]) for r in rows),
            "accepted_with_pin": sum(bool(r["passed_with_pin"]) for r in rows),
            "replay_rejected": sum(r["reason"] == "replay_suspected" for r in rows),
            "unusable": sum(r["score"] is None for r in rows),
            "median_distance": round(statistics.median(scores), 4) if scores else None,
            "distances": scores,
        }
    return summary, derived_d


def selfie_templates(photos: Sequence[Photo], n: int) -> list[np.ndarray]:
    """For each of the first ``n`` selfies of :func:`selfies_1280`, a genuine enrolled template.

    The template is the (always mirror-averaged) embedding of another photo of the
    same person from another photo group, as a real step-up compares a new selfie
    with the enrollment; the product's decision cost depends on how near the
    distance falls to a boundary, so timing needs realistic pairs.
    """
    from biometrics.face.service import observe

    chosen = _selfie_photos(photos, n)
    out = []
    for p in chosen:
        others = [
            q for q in photos if q.role == "pair" and q.person == p.person and q.group != p.group
        ]
        enc = observe(FACES / others[0].path).encoding if others else None
        out.append(np.zeros(128) + 9.0 if enc is None else enc)  # far: no genuine template
    return [t[None, :] for t in out]


def _selfie_photos(photos: Sequence[Photo], n: int) -> list[Photo]:
    from PIL import Image

    out = []
    for p in photos:
        if p.role != "pair":
            continue
        if max(Image.open(FACES / p.path).size) < 600:
            continue
        out.append(p)
        if len(out) >= n:
            break
    return out


def selfies_1280(photos: Sequence[Photo], n: int) -> list[bytes]:
    from PIL import Image, ImageOps

    out = []
    for p in photos:
        if p.role != "pair":
            continue
        img = ImageOps.exif_transpose(Image.open(FACES / p.path)).convert("RGB")
        if max(img.size) < 600:
            continue
        img.thumbnail((1280, 1280)) if max(img.size) > 1280 else None
        scale = 1280 / max(img.size)
        img = img.resize((round(img.size[0] * scale), round(img.size[1] * scale)))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
        if len(out) >= n:
            break
    return out


def timing(
    selfies: list[bytes], repeats: int, templates: list[np.ndarray] | None = None
) -> dict[str, object]:
    """Per-selfie latency in this (single) process, pinned to one core.

    With ``templates`` (one genuine template per selfie) each selfie is observed
    as the still step-up does now (mirror pass only near a boundary), and, in
    the same loop, always with both passes (``always_mirror_*``, the first
    issue-18 version) and with one pass only (``single_pass_*``, before issue 18).
    Interleaving the two keeps the shared machine's load the same for both.
    """
    from biometrics.face.engine import detect_faces
    from biometrics.face.images import load_image
    from biometrics.face.pool import observe_image

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from biometrics.face.engine import mirror_windows

    settings = get_face_settings()
    windows = mirror_windows(settings)
    observe_image(selfies[0], settings)  # warm up: load the models
    times, cpu, det0, det1, before_cpu, before_t = [], [], [], [], [], []
    single_cpu: list[float] = []
    second_pass = 0
    for _ in progress(range(repeats), "timing 1280px selfies"):
        for i, data in enumerate(selfies):
            t, c = time.perf_counter(), time.process_time()
            try:
                if templates is None:
                    observe_image(data, settings)
                else:
                    obs = observe_image(data, settings, templates[i], windows)
                    second_pass += int(obs.mirrored)
            except FaceError:
                continue
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            if templates is not None:
                t, c = time.perf_counter(), time.process_time()
                observe_image(data, settings)
                before_t.append(time.perf_counter() - t)
                before_cpu.append(time.process_time() - c)
                # Before issue 18: one ResNet pass, never the mirror (no boundary given).
                c = time.process_time()
                observe_image(data, settings, templates[i], ())
                single_cpu.append(time.process_time() - c)
    # Which window sent a selfie to the second pass: its single-pass distance to the template.
    single_distances: list[float] = []
    if templates is not None:
        from biometrics.face.matching import best_distance

        for data, template in zip(selfies, templates, strict=True):
            try:
                plain = observe_image(data, settings, template, ()).encoding
            except FaceError:
                continue
            single_distances.append(round(float(best_distance(template, plain)), 4))
    for data in selfies:
        rgb = load_image(data, settings).rgb
        for up, acc in ((0, det0), (1, det1)):
            c = time.process_time()
            detect_faces(rgb, up)
            acc.append(time.process_time() - c)
    return {
        "n": len(times),
        "p50_s": float(np.percentile(times, 50)),
        "p95_s": float(np.percentile(times, 95)),
        "min_s": float(np.min(times)),
        "max_s": float(np.max(times)),
        "cpu_p50_s": float(np.percentile(cpu, 50)),
        "cpu_p95_s": float(np.percentile(cpu, 95)),
        "hog_800px_upsample0_median_s": float(np.median(det0)),
        "hog_800px_upsample1_median_s": float(np.median(det1)),
        "mode": "still step-up against a genuine template (mirror pass near a boundary only)"
        if templates is not None
        else "always both passes",
        "second_pass_fraction": second_pass / len(times) if templates is not None else 1.0,
        "always_mirror_p50_s": float(np.percentile(before_t, 50)) if before_t else None,
        "always_mirror_cpu_p50_s": float(np.percentile(before_cpu, 50)) if before_cpu else None,
        "always_mirror_cpu_p95_s": float(np.percentile(before_cpu, 95)) if before_cpu else None,
        "single_pass_cpu_p50_s": float(np.percentile(single_cpu, 50)) if single_cpu else None,
        "single_pass_cpu_p95_s": float(np.percentile(single_cpu, 95)) if single_cpu else None,
        "mirror_windows": [list(w) for w in windows],
        "single_pass_distances": single_distances,
        "in_window": [
            next((f"{lo:.2f}-{hi:.2f}" for lo, hi in windows if lo <= d <= hi), None)
            for d in single_distances
        ],
    }


def throughput(selfies: list[bytes], workers: int, rounds: int) -> float:
    """Selfies per second through the product's process pool."""
    from biometrics.face.pool import make_executor, observe_image

    settings = get_face_settings()
    work = selfies * rounds
    with make_executor(workers) as ex:
        list(ex.map(observe_image, selfies[:workers] * 2, [settings] * (workers * 2)))  # warm
        t = time.perf_counter()
        for _ in ex.map(observe_image, work, [settings] * len(work)):
            pass
        return len(work) / (time.perf_counter() - t)


def video_timing(photos: Sequence[Photo], n: int) -> dict[str, object]:
    from biometrics.face.images import load_image
    from biometrics.face.pool import observe_video
    from tests.face.synth import face_crop, motion_clip

    settings = get_face_settings()
    times = []
    clips = []
    for p in [
        p for p in photos if p.role == "pair" and p.source.startswith(("ageitgey", "cmusat"))
    ][:n]:
        try:
            clips.append(
                motion_clip(face_crop(load_image(FACES / p.path).rgb), ["turn_left", "look_up"])
            )
        except (FaceError, IndexError):
            continue
    import biometrics.face.video as video_module
    from biometrics.face.engine import encode_chip, encode_chips

    def one_by_one(chips: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Before: each frame's chip and its mirror in separate ResNet passes."""
        return [encode_chip(c) for c in chips]

    cpu: list[float] = []
    cpu_one: list[float] = []
    same, diff = True, 0.0
    for clip in progress(clips, "video notes"):
        for _ in range(2):  # interleaved: batched (shipped), then one by one (before)
            t, c = time.perf_counter(), time.process_time()
            batched = observe_video(clip, settings)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            video_module.encode_chips = one_by_one  # type: ignore[assignment]
            try:
                c = time.process_time()
                single = observe_video(clip, settings)
                cpu_one.append(time.process_time() - c)
            finally:
                video_module.encode_chips = encode_chips
            for a, b in zip(batched.frames, single.frames, strict=True):
                if (a.encoding is None) != (b.encoding is None):
                    same = False
                elif a.encoding is not None and b.encoding is not None:
                    # With OpenBLAS a batch sums in another order: equal up to float32 rounding.
                    diff = max(diff, float(np.abs(a.encoding - b.encoding).max()))
    return {
        "clips": len(clips),
        "runs": len(times),
        "p50_s": float(np.median(times)),
        "max_s": float(np.max(times)),
        "cpu_p50_s": float(np.median(cpu)),
        "cpu_p95_s": float(np.percentile(cpu, 95)),
        "one_by_one_cpu_p50_s": float(np.median(cpu_one)),
        "one_by_one_cpu_p95_s": float(np.percentile(cpu_one, 95)),
        "same_frames_encoded": bool(same),
        "batch_vs_single_max_abs_diff": diff,
    }


def plots(gen: np.ndarray, imp: np.ndarray, hard_gen, hard_imp, attack_d, settings) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = np.linspace(0.2, 0.9, 701)
    fig, (ax_t, ax) = plt.subplots(1, 2, figsize=(12, 5))
    # Left: error rates against the threshold, so a perfectly separated set still shows
    # how wide the gap is; right: the DET curve (FRR against FAR).
    for g, i, label, style in (
        (gen, imp, "all pairs", "-"),
        (hard_gen, hard_imp, "hardest subset", ":"),
    ):
        far = np.array([rates(g, i, t)[0] for t in ts])
        frr = np.array([rates(g, i, t)[1] for t in ts])
        ax_t.plot(ts, np.maximum(far, 1e-4), "r" + style, label=f"FAR, {label}")
        ax_t.plot(ts, np.maximum(frr, 1e-4), "b" + style, label=f"FRR, {label}")
        ax.plot(np.maximum(far, 1e-5), np.maximum(frr, 1e-4), style, label=label)
    ax_t.axhline(3 / max(1, imp.size), c="r", lw=0.6, ls="--", label="FAR resolution (3/N)")
    for t, name in ((settings.threshold, "video"), (settings.still_threshold, "still")):
        ax_t.axvline(t, c="k", lw=0.8, ls="--")
        ax_t.text(t, 0.5, f" {name} {t}", rotation=90, va="center")
        far, frr = rates(gen, imp, t)
        ax.scatter([max(far, 1e-5)], [max(frr, 1e-4)], zorder=3)
        ax.annotate(
            f"{name} t={t}", (max(far, 1e-5), max(frr, 1e-4)),
            textcoords="offset points", xytext=(5, 5),
        )  # fmt: skip
    ax_t.set_yscale("log")
    ax_t.set_xlabel("distance threshold")
    ax_t.set_ylabel("error rate (floor 1e-4)")
    ax_t.set_title("FAR / FRR against the threshold")
    ax_t.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axvline(TARGET_FAR, ls="--", c="grey", lw=0.8)
    ax.set_xlabel("FAR (false accept rate, floor 1e-5)")
    ax.set_ylabel("FRR (false reject rate, floor 1e-4)")
    ax.set_title(f"DET, one-photo enrollment ({gen.size} genuine / {imp.size} impostor pairs)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "face_det.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1.2, 61)
    ax.hist(gen, bins=bins, alpha=0.6, label=f"genuine ({gen.size})", density=True)
    ax.hist(imp, bins=bins, alpha=0.6, label=f"impostor ({imp.size})", density=True)
    if attack_d:
        ax.hist(
            attack_d, bins=bins, alpha=0.6, label=f"degraded copies ({len(attack_d)})", density=True
        )
    for t, name in (
        (settings.threshold, "threshold"),
        (settings.still_threshold, "still"),
        (settings.replay_distance, "replay"),
    ):
        ax.axvline(t, ls="--", lw=0.8, c="k")
        ax.text(t, ax.get_ylim()[1] * 0.9, name, rotation=90, ha="right")
    ax.set_xlabel("distance to the enrolled photo")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "face_distances.png", dpi=120)
    plt.close(fig)


# --- held-out protocol (issue 18) ------------------------------------------------------------

DEEPFACE_REPO = Path("/work/.mirror/serengil+deepface/repo")
DEEPFACE_COMMIT = "243209fd7b46ecdecf72665cc25219f6e8181f25"
SPLIT_SEED = 18
#: Sources in the order they joined the protocol; each batch is split among itself.
SPLIT_BATCHES = (("shared", "deepface"), ("faceapi",), ("canada", "lisa", "london"))
#: Sources whose genuine pairs are mostly photos from different sessions or days
#: (London pairs are one session each).
CROSS_SESSION = ("shared", "deepface", "faceapi", "lisa")


def deepface_photos(folder: Path | None) -> list[Photo]:
    """The labelled test photos of serengil/deepface (MIT; ``tests/unit/dataset``).

    Identities come from the repository's own pair lists (``master.csv`` and
    ``face-recognition-pivot.csv``: "Yes" pairs are joined into one person).
    Without ``folder`` the files are extracted from a local mirror of the
    repository at :data:`DEEPFACE_COMMIT`.
    """
    if folder is None:
        if not DEEPFACE_REPO.is_dir():
            print("deepface photos not available; shared photos only", file=sys.stderr)
            return []
        tmp = _extract(DEEPFACE_REPO, DEEPFACE_COMMIT, ["tests/unit/dataset"], "deepface-")
        folder = tmp / "tests" / "unit" / "dataset"
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for name, col in (("master.csv", "Decision"), ("face-recognition-pivot.csv", "decision")):
        with (folder / name).open() as fh:
            for row in csv.DictReader(fh):
                a, b = Path(row["file_x"]).name, Path(row["file_y"]).name
                find(a), find(b)
                if row[col] == "Yes":
                    parent[find(a)] = find(b)
    return [
        Photo(str(folder / x), f"deepface:{find(x)}", x, "pair", "serengil/deepface")
        for x in sorted(parent)
    ]


FACEAPI_REPO = Path("/work/.mirror/justadudewhohacks+face-api.js/repo")
FACEAPI_COMMIT = "a86f011"


def _extract(repo: Path, commit: str, paths: Sequence[str], prefix: str) -> Path:
    """``git archive`` of ``paths`` at ``commit`` from a local mirror into a fresh temp folder.

    The photos are read in place there, outside the repository, and never copied into it.
    """
    import subprocess
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    archive = subprocess.run(
        ["git", f"--git-dir={repo}", "archive", commit, *paths], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "x", "-C", str(tmp)], input=archive, check=True)
    return tmp


def _tree(repo: Path, commit: str, folder: str) -> list[str]:
    """Every file path under ``folder`` at ``commit`` of a local mirror."""
    import subprocess

    return subprocess.run(
        ["git", f"--git-dir={repo}", "ls-tree", "-r", "--name-only", commit, folder],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip


def faceapi_photos() -> list[Photo]:
    """justadudewhohacks/face-api.js ``examples/images/<name>/<name><i>.png`` (MIT repository).

    Eight people, five different 150-px face crops each (actors of a TV series,
    collected by the repository's author for its face-recognition example),
    extracted from a local mirror of the repository at :data:`FACEAPI_COMMIT`.
    """
    if not FACEAPI_REPO.is_dir():
        print("face-api.js photos not available", file=sys.stderr)
        return []
    names = _tree(FACEAPI_REPO, FACEAPI_COMMIT, "examples/images")
    wanted = [n for n in names if n.count("/") == 3 and n.endswith(".png")]
    tmp = _extract(FACEAPI_REPO, FACEAPI_COMMIT, wanted, "faceapi-")
    return [
        Photo(str(tmp / n), f"faceapi:{n.split('/')[2]}", Path(n).stem, "pair", "face-api.js")
        for n in sorted(wanted)
    ]


WEBMORPH_REPO = Path("/work/.mirror/debruine+webmorphR.stim/repo")
WEBMORPH_COMMIT = "fa8b78fda2d659bb74ce62fcd99c4407551d2a77"
#: Sets of debruine/webmorphR.stim used, as (folder, source label). ``lisa`` and
#: ``zoom`` show one person (the package's author) on two occasions, so they are one
#: identity. ``composite`` (averages of several people), ``3dsk`` (licensed for
#: educational use only) and ``rainbow`` (not faces) are left out.
WEBMORPH_SETS = (
    ("inst/neutral_front", "london"),
    ("inst/smiling_front", "london"),
    ("inst/canada", "canada"),
    ("inst/lisa", "lisa"),
    ("inst/zoom", "lisa"),
)


def webmorph_photos() -> list[Photo]:
    """Photos of debruine/webmorphR.stim (CC BY 4.0; ``zoom`` CC0), read from a local mirror.

    * ``london``: the Face Research Lab London Set, 102 adults photographed in
      London in April 2012 who consented to research use, a neutral
      (``NNN_03.jpg``) and a smiling (``NNN_08.jpg``) frontal photo each, 1350 px
      (DeBruine & Jones 2017, doi:10.6084/m9.figshare.5047666.v5). Both photos
      come from one session, so their genuine pairs are easier than a resident's
      selfie months after enrolling: they are reported apart as well.
    * ``canada``: 40 young adults photographed at a university in Ontario, one
      photo each (doi:10.6084/m9.figshare.4220517.v1): impostor trials only.
    * ``lisa`` + ``zoom`` (CC0): one person, four webcam photos of varying
      position and rotation, and on another occasion four at head-to-camera
      distances of about 15-60 cm.
    """
    if not WEBMORPH_REPO.is_dir():
        print("webmorphR.stim photos not available", file=sys.stderr)
        return []
    folders = sorted({f for f, _ in WEBMORPH_SETS})
    names = [
        n for f in folders for n in _tree(WEBMORPH_REPO, WEBMORPH_COMMIT, f)
        if n.endswith(".jpg") and not Path(n).name.startswith("._")  # macOS resource forks
    ]  # fmt: skip
    tmp = _extract(WEBMORPH_REPO, WEBMORPH_COMMIT, names, "webmorph-")
    label = dict(WEBMORPH_SETS)
    out = []
    for n in sorted(names):
        source = label[str(Path(n).parent)]
        stem = Path(n).stem
        person = {"london": stem.split("_")[0], "canada": stem, "lisa": "1"}[source]
        out.append(Photo(str(tmp / n), f"{source}:{person}", stem, "pair", "webmorphR.stim"))
    return out


def protocol_encode(photos: Sequence[Photo]) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Both embeddings of every usable photo: ``plain`` (before) and ``mirror`` (shipped).

    The photo goes through the product's loader, detector and quality gates
    once; ``plain`` is the single ResNet pass the product used before issue 18,
    ``mirror`` the mean with the mirrored chip that it uses now
    (:func:`biometrics.face.engine.encode_chip`).
    """
    from biometrics.face.engine import analyze, encode_chip, face_chip, load_models
    from biometrics.face.images import load_image

    models = load_models()
    out: dict[str, dict[str, np.ndarray]] = {}
    refused: dict[str, int] = {}
    for p in progress(photos, "encoding (protocol)"):
        path = p.path if Path(p.path).is_absolute() else str(FACES / p.path)
        try:
            image = load_image(path)
            obs = analyze(image, encode_face=False)
        except FaceError as exc:
            refused[exc.code] = refused.get(exc.code, 0) + 1
            continue
        chip = np.ascontiguousarray(face_chip(image.rgb, obs.face))
        plain = np.asarray(models.encoder.compute_face_descriptor(chip), dtype=np.float64)
        out[p.path] = {"plain": plain, "mirror": encode_chip(chip)}
    return out, refused


def protocol(extra: Path | None) -> dict[str, object]:
    """Calibrate on one half of the identities, report on the other (single-photo enrollment).

    Also: gallery enrollment (3 photos, nearest decides) on held-out identities
    with enough photos, before (plain embedding, threshold 0.50) and after.
    """
    from bench.heldout import (
        at_threshold,
        calibrate,
        cross_validate,
        det_plot,
        frr_at_far,
        split_people,
    )

    settings = get_face_settings()
    photos = [p for p in manifest() if p.role == "pair"] + deepface_photos(extra)
    photos = [Photo(p.path, p.person if ":" in p.person else f"shared:{p.person}", p.group,
                    p.role, p.source) for p in photos]  # fmt: skip
    photos += faceapi_photos() + webmorph_photos()
    enc, refused = protocol_encode(photos)
    usable = [p for p in photos if p.path in enc]
    people = {p.person for p in usable}
    # Each batch of sources is split among itself with the same seed, in the order the
    # sources were added (first issue-18 split, then face-api.js, then webmorphR.stim),
    # so adding a batch never moves an identity of an earlier one to the other group.
    cal, held = [], []
    for batch in SPLIT_BATCHES:
        members = {p for p in people if p.split(":")[0] in batch}
        c, h = split_people(members, SPLIT_SEED, {p: p.split(":")[0] for p in members})
        cal, held = cal + c, held + h
    assert set(cal) | set(held) == people, "a source is missing from SPLIT_BATCHES"
    cal, held = sorted(cal), sorted(held)

    def trials(
        group: list[str], kind: str, sources: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Genuine, impostor, and impostor trials within one source (negated distances).

        ``sources``, if given, keeps only the genuine trials of those sources
        (impostor trials are always all of the group's).
        """
        members = [p for p in usable if p.person in set(group)]
        gen, imp, within = [], [], []
        for a, b in itertools.combinations(members, 2):
            d = float(np.linalg.norm(enc[a.path][kind] - enc[b.path][kind]))
            if a.person == b.person:
                if a.group != b.group and (sources is None or a.person.split(":")[0] in sources):
                    gen.append(-d)
            else:
                imp.append(-d)
                if a.person.split(":")[0] == b.person.split(":")[0]:
                    within.append(-d)
        return np.array(gen), np.array(imp), np.array(within)

    res: dict[str, object] = {
        "data": {
            "shared": "../shared/data/faces (role=pair; licences beside the images)",
            "deepface": f"github.com/serengil/deepface@{DEEPFACE_COMMIT[:7]} tests/unit/dataset, "
            "MIT licence for the repository; photos of public figures collected by its author",
            "faceapi": f"github.com/justadudewhohacks/face-api.js@{FACEAPI_COMMIT} "
            "examples/images/<name>/ (8 people x 5 crops of 150 px), MIT licence for the "
            "repository; photos of actors collected by its author",
            "webmorph": f"github.com/debruine/webmorphR.stim@{WEBMORPH_COMMIT[:7]} "
            "inst/neutral_front + inst/smiling_front (london: Face Research Lab London Set, "
            "102 consenting adults x 2 photos of one session, CC BY 4.0), inst/canada "
            "(40 people x 1 photo, CC BY 4.0), inst/lisa + inst/zoom (1 person x 8, CC0)",
            "photos_by_source": {
                src: sum(p.person.split(":")[0] == src for p in usable)
                for src in sorted({p.person.split(":")[0] for p in usable})
            },
            "photos_usable": len(usable),
            "refused_by_quality_gates": refused,
            "identities": len(people),
        },
        "split": {"seed": SPLIT_SEED, "calibration": cal, "heldout": held},
        "shipped_threshold": settings.threshold,
        "load_avg_after_encoding": os.getloadavg(),
    }
    curves = {}
    for kind, before_t in (("plain", 0.50), ("mirror", settings.threshold)):
        cg, ci, cw = trials(cal, kind)
        hg, hi, _ = trials(held, kind)
        rule = calibrate(ci, cw)
        calibrated = -rule["threshold"]
        frr01, t01 = frr_at_far(hg, hi, TARGET_FAR)
        res[kind] = {
            "calibration_trials": {"genuine": int(cg.size), "impostor": int(ci.size)},
            "calibrated_distance": round(calibrated, 4),
            "calibration_rule": {k: round(-v, 4) for k, v in rule.items()},
            "heldout_at_calibrated": at_threshold(hg, hi, -calibrated),
            "heldout_at_shipped": at_threshold(hg, hi, -before_t),
            "heldout_frr_at_empirical_far_0.1pct": {"frr": frr01, "distance": -t01},
            "heldout_min_impostor_distance": round(float(-hi.max()), 4),
            "all_identities_at_shipped": at_threshold(
                np.concatenate([cg, hg]), np.concatenate([ci, hi]), -before_t
            ),
        }
        # Genuine trials without the London set's (neutral and smiling of one session).
        xg, _, _ = trials(held, kind, CROSS_SESSION)
        res[kind]["heldout_cross_session_at_calibrated"] = at_threshold(xg, hi, -calibrated)
        res[kind]["heldout_cross_session_at_shipped"] = at_threshold(xg, hi, -before_t)
        # Trials sharing a photo or a pair of people are not independent: count people too.
        res[kind]["heldout_identity_pairs_accepted"] = {
            f"{t:.4f}": identity_pairs(usable, enc, held, kind, t) for t in (before_t, calibrated)
        }
        label = "before" if kind == "plain" else "after"
        curves[f"held-out, {label}"] = (hg, hi)
        curves[f"calibration, {label}"] = (cg, ci)
    cv = cross_validate(
        (cal, held),
        lambda g: trials(g, "mirror"),
        shipped=settings.threshold,
        path=RESULTS / "face_twofold_det.png",
        title="Face, two-fold cross-validation by identity (mirror-averaged, one-photo enrollment)",
        distance=True,
    )
    for key, report in cv.items():  # scores were negated distances: report distances
        report["all_identities_rule_distance"] = round(-report.pop("all_people_rule_threshold"), 4)
        for fold in report["folds"]:
            fold["distance"] = round(-fold.pop("threshold"), 4)
            fold["heldout_min_impostor_distance"] = round(-fold.pop("heldout_max_impostor"), 4)
        res[key] = report
    res["lookalikes"] = {
        name: lookalikes(usable, enc, group, 12) for name, group in (("calibration", cal),
                                                                     ("heldout", held))
    }  # fmt: skip
    res["conditional_mirror"] = conditional_mirror(usable, enc, cal, held, settings)
    res["load_avg_after"] = os.getloadavg()
    res["gallery"] = gallery_trials(usable, enc, held, settings.threshold)
    det_plot(
        curves,
        [("0.50", 0.50), (f"{settings.threshold:.2f}", settings.threshold)],
        RESULTS / "face_heldout_det.png",
        "Face, held-out identities, one-photo enrollment (before: plain; after: mirror-averaged)",
        distance=True,
    )
    return res


def identity_pairs(
    usable: Sequence[Photo],
    enc: dict[str, dict[str, np.ndarray]],
    group: list[str],
    kind: str,
    t: float,
) -> dict[str, object]:
    """Pairs of different people of ``group`` with at least one impostor trial at <= ``t``.

    The independent unit of a false accept is a pair of people (one look-alike
    pair yields up to four accepted trials when each has two photos), so this
    count and its interval are the conservative reading of FAR.
    """
    from bench.heldout import rate

    members = [p for p in usable if p.person in set(group)]
    accepted = {
        tuple(sorted((a.person, b.person)))
        for a, b in itertools.combinations(members, 2)
        if a.person != b.person
        and float(np.linalg.norm(enc[a.path][kind] - enc[b.path][kind])) <= t
    }
    n = len({p.person for p in members})
    return {**rate(len(accepted), n * (n - 1) // 2), "pairs": sorted(accepted)}


def lookalikes(
    usable: Sequence[Photo], enc: dict[str, dict[str, np.ndarray]], group: list[str], n: int
) -> list[dict[str, object]]:
    """The ``n`` closest impostor trials among ``group`` (mirror-averaged), by name."""
    members = [p for p in usable if p.person in set(group)]
    rows = [
        (float(np.linalg.norm(enc[a.path]["mirror"] - enc[b.path]["mirror"])), a, b)
        for a, b in itertools.combinations(members, 2)
        if a.person != b.person
    ]
    rows.sort(key=lambda r: r[0])
    return [
        {"distance": round(d, 4), "a": a.person, "a_photo": a.group, "b": b.person,
         "b_photo": b.group}
        for d, a, b in rows[:n]
    ]  # fmt: skip


def conditional_mirror(
    usable: Sequence[Photo],
    enc: dict[str, dict[str, np.ndarray]],
    cal: list[str],
    held: list[str],
    settings: FaceSettings,
) -> dict[str, object]:
    """The still step-up's conditional mirror pass, against always mirroring.

    Every ordered pair of photos of different groups is a trial: the first is
    the (mirror-averaged) enrolled photo, the second the probe. A probe's
    single-pass distance decides unless it falls in a window of
    :func:`~biometrics.face.engine.mirror_windows`; then the mirror-averaged one
    does. The still-threshold window was set from the calibration identities'
    largest shift; the held-out identities show whether any decision changes.
    """
    from bench.heldout import at_threshold
    from biometrics.face.engine import mirror_windows, needs_mirror

    boundaries = (settings.still_threshold, settings.replay_distance)
    windows = mirror_windows(settings)
    out: dict[str, object] = {"windows": [list(w) for w in windows]}
    for name, group in (("calibration", cal), ("heldout", held)):
        members = [p for p in usable if p.person in set(group)]
        shifts, gen_c, imp_c, gen_m, imp_m, changed, second = [], [], [], [], [], 0, 0
        for a, b in itertools.permutations(members, 2):
            if a.person == b.person and a.group == b.group:
                continue
            t = enc[a.path]["mirror"]
            d_plain = float(np.linalg.norm(t - enc[b.path]["plain"]))
            d_mirror = float(np.linalg.norm(t - enc[b.path]["mirror"]))
            shifts.append(d_plain - d_mirror)
            near = needs_mirror(d_plain, windows)
            second += int(near)
            d = d_mirror if near else d_plain
            changed += sum((d <= x) != (d_mirror <= x) for x in boundaries)
            (gen_c if a.person == b.person else imp_c).append(-d)
            (gen_m if a.person == b.person else imp_m).append(-d_mirror)
        out[name] = {
            "trials": len(shifts),
            "max_abs_shift": round(float(np.max(np.abs(shifts))), 4),
            "second_pass_fraction": round(second / len(shifts), 4),
            "decisions_changed": changed,
            "still_conditional": at_threshold(
                np.array(gen_c), np.array(imp_c), -settings.still_threshold
            ),
            "still_always_mirror": at_threshold(
                np.array(gen_m), np.array(imp_m), -settings.still_threshold
            ),
        }
    return out


def gallery_trials(
    usable: Sequence[Photo], enc: dict[str, dict[str, np.ndarray]], held: list[str], t: float
) -> dict[str, object]:
    """Enroll 3 photos of a held-out person (nearest decides); probe with the others."""
    from bench.heldout import at_threshold

    rng = np.random.default_rng(SPLIT_SEED)
    by_person: dict[str, list[Photo]] = {}
    for p in usable:
        if p.person in set(held):
            by_person.setdefault(p.person, []).append(p)
    out: dict[str, object] = {}
    for kind, thr in (("plain", 0.50), ("mirror", t)):
        gen, imp = [], []
        for person, ps in by_person.items():
            if len(ps) < 4:
                continue
            for _ in range(3):
                idx = rng.permutation(len(ps))
                gallery = [ps[i] for i in idx[:3]]
                groups = {g.group for g in gallery}
                tmpl = np.vstack([enc[g.path][kind] for g in gallery])
                for q in (ps[i] for i in idx[3:]):
                    if q.group not in groups:
                        gen.append(-float(np.linalg.norm(tmpl - enc[q.path][kind], axis=1).min()))
                for other, qs in by_person.items():
                    if other != person:
                        imp += [
                            -float(np.linalg.norm(tmpl - enc[q.path][kind], axis=1).min())
                            for q in qs
                        ]
        out[kind] = at_threshold(np.array(gen), np.array(imp), -thr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timing passes over the selfies")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="only timing and throughput")
    parser.add_argument(
        "--protocol-only", action="store_true", help="only the held-out protocol (issue 18)"
    )
    parser.add_argument(
        "--deepface", type=Path, default=None, help="serengil/deepface tests/unit/dataset folder"
    )
    args = parser.parse_args()
    if args.protocol_only:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = protocol(args.deepface)
        (RESULTS / "face_heldout.json").write_text(json.dumps(out, indent=2, default=float))
        print(json.dumps(out, default=float))
        return
    if args.speed_only:
        photos = manifest()
        selfies = selfies_1280(photos, 12)
        res: dict[str, object] = {  # timing() pins this process to one core: run it last
            "throughput_per_s": {w: round(throughput(selfies, w, 2), 2) for w in (1, 2)},
            "video_note": video_timing(photos, 4),
        }
        templates = selfie_templates(photos, 12)
        res["load_avg_before"] = os.getloadavg()
        res["timing_1280px"] = timing(selfies, args.repeats, templates)
        res["load_avg"] = os.getloadavg()
        res["date"] = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
        (RESULTS / "face_speed.json").write_text(json.dumps(res, indent=2, default=float))
        print(json.dumps(res, default=float))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    settings = get_face_settings()
    photos = manifest()
    enc = encode_all([p for p in photos if p.role == "pair"])
    genuine, impostor = pair_distances(photos, enc)
    gen = np.array([d for *_, d in genuine])
    imp = np.array([d for *_, d in impostor])
    hard = lambda a, b: a.source.startswith("davisking") and b.source.startswith("davisking")  # noqa: E731
    hard_gen = np.array([d for a, b, d in genuine if hard(a, b)])
    hard_imp = np.array([d for a, b, d in impostor if hard(a, b)])
    res: dict[str, object] = {
        "photos_encoded": len(enc),
        "identities": len({p.person for p in photos if p.path in enc}),
        "genuine_pairs": int(gen.size),
        "impostor_pairs": int(imp.size),
        "threshold_for_far_0.1pct_all": round(threshold_for_far(imp, TARGET_FAR), 4),
        "threshold_for_far_0.1pct_hard": round(threshold_for_far(hard_imp, TARGET_FAR), 4),
        "min_impostor_distance": round(float(imp.min()), 4),
        "max_genuine_distance": round(float(gen.max()), 4),
        "table": [],
    }
    for t in (0.40, 0.42, 0.45, 0.48, 0.50, 0.52, 0.54, 0.56, 0.60):
        far, frr = rates(gen, imp, t)
        hfar, hfrr = rates(hard_gen, hard_imp, t)
        res["table"].append(
            {"threshold": t, "far": far, "frr": frr, "hard_far": hfar, "hard_frr": hfrr}
        )  # type: ignore[attr-defined]
    res["shipped"] = {
        "threshold": settings.threshold,
        "still_threshold": settings.still_threshold,
        "replay_distance": settings.replay_distance,
        "far_frr": rates(gen, imp, settings.threshold),
        "still_far_frr": rates(gen, imp, settings.still_threshold),
        "hard_far_frr": rates(hard_gen, hard_imp, settings.threshold),
        "genuine_flagged_as_replay": int((gen < settings.replay_distance).sum()),
        "genuine_below": {str(t): int((gen < t).sum()) for t in (0.15, 0.2, 0.25, 0.3)},
        # Rule of three: with k=0 false accepts in n pairs, FAR < 3/n at 95% confidence.
        "far_upper_95_rule_of_three": 3 / imp.size
        if rates(gen, imp, settings.threshold)[0] == 0
        else None,
    }
    res["heldout"] = heldout(genuine, impostor)
    summary, derived_d = attacks(photos, enc, settings)
    res["attacks"] = {
        k: {kk: vv for kk, vv in v.items() if kk != "distances"} for k, v in summary.items()
    }
    res["derived_copy_distance_median"] = (
        round(float(np.median(derived_d)), 4) if derived_d else None
    )
    attack_d = [d for v in summary.values() for d in v["distances"]]
    res["attack_distance_p95"] = round(float(np.percentile(attack_d, 95)), 4) if attack_d else None
    plots(gen, imp, hard_gen, hard_imp, attack_d, settings)
    if not args.skip_speed:
        selfies = selfies_1280(photos, 12)
        res["video_note"] = video_timing(photos, 4)
        res["throughput_per_s"] = {w: round(throughput(selfies, w, 2), 2) for w in (1, 2)}
        res["timing_1280px"] = timing(selfies, args.repeats, selfie_templates(photos, 12))
    res["cpu_count"] = os.cpu_count()
    res["load_avg"] = os.getloadavg()
    (RESULTS / "face.json").write_text(json.dumps(res, indent=2, default=float))
    print(json.dumps(res, default=float))


if __name__ == "__main__":
    main()
