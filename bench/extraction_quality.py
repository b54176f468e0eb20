#!/usr/bin/env python
"""Extraction quality and speed of our two extractors on real pages with gold text.

    python bench/extraction_quality.py [--shared ../shared] [--extractors resiliparse trafilatura]

* WCXB dev (599 pages, 7 page types): bag-of-words F1 over lower-cased ``\\w+`` tokens between the
  extracted text and the human-reviewed main text, averaged over pages (the benchmark's metric).
* trafilatura-eval (990 pages, mostly German / English): every "with" snippet found in the output is
  a true positive, every "without" snippet found a false positive; precision / recall / F1 over all.

Both run our own code path (``udfs.charset.decode_html`` then ``udfs.extract``), single process.
Speed is pages per second of decode + extract, over the WCXB pages, and the median per-page time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from udfs.charset import UndecodableError, decode_html  # noqa: E402
from udfs.extract import make_extractor  # noqa: E402

WORD = re.compile(r"\w+")
PUBLISHED = {  # figures from the benchmarks' own READMEs and from our issue's reference run
    "wcxb_dev_f1": {"trafilatura (WCXB README)": 0.791, "readability (WCXB README)": 0.675,
                    "resiliparse (issue #2 reference run)": 0.791, "trafilatura (issue #2 reference run)": 0.838},
    "trafilatura_eval_f1": {"trafilatura fast (eval_baseline.json)": 0.9195,
                            "trafilatura fallback (eval_baseline.json)": 0.9253},
}


def bow_f1(pred: str, gold: str) -> float:
    p, g = Counter(WORD.findall(pred.lower())), Counter(WORD.findall(gold.lower()))
    if not p or not g:
        return float(p == g)
    overlap = sum((p & g).values())
    if overlap == 0:
        return 0.0
    prec, rec = overlap / sum(p.values()), overlap / sum(g.values())
    return 2 * prec * rec / (prec + rec)


def decode(raw: bytes) -> str:
    try:
        return decode_html(raw, None)[0]
    except UndecodableError:
        return ""


def wcxb_pages(shared: Path) -> list[tuple[bytes, str]]:
    root = shared / "data" / "extraction" / "wcxb-dev"
    out = []
    for gt in sorted((root / "ground-truth").glob("*.json")):
        html = root / "html" / f"{gt.stem}.html.gz"
        gold = json.loads(gt.read_text(encoding="utf-8"))["ground_truth"].get("main_content")
        if html.exists() and gold is not None:  # one page of the 599 has no gold main text
            out.append((gzip.decompress(html.read_bytes()), gold))
    return out


def trafilatura_eval_pages(shared: Path) -> list[tuple[bytes, list[str], list[str]]]:
    root = shared / "data" / "extraction" / "trafilatura-eval"
    meta = json.loads((root / "evaldata.json").read_text(encoding="utf-8"))
    out = []
    for _url, item in sorted(meta.items()):
        for sub in ("eval", "cache"):
            p = root / sub / (item["file"] + ".gz")
            if p.exists():
                out.append((gzip.decompress(p.read_bytes()), item.get("with", []), item.get("without", [])))
                break
    return out


def norm(s: str) -> str:
    return " ".join(s.split())


def run(extractor: str, wcxb, traf) -> dict:
    extract = make_extractor(extractor)
    f1s, times = [], []
    for raw, gold in wcxb:
        t0 = time.perf_counter()
        try:
            text = extract(decode(raw))
        except Exception:
            text = ""
        times.append(time.perf_counter() - t0)
        f1s.append(bow_f1(text, gold))
    tp = fn = fp = tn = 0
    for raw, with_, without in traf:
        try:
            text = norm(extract(decode(raw)))
        except Exception:
            text = ""
        for s in with_:
            if norm(s) in text:
                tp += 1
            else:
                fn += 1
        for s in without:
            if norm(s) in text:
                fp += 1
            else:
                tn += 1
    prec, rec = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {
        "extractor": extractor,
        "wcxb_pages": len(wcxb),
        "wcxb_f1_mean": statistics.fmean(f1s),
        "wcxb_pages_per_s": len(wcxb) / sum(times),
        "wcxb_ms_per_page_median": 1000 * statistics.median(times),
        "traf_eval_pages": len(traf),
        "traf_eval_precision": prec,
        "traf_eval_recall": rec,
        "traf_eval_f1": 2 * prec * rec / max(prec + rec, 1e-12),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    ap.add_argument("--extractors", nargs="+", default=["resiliparse", "trafilatura"])
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    shared = Path(args.shared)
    wcxb, traf = wcxb_pages(shared), trafilatura_eval_pages(shared)
    print(f"pages: wcxb-dev {len(wcxb)}, trafilatura-eval {len(traf)} (one process, decode + extract)")
    results = []
    for name in args.extractors:
        r = run(name, wcxb, traf)
        results.append(r)
        print(f"{name:12s} WCXB F1 {r['wcxb_f1_mean']:.3f}  {r['wcxb_pages_per_s']:7.1f} pages/s  "
              f"median {r['wcxb_ms_per_page_median']:6.1f} ms/page  |  trafilatura-eval P {r['traf_eval_precision']:.3f} "
              f"R {r['traf_eval_recall']:.3f} F1 {r['traf_eval_f1']:.3f}")
    if len(results) == 2:
        a, b = results
        print(f"speed ratio {a['extractor']}/{b['extractor']}: {a['wcxb_pages_per_s'] / b['wcxb_pages_per_s']:.1f}x; "
              f"WCXB F1 difference {a['wcxb_f1_mean'] - b['wcxb_f1_mean']:+.3f}")
    print("published for reference:")
    for metric, figures in PUBLISHED.items():
        print(f"  {metric}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
