#!/usr/bin/env python
"""fastText quality scoring: our Spark step against a single-process fastText loop, same documents.

    python bench/quality_speed.py [--shared ../shared] [--copies 12] [--repeats 3]

Model: trained by ``jobs/train_quality.py`` with DCLM's recipe (``conf/quality/dclm.yaml``: word
bigrams, dim 100, 2M buckets, so the model has DCLM's size and per-token cost) on edited prose from
``../shared/data/text`` (ABC news, State of the Union and inaugural addresses) as ``hq`` against the
benchmark's web pages as ``cc``. Its held-out ROC-AUC (from the job's metrics.json) is printed.

Documents: the real extracted pages of bench/filter_speed.py (``--copies`` x 1,719, ~20,600).
Measured, alternating, medians over ``--repeats``:
* loop: one process, DCLM's way: ``model.predict(" ".join(text.strip().splitlines()))`` per document;
* batched: one process, ``udfs.quality.score`` on batches of 512 (one fastText call per batch);
* spark: ``python jobs/filter.py`` with a pipeline of just the enricher, in a fresh process, end to end
  (start-up, Delta read, model shipped to executors, scoring, Delta writes), local[*] on all cores.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def train_model(shared: Path, lake: Path, out: Path) -> dict:
    model = out / "model"
    if not (model / "metrics.json").exists():
        nltk = shared / "data" / "text" / "nltk-corpora"
        cmd = [sys.executable, str(REPO / "jobs" / "train_quality.py"), "--lake", str(lake),
               "--positive", str(nltk / "abc.zip"), str(nltk / "state_union.zip"), str(nltk / "inaugural.zip"),
               "--negative", "documents", "--out", str(model), "--config", str(REPO / "conf" / "quality" / "dclm.yaml"),
               "--per-class", "5000"]
        harness.run_job(cmd, "train_quality")
    return json.loads((model / "metrics.json").read_text())


def loop(model, texts) -> float:
    t0 = time.perf_counter()
    for t in texts:  # DCLM's classify_fasttext_hq_prob, one page at a time
        label, prob = model.predict(" ".join(t.strip().splitlines()))
        _ = prob[0] if label[0] == "__label__hq" else 1 - prob[0]
    return time.perf_counter() - t0


def batched(model, texts) -> float:
    from udfs import quality

    t0 = time.perf_counter()
    for i in range(0, len(texts), 512):
        quality.score(model, texts[i:i + 512])
    return time.perf_counter() - t0


def spark(lake: Path, model: Path) -> tuple[float, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(f"name: quality_bench\nsteps:\n  - func: fasttext_quality_enricher\n    model: {model}\n"
                "  - func: quality_filter\n    threshold: 0.018112\n")
    try:
        elapsed, proc = harness.run_job([sys.executable, str(REPO / "jobs" / "filter.py"), "--config", f.name,
                                         "--lake", str(lake), "--output", "quality_bench"], "filter job")
    finally:
        os.unlink(f.name)
    kept = harness.counted(proc, "kept ")
    # the job's own timing of its scoring + output phase (Spark start-up, Delta log set-up and the
    # statistics write excluded): what a long run converges to
    m = re.search(r"outputs_seconds=([0-9.]+)", proc.stderr)
    return elapsed, kept, float(m.group(1)) if m else float("nan")


def main() -> int:
    args = harness.parse_args(__doc__, out="filter", copies=12, repeats=3)
    from bench.filter_speed import prepare
    from udfs import quality

    jsonl, lake, n = prepare(Path(args.shared), Path(args.out), args.copies)
    metrics = train_model(Path(args.shared), lake, Path(args.out) / "quality")
    v = metrics["valid"]
    print(f"model: DCLM recipe, {metrics['train']['positive']} + {metrics['train']['negative']} training examples; "
          f"held-out ROC-AUC {v['roc_auc']:.4f} on {v['positives']} hq / {v['negatives']} cc")
    model_path = Path(args.out) / "quality" / "model"
    model = quality.load_model(str(model_path / "model.bin"))
    texts = [json.loads(line)["text"] for line in open(jsonl, encoding="utf-8")]
    cores = os.cpu_count() or 1
    print(f"documents: {n}; {cores} cores; model {os.path.getsize(model_path / 'model.bin') / 1e6:.0f} MB")
    lt, bt, st, ph = [], [], [], []
    for i in range(args.repeats):
        lt.append(loop(model, texts))
        bt.append(batched(model, texts))
        t, kept, phase = spark(lake, model_path)
        st.append(t)
        ph.append(phase)
        print(f"run {i + 1}: loop {n / lt[-1]:.0f} docs/s; batched {n / bt[-1]:.0f} docs/s; "
              f"spark {n / st[-1]:.0f} docs/s end to end, {n / ph[-1]:.0f} docs/s in its scoring + write phase "
              f"(kept {kept})", flush=True)
    lr, br, sr, pr = (harness.rate(n, x) for x in (lt, bt, st, ph))
    print(f"median: loop {lr:.0f} docs/s (1 core); batched {br:.0f} docs/s (1 core); spark {sr:.0f} docs/s "
          f"end to end on {cores} cores (start-up included), {pr:.0f} docs/s in the scoring + Delta write phase")
    print(f"ratio: spark end to end / loop {sr / lr:.2f}x; spark scoring + write phase / loop {pr / lr:.2f}x "
          f"({pr / cores / lr:.2f}x per core); batched / loop {br / lr:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
