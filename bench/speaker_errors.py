"""Where the speaker's recognition errors are: a breakdown of a speaker_engines result.

Reads a results file of bench/speaker_engines.py (``--set dev`` for tuning) and, for
one configuration, prints as Markdown:

* WER and intent agreement (on the dialogue's text) by voice x condition, by the
  engine that made the transcript and by purpose;
* the word edits behind the WER (substitutions "said -> heard", deletions,
  insertions), counted over all clips, both sides through
  :func:`speech.scoring.scoring_text` as the WER is;
* the requests with the most errors, and every clip whose intent flipped
  (written and heard request get different intents), with what was heard.

No decoding: it only reads the rows the benchmark wrote, so it can run beside
anything. Run::

    .venv/bin/python bench/speaker_errors.py bench/results/speaker_engines_dev.json \
        [--config auto] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speech.scoring import scoring_text  # noqa: E402


def align(ref: list[str], hyp: list[str]) -> list[tuple[str, str]]:
    """Levenshtein alignment of two word lists: pairs (ref word or '', hyp word or '')."""
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(
                cost[i - 1][j] + 1,
                cost[i][j - 1] + 1,
                cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]),
            )
    pairs: list[tuple[str, str]] = []
    i, j = n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            pairs.append((ref[i - 1], ""))
            i -= 1
        else:
            pairs.append(("", hyp[j - 1]))
            j -= 1
    return pairs[::-1]


def edits(rows: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """(said, heard) counts of every word edit; '' is a missing word."""
    counted: Counter[tuple[str, str]] = Counter()
    for row in rows:
        ref = scoring_text(row["text"]).split()
        hyp = scoring_text(row.get("heard") or "").split()
        for pair in align(ref, hyp):
            if pair[0] != pair[1]:
                counted[pair] += 1
    return counted


def _agree(row: dict[str, Any]) -> bool:
    return bool(row.get("intent_text_dialogue") == row.get("intent_audio_dialogue"))


def _line(rows: list[dict[str, Any]]) -> str:
    wer = statistics.fmean(r["wer"] for r in rows)
    agree = sum(_agree(r) for r in rows) / len(rows)
    return f"{len(rows)} | {wer:.1%} | {agree:.1%}"


def breakdown(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The breakdown as data (also printed by :func:`main`)."""
    requests = [r for r in rows if r.get("kind") == "request" and r.get("wer") is not None]
    out: dict[str, Any] = {"n": len(requests)}
    groups: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in requests:
        groups["voice x condition"][f"{r['voice']} {r['condition']}"].append(r)
        groups["engine x condition"][f"{r.get('engine')} {r['condition']}"].append(r)
        groups["purpose x condition"][f"{r.get('purpose')} {r['condition']}"].append(r)
    out["groups"] = {
        name: {
            key: {
                "n": len(g),
                "wer": statistics.fmean(x["wer"] for x in g),
                "agreement": sum(_agree(x) for x in g) / len(g),
                "word_errors": sum(
                    round(x["wer"] * len(scoring_text(x["text"]).split())) for x in g
                ),
            }
            for key, g in sorted(groups[name].items())
        }
        for name in groups
    }
    out["edits"] = {
        cond: [
            {"said": s, "heard": h, "n": n}
            for (s, h), n in edits([r for r in requests if r["condition"] == cond]).most_common(40)
        ]
        for cond in ("clean", "snr15")
    }
    by_text: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in requests:
        by_text[r["text"]].append(r)
    out["worst_requests"] = sorted(
        (
            {
                "text": t,
                "purpose": g[0].get("purpose"),
                "wer": statistics.fmean(x["wer"] for x in g),
                "agreement": sum(_agree(x) for x in g) / len(g),
                "heard": sorted({x.get("heard") or "" for x in g if x["wer"] > 0}),
            }
            for t, g in by_text.items()
        ),
        key=lambda x: (-x["wer"], x["text"]),
    )[:30]
    out["flips"] = [
        {
            "text": r["text"],
            "heard": r.get("heard"),
            "voice": r["voice"],
            "condition": r["condition"],
            "engine": r.get("engine"),
            "state": r.get("state"),
            "wer": r["wer"],
            "intent_text": r.get("intent_text_dialogue"),
            "intent_heard": r.get("intent_audio_dialogue"),
        }
        for r in requests
        if not _agree(r)
    ]
    flips_right = sum(1 for f in out["flips"] if f["wer"] == 0)
    flips_near = sum(1 for f in out["flips"] if 0 < f["wer"] <= 0.25)
    out["flip_kinds"] = {
        "transcript right": flips_right,
        "nearly right (WER <= 25 %)": flips_near,
        "recogniser (WER > 25 %)": len(out["flips"]) - flips_right - flips_near,
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--config", default="", help="configuration (default: the first)")
    parser.add_argument("--json", type=Path, default=None, help="also write the breakdown here")
    args = parser.parse_args()
    data = json.loads(args.results.read_text())
    engines = data["engines"]
    engine = next((e for e in engines if e["config"] == args.config), None) if args.config else None
    engine = engine or engines[0]
    result = breakdown(engine["rows"])
    print(f"# {args.results.name}: {engine['config']} ({result['n']} request clips)\n")
    for name, groups in result["groups"].items():
        print(f"\n| {name} | n | WER | agreement | word errors |\n|---|---|---|---|---|")
        for key, g in groups.items():
            print(
                f"| {key} | {g['n']} | {g['wer']:.1%} | {g['agreement']:.1%} | {g['word_errors']} |"
            )
    for cond, rows in result["edits"].items():
        print(f"\nWord edits, {cond} (said -> heard, count):")
        print(", ".join(f"{e['said'] or '+'} -> {e['heard'] or '-'} {e['n']}" for e in rows))
    print("\nWorst requests (mean over voices and conditions):")
    for w in result["worst_requests"]:
        print(
            f"- {w['text']!r} ({w['purpose']}): WER {w['wer']:.0%}, agreement "
            f"{w['agreement']:.0%}; heard {w['heard'][:4]}"
        )
    print(f"\nIntent flips: {len(result['flips'])}; {result['flip_kinds']}")
    for f in result["flips"]:
        print(
            f"- [{f['condition']} {f['voice']} {f['engine']} {f['state']}] {f['text']!r} -> "
            f"{f['heard']!r}: {f['intent_text']} -> {f['intent_heard']}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
