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


def _legend_places(series: list[str], x: float, right: float) -> list[tuple[float, int]]:
    """(x, row) of each legend entry: left to right, starting a new row at ``right``."""
    out, xx, row = [], x, 0
    for name in series:
        w = 34 + 7 * len(name)
        if xx > x and xx + w - 20 > right:
            xx, row = x, row + 1
        out.append((xx, row))
        xx += w
    return out


def _legend(series: list[str], x: float, y: float, right: float = math.inf) -> list[str]:
    """Colour swatch and name per series, in rows of 16 px that wrap at ``right`` (default: one row)."""
    out = []
    for i, (name, (xx, row)) in enumerate(zip(series, _legend_places(series, x, right), strict=True)):
        yy = y + 16 * row
        out.append(f'<rect x="{xx:.1f}" y="{yy - 9:.1f}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                   f'<text x="{xx + 14:.1f}" y="{yy:.1f}">{escape(name)}</text>')
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
    _axis_labels(body, left + pw / 2, height - 20, top + ph / 2, xlabel, (ylabel or "") + (" (log)" if log and ylabel else ""))
    return _svg(width, height, body, name, title)


def _axis_labels(body: list[str], x_mid: float, x_y: float, y_mid: float, xlabel: str | None,
                 ylabel: str | None) -> None:
    """The x-axis label centred at (``x_mid``, ``x_y``) and the y-axis label turned along the left edge."""
    if xlabel:
        body.append(f'<text x="{x_mid}" y="{x_y}" text-anchor="middle">{escape(xlabel)}</text>')
    if ylabel:
        body.append(f'<text x="12" y="{y_mid}" transform="rotate(-90 12 {y_mid})" '
                    f'text-anchor="middle">{escape(ylabel)}</text>')


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round axis values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi], about ``n`` of them."""
    raw = (hi - lo) / n
    unit = 10 ** math.floor(math.log10(raw))
    step = next(m * unit for m in (1, 2, 5, 10) if m * unit >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _path(points: list[tuple[float, float | None]]) -> str:
    """SVG path data through the points, broken where a value is None (a lone point becomes a dot)."""
    out, run = [], 0
    for x, y in points:
        if y is None:
            if run == 1:
                out.append("h0")
            run = 0
            continue
        out.append(f"{'L' if run else 'M'}{x:.1f},{y:.1f}")
        run += 1
    if run == 1:
        out.append("h0")
    return " ".join(out)


def lines(x: list[float], series: dict[str, list[float | None]], *, name: str, title: str,
          dashed: dict[str, list[float | None]] | None = None, dashed_label: str = "dashed",
          xlabel: str = "", ylabel: str = "", width: int = 860, height: int = 300) -> str:
    """Lines over a shared numeric x axis (e.g. training steps), one colour per series.

    ``dashed`` adds, per named series, a dashed line in that series' colour (e.g. its running average;
    ``dashed_label`` names it in the legend and tooltips). A value of None breaks the line. Hovering
    over an x position shows every series' value there (one transparent band per x, with its title)."""
    dashed = dashed or {}
    names = list(series)
    left, right, bottom = 60, 16, 44
    legend = names + ([f"- - {dashed_label}"] if dashed else [])
    top = 28 + 16 * max(row for _, row in _legend_places(legend, left, width - right))
    pw, ph = width - left - right, height - top - bottom
    values = [v for vals in (*series.values(), *dashed.values()) for v in vals if v is not None]
    lo, hi = min([0.0, *values]), max(values or [1.0])
    hi = hi if hi > lo else lo + 1
    x0, x1 = (x[0], x[-1]) if x else (0, 1)
    span = (x1 - x0) or 1

    def px(v):
        return left + pw * (v - x0) / span

    def py(v):
        return None if v is None else top + ph - ph * (v - lo) / (hi - lo)

    body = _legend(names, left, 16, width - right)
    if dashed:
        lx, row = _legend_places(legend, left, width - right)[-1]
        body.append(f'<line x1="{lx:.1f}" y1="{12 + 16 * row}" x2="{lx + 10:.1f}" y2="{12 + 16 * row}" stroke="#555" '
                    f'stroke-dasharray="3,2"/><text x="{lx + 14:.1f}" y="{16 + 16 * row}">{escape(dashed_label)}</text>')
    body.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#999"/>'
                f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#999"/>')
    for v in _ticks(lo, hi):
        y = py(v)
        body.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{fmt(v)}</text>'
                    f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#eee"/>')
    for v in _ticks(x0, x0 + span, 6):
        body.append(f'<text x="{px(v):.1f}" y="{top + ph + 14}" text-anchor="middle" fill="#555">{fmt(v)}</text>')
    for j, s in enumerate(names):
        colour = PALETTE[j % len(PALETTE)]
        for vals, dash in ((series[s], ""), (dashed.get(s), ' stroke-dasharray="6,4"')):
            if vals is None:
                continue
            last = next((v for v in reversed(vals) if v is not None), None)
            body.append(f'<path d="{_path([(px(a), py(b)) for a, b in zip(x, vals, strict=True)])}" fill="none" '
                        f'stroke="{colour}" stroke-width="{1.5 if dash else 2}" stroke-linecap="round"{dash}>'
                        f'<title>{escape(s)}{" " + escape(dashed_label) if dash else ""}: last {fmt(last)}</title></path>')
    for i, a in enumerate(x):
        lo_x = px((x[i - 1] + a) / 2) if i else left
        hi_x = px((a + x[i + 1]) / 2) if i + 1 < len(x) else left + pw
        tip = "; ".join(_tip(s, series[s][i], dashed.get(s), i, dashed_label) for s in names)
        body.append(f'<rect x="{lo_x:.1f}" y="{top}" width="{max(hi_x - lo_x, 0.5):.1f}" height="{ph}" fill="transparent">'
                    f'<title>{escape(xlabel or "x")} {fmt(a)}: {escape(tip)}</title></rect>')
    _axis_labels(body, left + pw / 2, height - 8, top + ph / 2, xlabel, ylabel)
    return _svg(width, height, body, name, title)


def _tip(name: str, value: float | None, dashed: list[float | None] | None, i: int, dashed_label: str) -> str:
    """One series' part of a hover text: ``web 0.412 (average 0.38)``."""
    extra = f" ({dashed_label} {fmt(dashed[i])})" if dashed is not None else ""
    return f"{name} {fmt(value)}{extra}"
