"""Render the data report (``jobs/report.py`` gathers the numbers) as one self-contained HTML page.

Pure function of the gathered data: no Spark, no network, no JavaScript. The data itself is embedded
as JSON (``<script type="application/json" id="report-data">``) for anyone who wants the numbers.
"""

from __future__ import annotations

import json
from html import escape

from lakesift import __version__
from lakesift.charts import columns, fmt, hbar

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:980px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0} td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left} .muted{color:#777;font-size:12px}
.doc{border:1px solid #e3e3e3;border-radius:4px;padding:8px;margin:6px 0;font-size:12px;white-space:pre-wrap;
     max-height:160px;overflow:auto;background:#fafafa} .doc b{font-weight:600}
.kpi{display:inline-block;margin:6px 18px 6px 0} .kpi .v{font-size:20px;font-weight:600} .warn{color:#b00}
"""


def html_section(title: str, *parts: str, anchor: str = "") -> str:
    """A titled ``<section>`` of the page (also the frame of :mod:`lakesift.doremi_report`'s section)."""
    return f'<section id="{escape(anchor)}"><h2>{escape(title)}</h2>' + "".join(parts) + "</section>"


def muted(text: str) -> str:
    """A grey note paragraph (the text is escaped)."""
    return f'<p class="muted">{escape(text)}</p>'


def _funnel(data: dict) -> str:
    f = data.get("funnel") or []
    if not f:
        return muted("No per-step statistics for this run.")
    cpt = data["chars_per_token"]
    labels = ["(input)"] + [f"{x['stage']}: {x['step']}" for x in f]
    docs = [f[0]["docs_in"]] + [x["docs_out"] for x in f]
    tokens = [round((f[0]["chars_in"] or 0) / cpt)] + [round(x["chars_out"] / cpt) if x["chars_out"] is not None else None
              for x in f]
    how = (f"measured on the tokenized tables: {cpt:.2f} characters per token" if data.get("chars_per_token_measured")
           else f"estimated at {cpt:g} characters per token (no tokenize run found)")
    rows = "".join(
        f"<tr><td>{escape(lab)}</td><td>{d:,}</td><td>{fmt(t)}</td>"
        f"<td>{100.0 * d / docs[0] if docs[0] else 0:.1f}%</td></tr>" for lab, d, t in zip(labels, docs, tokens, strict=True))
    return ("<h3>Documents</h3>"
            + hbar(labels, {"documents left": docs}, name="funnel-docs", title="documents left after each step")
            + "<h3>Tokens</h3>" + hbar(labels, {"tokens left": tokens}, name="funnel-tokens", title="tokens left after each step")
            + muted(f"Tokens from characters, {how}.")
            + f"<table><tr><th>after step</th><th>documents</th><th>tokens</th><th>of input</th></tr>{rows}</table>")


def _reasons(data: dict) -> str:
    r = (data.get("reasons") or [])[:25]
    if not r:
        return muted("Nothing was dropped.")
    labels = [f"{x['step']}: {x['reason']}" for x in r]
    return hbar(labels, {"documents dropped": [x["docs"] for x in r]}, name="reasons",
                title="documents dropped by reason", log=True)


def _lengths(data: dict) -> str:
    d = data.get("distributions") or {}
    per = d.get("bins_per_decade", 4)
    sets = [k for k in ("input", "filtered", "deduped") if k in d]
    if not sets:
        return muted("No document tables found.")
    keys = sorted({int(b) for k in sets for b in d[k]["length"]})
    if not keys:
        return muted("No documents.")
    lo, hi = min(keys), max(keys)
    bins = list(range(lo, hi + 1))
    labels = ["empty" if b < 0 else fmt(float(f"{10 ** (b / per):.2g}")) for b in bins]
    series = {k: [int(d[k]["length"].get(b, d[k]["length"].get(str(b), 0))) for b in bins] for k in sets}
    chart = columns(labels, series, name="lengths", title="document length distribution",
                    xlabel=f"characters (log bins, {per} per decade; label = bin start)", ylabel="documents")
    langs: dict[str, None] = {}
    for k in sets:
        for lang in d[k]["languages"]:
            langs.setdefault(lang, None)
    lang_labels = list(langs)[:12]
    lang_chart = hbar(lang_labels, {k: [d[k]["languages"].get(x, 0) for x in lang_labels] for k in sets},
                      name="languages", title="documents per language", log=True)
    return chart + "<h3>Languages</h3>" + lang_chart


def _quality(data: dict) -> str:
    q = data.get("quality")
    if not q:
        return muted("The pipeline of this run has no quality_filter step.")
    n = q["bins"]
    labels = [f"{i / n:.2f}" for i in range(n)]
    t = q.get("threshold")
    vline = (t * n, f"threshold {t:.4g}") if t is not None else None
    chart = columns(labels, {"kept": q["hist"]["kept"], "dropped": q["hist"]["dropped"]}, name="quality",
                    title=f"{q['key']} histogram", stacked=True, log=True, vline=vline,
                    xlabel=f"{q['key']} (bin start)", ylabel="documents")
    kept, dropped = sum(q["hist"]["kept"]), sum(q["hist"]["dropped"])
    return chart + muted(f"Pages that reached step {q['step']}: {kept + dropped:,}; kept {kept:,}, dropped "
                          f"{dropped:,} ({'<=' if q['lower_better'] else '>='} threshold keeps).")


def _clusters(data: dict) -> str:
    c = data.get("clusters")
    if c is None:
        return muted("No dedup run found for this filter run.")
    if not c:
        return muted("The dedup run found no duplicate clusters.")
    edges = [(2, 2), (3, 3), (4, 4), (5, 9), (10, 99), (100, 999), (1000, None)]
    labels = [f"{a}" if a == b else (f"{a}-{b}" if b else f"{a}+") for a, b in edges]
    methods = sorted({x["method"] for x in c})
    series = {}
    for m in methods:
        counts = [0] * len(edges)
        for x in c:
            if x["method"] != m:
                continue
            for i, (a, b) in enumerate(edges):
                if x["size"] >= a and (b is None or x["size"] <= b):
                    counts[i] += x["clusters"]
        series[m] = counts
    biggest = max(x["size"] for x in c)
    return (columns(labels, series, name="clusters", title="duplicate cluster sizes", log=True,
                    xlabel="documents in the cluster", ylabel="clusters")
            + muted(f"Largest cluster: {biggest:,} documents. One document of each cluster is kept."))


def _mix(data: dict) -> str:
    m = data.get("mix")
    if not m:
        return muted("No tokenize run found.")
    names = list(m["sources"])
    written = [m["sources"][k].get("tokens_written", 0) for k in names]
    unique = [m["sources"][k].get("tokens", 0) for k in names]
    return (hbar(names, {"tokens written (after mixing)": written, "tokens in source": unique}, name="mix",
                 title="tokens per source")
            + muted(f"{m['name']}: {m['sequences']:,} sequences of {m['seq_len']} tokens ({fmt(m['tokens'])} tokens), "
                     f"tokenizer {m['tokenizer']}, written to {m['out']}."))


def _doc(d: dict) -> str:
    head = f"<b>{escape(d.get('url') or d['doc_id'])}</b>"
    if d.get("chars") is not None:
        head += f' <span class="muted">{d["chars"]:,} characters; the start is shown</span>'
    body = escape(d["text"]) if d.get("text") is not None else '<span class="muted">(text not available)</span>'
    return f'<div class="doc">{head}\n{body}</div>'


def _samples(data: dict) -> str:
    s = data.get("samples") or {}
    parts = ["<h3>Kept</h3>"] + [_doc(d) for d in s.get("kept", [])]
    for group in s.get("rejected", []):
        parts.append(f"<h3>Dropped by {escape(group['step'])}: {escape(group['reason'])}</h3>")
        parts.extend(_doc(d) for d in group["docs"])
    return "".join(parts)


def _doremi(data: dict) -> list[str]:
    """One section per DoReMi folder of ``data["doremi"]`` (``jobs/report.py --doremi``); none without."""
    from lakesift.doremi_report import section  # imported here: that module builds on this one's styling

    folders = data.get("doremi") or []
    return [section(d, anchor=f"doremi-{i}") for i, d in enumerate(folders, 1)]


def render(data: dict) -> str:
    runs = data.get("runs", {})
    f = runs.get("filter", {})
    funnel = data.get("funnel") or []
    n_in = funnel[0]["docs_in"] if funnel else 0
    n_out = funnel[-1]["docs_out"] if funnel else 0
    kpis = [("documents in", f"{n_in:,}"), ("documents left", f"{n_out:,}"),
            ("kept", f"{100.0 * n_out / n_in:.1f}%" if n_in else "-")]
    if data.get("mix"):
        kpis.append(("tokens written (with padding)", fmt(data["mix"]["tokens"])))
    runs_rows = "".join(f"<tr><td>{k}</td><td>{escape(v['run_id'])}</td><td>{escape(v['finished_at'])}</td></tr>"
                        for k, v in runs.items())
    stale = ('<p class="warn">Note: the filtered table now holds the output of a newer run; distributions and '
             "samples describe the tables as they are.</p>") if data.get("stale_tables") else ""
    body = [
        f"<h1>Lakesift data report</h1><p class='muted'>lake {escape(data.get('lake', ''))} - generated "
        f"{escape(data.get('generated_at', ''))} - lakesift {__version__}</p>", stale,
        "".join(f'<div class="kpi"><div class="muted">{escape(k)}</div><div class="v">{escape(v)}</div></div>'
                for k, v in kpis),
        f"<table><tr><th>stage</th><th>run id</th><th>finished</th></tr>{runs_rows}</table>",
        html_section("Funnel: documents and tokens left after each step", _funnel(data), anchor="funnel"),
        html_section("Why documents were dropped", _reasons(data), anchor="reasons"),
        html_section("Document lengths and languages, before and after", _lengths(data), anchor="lengths"),
        html_section("Quality scores", _quality(data), anchor="quality"),
        html_section("Duplicate clusters", _clusters(data), anchor="clusters"),
        html_section("Tokens per source in the final mix", _mix(data), anchor="mix"),
        *_doremi(data),
        html_section("Sampled documents", _samples(data), anchor="samples"),
    ]
    payload = json.dumps(data, default=str, sort_keys=True).replace("</", "<\\/")
    title = f"Lakesift report - {f.get('run_id', '')}"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}"
            f'<script type="application/json" id="report-data">{payload}</script></body></html>\n')
