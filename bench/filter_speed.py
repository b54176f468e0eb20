#!/usr/bin/env python
"""Documents/s of the DCLM-Baseline pipeline against datatrove's closest filters, same documents.

    python bench/filter_speed.py [--shared ../shared] [--copies 12] [--repeats 3] [--peer-docs 2000]

Documents: the text our ingest path extracts from the 1,719 real pages of ../shared/data/extraction
(WCXB dev, trafilatura-eval, Readability), ``--copies`` times with distinct ids (12: ~20,600), stored
once under bench/out/filter/ as JSONL and as a Delta ``documents`` table.

Measured, alternating, medians over ``--repeats``:
* ours, one process: ``udfs.pipeline`` over every document (docs/s per core), with the compiled
  kernels (lakesift_native/) and, on the first ``--peer-docs`` documents, in pure Python;
* ours, Spark: ``python jobs/filter.py --config conf/pipelines/dclm_baseline.yaml`` in a fresh process,
  end to end (start-up, Delta read, pipeline, three Delta writes), local[*] on all cores;
* datatrove (its own venv, ``DATATROVE_PYTHON``, default ~/.cache/lakesift/bench-venv): LanguageFilter
  (en, 0.65; lid.176), GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter, FineWebQualityFilter,
  one process, on the first ``--peer-docs`` of the same documents (0 = all; at its ~20 docs/s all
  20k documents take ~17 minutes a run).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIG = REPO / "conf" / "pipelines" / "dclm_baseline.yaml"
# the heuristic part (the quality classifier has its own benchmark, bench/quality_speed.py)
SKIP = ["quality", "quality_threshold"]
PEER_PY = os.environ.get("DATATROVE_PYTHON", str(Path.home() / ".cache/lakesift/bench-venv/bin/python"))

PREP = """
import json, sys
sys.path.insert(0, {repo!r})
from jobs.common.session import get_spark
spark = get_spark("bench-prep")
df = spark.read.json({jsonl!r}, schema="doc_id string, url string, text string, language string, language_score double")
df.repartition(16).write.format("delta").mode("overwrite").save({table!r})
print(spark.read.format("delta").load({table!r}).count())
"""


def prepare(shared: Path, out: Path, copies: int) -> tuple[Path, Path, int]:
    from bench.ingest_speed import real_pages
    from udfs.charset import UndecodableError, decode_html
    from udfs.extract import make_extractor
    from udfs.langid import identify

    jsonl, lake = out / f"docs-{copies}.jsonl", out / f"lake-{copies}"
    if not jsonl.exists():
        out.mkdir(parents=True, exist_ok=True)
        extract = make_extractor("resiliparse")
        base = []
        for url, body in real_pages(shared):
            try:
                text = extract(decode_html(body)[0])
            except UndecodableError:
                continue
            if text.strip():
                base.append((url, text))
        langs, scores = identify([t for _, t in base])
        with open(jsonl, "w", encoding="utf-8") as f:
            for k in range(copies):
                for i, ((url, text), lang, score) in enumerate(zip(base, langs, scores, strict=True)):
                    f.write(json.dumps({"doc_id": f"{k}-{i}", "url": url, "text": text, "language": lang,
                                        "language_score": float(score)}) + "\n")
    if not (lake / "documents").exists():
        code = PREP.format(repo=str(REPO), jsonl=str(jsonl), table=str(lake / "documents"))
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    n = sum(1 for _ in open(jsonl, encoding="utf-8"))
    return jsonl, lake, n


def ours_python(docs: list[dict], pure: bool = False) -> tuple[float, int, int]:
    """One process, one document at a time; ``pure``: without the compiled kernels (udfs.kernels)."""
    from udfs import kernels
    from udfs.pipeline import load

    pipe = load(CONFIG, skips=SKIP)
    with kernels.pure_python(pure):
        t0 = time.perf_counter()
        kept = 0
        for d in docs:
            meta = {"language": d["language"], "language_score": d["language_score"]}
            kept += pipe.run(d["text"], d["url"], meta).kept
        return time.perf_counter() - t0, len(docs), kept


def ours_spark(lake: Path) -> tuple[float, int]:
    elapsed, proc = harness.run_job([sys.executable, str(REPO / "jobs" / "filter.py"), "--config", str(CONFIG),
                                     "--lake", str(lake), "--skip", ",".join(SKIP)], "filter job")
    return elapsed, harness.counted(proc, "kept ")


def peer(jsonl: Path, limit: int) -> dict | None:
    if not Path(PEER_PY).exists():
        print(f"datatrove venv not found at {PEER_PY}: python3 -m venv ~/.cache/lakesift/bench-venv && "
              "~/.cache/lakesift/bench-venv/bin/pip install 'datatrove[processing]'")
        return None
    from udfs.langid import default_model_path

    proc = subprocess.run([PEER_PY, str(REPO / "bench" / "datatrove_peer.py"), str(jsonl),
                           default_model_path(), str(limit)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    args = harness.parse_args(__doc__, out="filter", copies=12, repeats=3, peer_docs=2000)
    jsonl, lake, n = prepare(Path(args.shared), Path(args.out), args.copies)
    cores = os.cpu_count() or 1
    print(f"documents: {n} (real extracted pages, {args.copies} copies); {cores} cores")
    from udfs import kernels

    print(f"kernels: {kernels.describe()}" + ("" if kernels.rules else " (lakesift_native not built: run make setup)"))
    all_docs = [json.loads(line) for line in open(jsonl, encoding="utf-8")]
    py_t, sp_t, dt_rate, pure_rate = [], [], [], []
    for i in range(args.repeats):
        t, docs, kept_py = ours_python(all_docs)
        py_t.append(t)
        t, pure_docs, _ = ours_python(all_docs[:args.peer_docs] if args.peer_docs else all_docs, pure=True)
        pure_rate.append(pure_docs / t)
        t, kept_sp = ours_spark(lake)
        sp_t.append(t)
        r = peer(jsonl, args.peer_docs)
        if r:
            dt_rate.append(r["docs"] / r["seconds"])
        print(f"run {i + 1}: ours 1 process {docs / py_t[-1]:.0f} docs/s (kept {kept_py}); ours spark "
              f"{sp_t[-1]:.1f}s (kept {kept_sp}); datatrove "
              + (f"{dt_rate[-1]:.1f} docs/s on {r['docs']} docs (kept {r['kept']})" if r else "n/a"), flush=True)
    py_rate, sp_rate = harness.rate(n, py_t), harness.rate(n, sp_t)
    print(f"median: ours {py_rate:.0f} docs/s per core (1 process); ours spark {sp_rate:.0f} docs/s end to end "
          f"on {cores} cores = {sp_rate / cores:.0f} docs/s per core, start-up included")
    print(f"median: ours without the C kernels {statistics.median(pure_rate):.0f} docs/s per core (1 process, first "
          f"{args.peer_docs or n} documents)")
    if dt_rate:
        dt = statistics.median(dt_rate)
        print(f"median: datatrove {dt:.1f} docs/s (1 process = 1 core)")
        print(harness.ratios("ratio per core", {"ours spark / datatrove": sp_rate / cores / dt,
                                                "ours 1 process / datatrove": py_rate / dt}, digits=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
