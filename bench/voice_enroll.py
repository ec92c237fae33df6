"""Voice enrollment benchmark: how many real enrollment recordings pass the digit check.

Run from the repository root (the machine is shared, so politely)::

    nice -n 10 taskset -c 0 .venv/bin/python bench/voice_enroll.py [--quick]

Writes ``bench/results/voice_enroll.json`` and prints the Markdown for the
voice section of ``bench/RESULTS.md``. Procedure (see docs/voice.md):

1. Each real FSDD speaker records ``--per-speaker`` enrollment strings, built
   like :mod:`bench.voice_challenge` builds challenge answers (single-digit
   8 kHz recordings concatenated with short pauses, :func:`bench.voice_data.fsdd_string`),
   but from the *enrollment* half of the recordings (0-14), which the
   challenge threshold was not calibrated on.
2. **Before** (the previous product): a random 4-digit prompt, checked by
   recognising the digits and allowing one edit (``digit_check="recognise"``,
   ``enroll_max_digit_errors=1``). The old rule on 6-digit prompts is shown too.
3. **After** (the product now): a random 6-digit prompt, checked by
   :func:`biometrics.voice.enrollment.check_prompt` with the shipped settings
   (likelihood score >= ``min_digit_score``). Each 6-digit recording is also
   scored against ``--random`` other random prompts (a recording of other
   digits offered for a prompt: a replay or an unrelated file).
4. A chat enrollment per speaker: recordings are offered in order, a refused
   one is asked again (the next recording), until five pass; then the real
   :func:`biometrics.voice.enrollment.build_template` runs on the five.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import voice_data as vd  # noqa: E402
from bench.voice_synth import write_wav  # noqa: E402
from biometrics.voice.audio import decode  # noqa: E402
from biometrics.voice.enrollment import (  # noqa: E402
    EnrollmentError,
    EnrollmentSample,
    build_template,
    check_prompt,
)
from biometrics.voice.settings import get_voice_settings  # noqa: E402
from speech.digit_verify import digit_scorer  # noqa: E402
from speech.recognize import pcm_for  # noqa: E402
from speech.settings import get_speech_settings  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ENROLL_SAMPLES = 5


def passes(decoded: Any, digits: str, settings: Any) -> tuple[bool, float | None]:
    """Whether one recording passes the product's enrollment check, and its score."""
    try:
        check = check_prompt(decoded, digits, settings=settings)
    except EnrollmentError as exc:
        if exc.code != "wrong_digits":
            raise
        return False, None
    return True, check.score


def run_case(spk: str, rng: random.Random, n_random: int) -> dict[str, Any]:
    """One enrollment recording per rule (4-digit before, 6-digit after) of ``spk``."""
    shipped = get_voice_settings()
    old = shipped.model_copy(update={"digit_check": "recognise", "enroll_max_digit_errors": 1})
    four = vd.random_digits(4, rng)
    six = vd.random_digits(6, rng)
    wav4 = write_wav(vd.fsdd_string(spk, four, vd.ENROLL_INDICES, rng).wav, vd.SR)
    wav6 = write_wav(vd.fsdd_string(spk, six, vd.ENROLL_INDICES, rng).wav, vd.SR)
    d4, d6 = decode(wav4), decode(wav6)
    before4, _ = passes(d4, four, old)
    before6, _ = passes(d6, six, old)
    w0, c0 = time.perf_counter(), time.process_time()
    after, _ = passes(d6, six, shipped)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    # The same scores again (decoding is deterministic), with other prompts for the same pcm.
    pcm, _ = pcm_for(d6, get_speech_settings())
    others = [vd.random_digits(6, rng) for _ in range(n_random)]
    scored, *wrong = [s.score for s in digit_scorer().score_all(pcm, [six, *others])]
    return {
        "speaker": spk,
        "prompt4": four,
        "prompt6": six,
        "before_4digit_recognise": before4,
        "before_rule_6digit": before6,
        "after_6digit_likelihood": after,
        "score": scored,
        "random_prompts": others,
        "random_differing_digits": [
            sum(a != b for a, b in zip(six, o, strict=True)) for o in others
        ],
        "random_scores": wrong,
        "random_accepted": sum(s >= shipped.min_digit_score for s in wrong),
        "check_wall_s": wall,
        "check_cpu_s": cpu,
        "wav6": wav6,
    }


