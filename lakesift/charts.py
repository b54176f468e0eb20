"""Small inline-SVG charts for the data report: no JavaScript, no plotting library, no network.

Each function returns one ``<svg>`` element as a string, sized in CSS pixels, with a ``<title>`` per
mark so a browser shows the exact value on hover. Colours are a fixed, colour-blind-safe palette.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d"]
FONT = "font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:12px"


def fmt(v: float) -> str:
    """Compact number: 1234567 -> 1.23M, 0.0123 -> 0.0123."""
    if v is None:
        return "-"
    a = abs(v)
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if a >= div:
            return f"{v / div:.3g}{unit}"
    if a == 0 or a >= 1:
        return f"{v:.4g}"
    return f"{v:.3g}"


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(1, n - 1)] + "\u2026"


def _svg(width: int, height: int, body: list[str], name: str, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(name)}" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(title)}" style="{FONT}">' + "".join(body) + "</svg>")


def _legend(series: list[str], x: float, y: float) -> list[str]:
    out = []
    xx = x
    for i, name in enumerate(series):
        out.append(f'<rect x="{xx:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                   f'<text x="{xx + 14:.1f}" y="{y:.1f}">{escape(name)}</text>')
        xx += 34 + 7 * len(name)
    return out


def hbar(labels: list[str], series: dict[str, list[float]], *, name: str, title: str,
         log: bool = False, width: int = 860, label_width: int = 320, row: int | None = None) -> str:
    """Horizontal grouped bars: one row per label, one bar per series, value printed at the bar end."""
    names = list(series)
    k = max(1, len(names))
    row = row or (22 if k == 1 else 10 + 9 * k)
    top, bottom = 28 if k > 1 else 8, 8
    height = top + bottom + row * max(1, len(labels))
    plot_w = width - label_width - 70
    vmax = max([v for vals in series.values() for v in vals if v] or [1])

    def scale(v):
        if not v or v <= 0:
            return 0.0
        if log:
            return plot_w * math.log10(1 + v) / math.log10(1 + vmax)
        return plot_w * v / vmax

    body = _legend(names, label_width, 16) if k > 1 else []
    bar_h = (row - 6) / k
    for i, label in enumerate(labels):
        y0 = top + i * row
        body.append(f'<text x="{label_width - 6}" y="{y0 + row / 2 + 4:.1f}" text-anchor="end">'
                    f'{escape(_cut(label, (label_width - 10) // 7))}<title>{escape(label)}</title></text>')
        for j, s in enumerate(names):
            v = series[s][i]
            w = scale(v)
            y = y0 + 3 + j * bar_h
            body.append(f'<rect x="{label_width}" y="{y:.1f}" width="{max(w, 0.5):.1f}" height="{bar_h:.1f}" '
                        f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(label)} / {escape(s)}: {v}</title></rect>')
            if v:
                body.append(f'<text x="{label_width + w + 4:.1f}" y="{y + bar_h / 2 + 4:.1f}" fill="#333" '
                            f'font-size="{min(12, bar_h + 3):.0f}">{fmt(v)}</text>')
    if log:
        body.append(f'<text x="{width - 4}" y="{height - 1}" text-anchor="end" fill="#777">log scale</text>')
    return _svg(width, height, body, name, title)


def columns(labels: list[str], series: dict[str, list[float]], *, name: str, title: str,
            xlabel: str = "", ylabel: str = "count", stacked: bool = False, log: bool = False,
            vline: tuple[float, str] | None = None, width: int = 860, height: int = 300) -> str:
    """Vertical bars over ordered bins (a histogram when labels are bin edges), grouped or stacked.

    ``vline=(position, text)`` draws a marker at a fractional bin position (e.g. a threshold)."""
    names = list(series)
    n = max(1, len(labels))
    left, right, top, bottom = 60, 16, 28, 56
    pw, ph = width - left - right, height - top - bottom
    if stacked:
        totals = [sum(series[s][i] or 0 for s in names) for i in range(len(labels))]
        vmax = max(totals or [1]) or 1
    else:
        vmax = max([v or 0 for vals in series.values() for v in vals] or [1]) or 1

    def h(v):
        if not v or v <= 0:
            return 0.0
        return ph * (math.log10(1 + v) / math.log10(1 + vmax) if log else v / vmax)

    body = _legend(names, left, 16)
    body.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#999"/>')
    body.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#999"/>')
    ticks = ([(10 ** e, h(10 ** e) / ph) for e in range(0, int(math.log10(vmax)) + 1)] if log
             else [(vmax * f, f) for f in (0.5, 1.0)])
    for v, frac in ticks:
        y = top + ph - ph * frac
        body.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{fmt(v)}</text>'
                    f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#eee"/>')
    slot = pw / n
    k = 1 if stacked else max(1, len(names))
    bw = max(1.0, (slot - 2) / k)
    for i, label in enumerate(labels):
        base = 0.0
        for j, s in enumerate(names):
            v = series[s][i] or 0
            bh = h(v) if not stacked else h(base + v) - h(base)
            x = left + i * slot + 1 + (0 if stacked else j * bw)
            y = top + ph - (h(base) if stacked else 0) - bh
            if v:
                body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{max(bh, 0.5):.1f}" '
                            f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(label)} / {escape(s)}: {v}</title></rect>')
            if stacked:
                base += v
        every = max(1, math.ceil(n / 12))
        if i % every == 0:
            body.append(f'<text x="{left + (i + 0.5) * slot:.1f}" y="{top + ph + 14}" text-anchor="middle" '
                        f'fill="#555">{escape(label)}</text>')
    if vline is not None:
        pos, text = vline
        x = left + pos * slot
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{top + ph}" stroke="#d62728" '
                    f'stroke-width="2" stroke-dasharray="5,3" class="threshold"/>'
                    f'<text x="{x + 4:.1f}" y="{top + 8}" fill="#d62728">{escape(text)}</text>')
    if xlabel:
        body.append(f'<text x="{left + pw / 2}" y="{height - 20}" text-anchor="middle">{escape(xlabel)}</text>')
    if ylabel:
        body.append(f'<text x="12" y="{top + ph / 2}" transform="rotate(-90 12 {top + ph / 2})" '
                    f'text-anchor="middle">{escape(ylabel)}{" (log)" if log else ""}</text>')
    return _svg(width, height, body, name, title)
