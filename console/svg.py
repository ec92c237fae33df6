"""Small server-side SVG charts (lines and bars) for the dashboard page, drawn inline.

No script and no ``style`` attributes (the console's CSP allows neither inline):
colours are SVG presentation attributes. Every label is escaped. Drawing a chart
takes well under a millisecond, so the dashboard page carries its charts itself;
the matplotlib PNGs (``console.dashboards.render_png``) remain for download.
"""

from __future__ import annotations

from html import escape
from typing import Any

COLOURS = ("#2d6cdf", "#e0823d", "#2e9d58", "#b23b8f", "#7a5cd6", "#8a8f98")
W, H = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 40


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _frame(top: float, labels: list[str], parts: list[str]) -> None:
    """Axes, horizontal grid with values, and x labels (at most ~10)."""
    inner_h = H - TOP - BOTTOM
    for i in range(5):
        y = TOP + inner_h * (1 - i / 4)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" '
            f'stroke="#e3e6ea" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
            f'fill="#4b5663">{escape(_fmt(top * i / 4))}</text>'
        )
    n = len(labels)
    step = max(1, (n + 9) // 10)
    inner_w = W - LEFT - RIGHT
    for i in range(0, n, step):
        x = LEFT + inner_w * (i + 0.5) / n
        parts.append(
            f'<text x="{x:.1f}" y="{H - BOTTOM + 14}" font-size="9" '
            f'text-anchor="middle" fill="#4b5663">{escape(labels[i])}</text>'
        )


def _legend(names: list[str], parts: list[str]) -> None:
    x = LEFT
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{colour}"/>')
        parts.append(
            f'<text x="{x + 14}" y="17" font-size="10" fill="#1d232a">{escape(name)}</text>'
        )
        x += 22 + 6 * len(name)


def chart(table: dict[str, Any], kind: str = "line", title: str = "") -> str:
    """An SVG document for a table whose first column labels the x axis.

    ``kind``: ``line`` (one polyline per further column), ``bar`` (the second
    column as bars) or ``pivot`` (rows of (x, series, value): one line per series).
    """
    rows = table.get("rows") or []
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" role="img" aria-label="{escape(title)}">'
    ]
    if not rows:
        parts.append(
            f'<text x="{W / 2}" y="{H / 2}" font-size="12" text-anchor="middle" '
            f'fill="#7a8594">no data</text></svg>'
        )
        return "".join(parts)
    if kind == "pivot":
        labels = sorted({str(r[0]) for r in rows})
        names = sorted({str(r[1]) for r in rows})
        cell = {(str(r[0]), str(r[1])): _num(r[2]) for r in rows}
        series = [[cell.get((x, n), 0.0) for x in labels] for n in names]
    else:
        labels = [str(r[0]) for r in rows]
        names = [str(c) for c in table["columns"][1 : 2 if kind == "bar" else None]]
        series = [[_num(r[i]) for r in rows] for i in range(1, 1 + len(names))]
    labels = [x[5:] if len(x) == 10 and x[4] == "-" else x for x in labels]  # MM-DD
    top = max([v for s in series for v in s] + [0.0]) or 1.0
    top *= 1.1
    _frame(top, labels, parts)
    inner_w, inner_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = len(labels)

    def xy(i: int, v: float) -> tuple[float, float]:
        return LEFT + inner_w * (i + 0.5) / n, TOP + inner_h * (1 - v / top)

    if kind == "bar":
        width = max(2.0, inner_w / n * 0.7)
        for i, v in enumerate(series[0]):
            x, y = xy(i, v)
            parts.append(
                f'<rect x="{x - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{TOP + inner_h - y:.1f}" fill="{COLOURS[0]}"/>'
            )
    else:
        for k, values in enumerate(series):
            colour = COLOURS[k % len(COLOURS)]
            points = " ".join(
                f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(values))
            )
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.6"/>'
            )
            if n <= 40:
                for i, v in enumerate(values):
                    x, y = xy(i, v)
                    parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{colour}"/>')
    _legend(names, parts)
    parts.append("</svg>")
    return "".join(parts)