def chat_enrollment(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Offer the speaker's recordings in order until five pass ``key``; attempts needed."""
    attempts, kept = 0, []
    for r in rows:
        attempts += 1
        if r[key]:
            kept.append(r)
        if len(kept) == ENROLL_SAMPLES:
            break
    return {"attempts": attempts, "completed": len(kept) == ENROLL_SAMPLES, "kept": kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--per-speaker", type=int, default=40)
    parser.add_argument("--random", type=int, default=4, help="other prompts per recording")
    args = parser.parse_args()
    from billtalk.logs import configure_logging

    configure_logging("WARNING")
    per_speaker = 6 if args.quick else args.per_speaker
    rng = random.Random(args.seed)
    shipped = get_voice_settings()
    rows = [
        run_case(spk, rng, args.random)
        for spk in tqdm(vd.FSDD_SPEAKERS, desc="speakers", file=sys.stderr)
        for _ in range(per_speaker)
    ]
    per: dict[str, Any] = {}
    for spk in vd.FSDD_SPEAKERS:
        mine = [r for r in rows if r["speaker"] == spk]
        entry: dict[str, Any] = {"n": len(mine)}
        for key in ("before_4digit_recognise", "before_rule_6digit", "after_6digit_likelihood"):
            entry[key] = sum(r[key] for r in mine)
        entry["random_accepted"] = sum(r["random_accepted"] for r in mine)
        entry["random_trials"] = sum(len(r["random_scores"]) for r in mine)
        for label, key in (
            ("before", "before_4digit_recognise"),
            ("after", "after_6digit_likelihood"),
        ):
            chat = chat_enrollment(mine, key)
            entry[f"chat_{label}_attempts"] = chat["attempts"] if chat["completed"] else None
        chat = chat_enrollment(mine, "after_6digit_likelihood")
        if chat["completed"]:
            samples = [EnrollmentSample(r["wav6"], r["prompt6"]) for r in chat["kept"]]
            try:
                _, report = build_template(samples, settings=shipped)
                entry["template_built"] = True
                entry["min_consistency"] = min(report.consistency)
            except EnrollmentError as exc:
                entry["template_built"] = f"refused: {exc.code}"
        per[spk] = entry
    cpu = np.array([r["check_cpu_s"] for r in rows])
    wall = np.array([r["check_wall_s"] for r in rows])
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPU, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}",
        "command": "nice -n 10 taskset -c 0 .venv/bin/python bench/voice_enroll.py"
        + (" --quick" if args.quick else ""),
        "seed": args.seed,
        "min_digit_score": shipped.min_digit_score,
        "per_speaker": per,
        "time_per_check": {
            "cpu_median_s": float(np.median(cpu)),
            "cpu_p10_s": float(np.percentile(cpu, 10)),
            "cpu_p90_s": float(np.percentile(cpu, 90)),
            "wall_median_s": float(np.median(wall)),
        },
    }
    saved = [{k: v for k, v in r.items() if k != "wav6"} for r in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "voice_enroll_quick.json" if args.quick else "voice_enroll.json"
    (RESULTS / name).write_text(json.dumps({**out, "rows": saved}, indent=1))
    print(markdown(out))


def markdown(out: dict[str, Any]) -> str:
    """Markdown table for bench/RESULTS.md."""
    t = out["time_per_check"]
    lines = [
        f"Run {out['date']} on {out['machine']}: `{out['command']}` (seed {out['seed']}), "
        f"`min_digit_score` {out['min_digit_score']}.",
        "",
        "| FSDD speaker | recordings | before: 4-digit, recognise ≤ 1 error | old rule on "
        "6 digits | **after: 6-digit, likelihood** | other prompts accepted | attempts for "
        "5 passes, before → after | template |",
        "|---|---|---|---|---|---|---|---|",
    ]
    totals = {"n": 0, "b4": 0, "b6": 0, "a": 0, "ra": 0, "rt": 0}
    for spk, e in out["per_speaker"].items():
        n = e["n"]
        totals["n"] += n
        totals["b4"] += e["before_4digit_recognise"]
        totals["b6"] += e["before_rule_6digit"]
        totals["a"] += e["after_6digit_likelihood"]
        totals["ra"] += e["random_accepted"]
        totals["rt"] += e["random_trials"]
        before = e["chat_before_attempts"] or f"not in {n}"
        after = e["chat_after_attempts"] or f"not in {n}"
        template = e.get("template_built", "-")
        if template is True:
            template = f"built (consistency ≥ {e['min_consistency']:.2f})"
        lines.append(
            f"| {spk} | {n} | {e['before_4digit_recognise']}/{n} "
            f"({e['before_4digit_recognise'] / n:.0%}) | {e['before_rule_6digit']}/{n} "
            f"({e['before_rule_6digit'] / n:.0%}) | **{e['after_6digit_likelihood']}/{n} "
            f"({e['after_6digit_likelihood'] / n:.0%})** | {e['random_accepted']}/"
            f"{e['random_trials']} | {before} → {after} | {template} |"
        )
    n = totals["n"]
    lines.append(
        f"| all | {n} | {totals['b4']}/{n} ({totals['b4'] / n:.0%}) | {totals['b6']}/{n} "
        f"({totals['b6'] / n:.0%}) | **{totals['a']}/{n} ({totals['a'] / n:.0%})** | "
        f"{totals['ra']}/{totals['rt']} | | |"
    )
    lines += [
        "",
        f"Time per enrollment check (6 digits, free + forced decode): CPU median "
        f"{t['cpu_median_s']:.2f} s (p10 {t['cpu_p10_s']:.2f}, p90 {t['cpu_p90_s']:.2f}); "
        f"wall median {t['wall_median_s']:.2f} s.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
