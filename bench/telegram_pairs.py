"""Interleaved before/after runs of ``bench/telegram.py``: one Markdown table and one chart.

Each run is a results file of ``bench/telegram.py --plan webhookN:latency`` (one mode, the
latency phase). Given the runs of two variants in the order they ran, this prints a table
row per run (updates/s, text p50/p95, voice p50/p95, lost, duplicated, failed, CPU per
update, load), the median and range of the text p95 per variant, and draws the text p95
and p50 of every run beside the 150 ms target::

    .venv/bin/python bench/telegram_pairs.py --label on="early ack" --label off="held" \\
        --out telegram_run13_ack on:telegram_run13_ack_on_1 off:telegram_run13_ack_off_1 ...
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 150


def latency_phase(stem: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The results file ``stem`` and its one latency phase."""
    data = json.loads((RESULTS / f"{stem}.json").read_text())
    [mode] = data["modes"].values()
    return data, mode["latency"]


def row(n: int, label: str, data: dict[str, Any], r: dict[str, Any]) -> str:
    voice = r["by_kind"].get("voice", {})
    voice_ms = f"{voice.get('p50_ms', 0):,.0f} / {voice.get('p95_ms', 0):,.0f}"
    cpu = r["cpu_ms_per_update"]
    load = r.get("load_average_1m", ["-", "-"])
    return (
        f"| {n} | {label} | {data['date'][11:16]} | {r['updates_per_s']} | {r['text_p50_ms']} "
        f"| **{r['text_p95_ms']:,}** | {voice_ms} "
        f"| {r['lost']} | {r['duplicates']} | {r['failed_turns']} of {r['updates']:,} "
        f"| {cpu['bot']}, {cpu['bench']}, {cpu['postgres']}, {cpu['other']} "
        f"| {load[0]}–{load[1]} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="VARIANT:STEM in the order they ran")
    parser.add_argument("--label", action="append", default=[], help="VARIANT=label")
    parser.add_argument("--out", required=True, help="chart stem in bench/results")
    args = parser.parse_args()
    labels = dict(item.split("=", 1) for item in args.label)
    runs = [tuple(item.split(":", 1)) for item in args.runs]
    print(
        "| pair | variant | ended (UTC) | updates/s | text p50 ms | **text p95 ms** (≤ 150) "
        "| voice p50 / p95 ms | lost | dup. | failed | CPU ms/update: bot, bench, postgres, "
        "other | load (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    seen: dict[str, int] = {}
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for variant, stem in runs:
        seen[variant] = seen.get(variant, 0) + 1
        data, r = latency_phase(stem)
        by_variant.setdefault(variant, []).append(r)
        print(row(seen[variant], labels.get(variant, variant), data, r))
    print()
    for variant, rs in by_variant.items():
        p95 = [r["text_p95_ms"] for r in rs]
        p50 = [r["text_p50_ms"] for r in rs]
        voice = [r["by_kind"].get("voice", {}).get("p50_ms", 0) for r in rs]
        print(
            f"- {labels.get(variant, variant)}: text p95 median {statistics.median(p95):,.0f} ms "
            f"({min(p95):,.0f}–{max(p95):,.0f}), text p50 median {statistics.median(p50):.0f} ms,"
            f" voice p50 median {statistics.median(voice) / 1000:.1f} s,"
            f" lost {sum(r['lost'] for r in rs)}, duplicated {sum(r['duplicates'] for r in rs)},"
            f" failed {sum(r['failed_turns'] for r in rs)} of {sum(r['updates'] for r in rs):,}"
        )
    chart(runs, labels, RESULTS / f"{args.out}.png")


def chart(runs: list[tuple[str, ...]], labels: dict[str, str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(10, 4.2))
    variants = list(dict.fromkeys(v for v, _ in runs))
    colours = ["tab:green", "tab:gray", "tab:blue", "tab:orange"]
    for i, (variant, stem) in enumerate(runs):
        _, r = latency_phase(stem)
        colour = colours[variants.index(variant) % len(colours)]
        ax.bar(i, r["text_p95_ms"], 0.6, color=colour)
        ax.bar(i, r["text_p50_ms"], 0.6, color="white", alpha=0.6, hatch="//")
        ax.text(i, r["text_p95_ms"], f"{r['text_p95_ms']:,.0f}", ha="center", va="bottom")
    target = ax.axhline(TARGET_MS, color="red", linestyle="--")
    handles = [target] + [Patch(color=colours[n % len(colours)]) for n in range(len(variants))]
    handles.append(Patch(facecolor="white", hatch="//", edgecolor="black"))
    names = ["text p95 target (150 ms)"]
    names += [f"{labels.get(v, v)}: text p95" for v in variants] + ["text p50"]
    ax.legend(handles, names, fontsize=8)
    ticks = [f"{labels.get(v, v)}\n{stem.rsplit('_', 1)[-1]}" for v, stem in runs]
    ax.set_xticks(range(len(runs)), ticks)
    ax.set_yscale("log")
    ax.set_ylabel("first reply, text turns (ms, log)")
    ax.set_title("Telegram latency phase, 2 webhook workers, PostgreSQL (runs in order)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
