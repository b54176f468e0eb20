#!/usr/bin/env python
"""Tokens/s of the dataset job (jobs/dataset/) against a single-process HF tokenizers loop writing the
same MDS output, and read throughput of the shards through StreamingDataset.

    make bench      # or, from the repository: PYTHONPATH=. python bench/tokenize_speed.py \
                    #     [--shared ../shared] [--chars 50000000] [--repeats 3]

Text: the real extracted pages of bench/filter_speed.py, the first documents adding up to ``--chars``
characters (default 50 M), as a Delta table. Tokenizer: GPT-NeoX (../shared/data/tokenizers).
Measured, alternating, medians over ``--repeats``:
* loop: one process, ``Tokenizer.encode_batch`` on 256-document batches (the Rust library's own
  threads allowed), EOS appended, packed into 2049-token sequences, written through the job's MDS
  writer (``jobs.dataset.writers``: ``ndarray:uint16``, one shard group), in input order (no shuffle);
* job: ``python -m jobs.dataset`` in a fresh process, end to end (start-up, Delta read, tokenize,
  pack, global shuffle, executors writing MDS, index merge, manifest), decontamination off, as the
  loop has none; and once more with decontamination against all 62 evaluation files on.
* read: ``StreamingDataset`` over the job's shards, one process, every sample once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}

PREP = """
from jobs.common.session import get_spark
spark = get_spark("bench-prep")
df = spark.read.json({jsonl!r}, schema="doc_id string, text string")
df.repartition(8).write.format("delta").mode("overwrite").save({table!r})
"""


def prepare(shared: Path, out: Path, chars: int) -> tuple[Path, list[str], int]:
    from bench.filter_speed import prepare as prepare_docs

    jsonl_all, _, _ = prepare_docs(shared, REPO / "bench" / "out" / "filter", 12)
    lake = out / f"lake-{chars}"
    texts, total = [], 0
    sub = out / f"docs-{chars}.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    with open(jsonl_all, encoding="utf-8") as src, open(sub, "w", encoding="utf-8") as dst:
        for line in src:
            d = json.loads(line)
            texts.append(d["text"])
            total += len(d["text"])
            dst.write(json.dumps({"doc_id": d["doc_id"], "text": d["text"]}) + "\n")
            if total >= chars:
                break
    if not (lake / "docs").exists():
        code = PREP.format(jsonl=str(sub), table=str(lake / "docs"))
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=ENV, cwd=REPO)
    return lake, texts, total


def loop(tok_path: Path, texts: list[str], out: Path) -> tuple[float, int]:
    import numpy as np
    from tokenizers import Tokenizer

    from jobs.dataset.config import Output
    from jobs.dataset.writers import WRITERS

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(str(tok_path))
    eos = tok.token_to_id("<|endoftext|>")
    buf: list[int] = []
    w = WRITERS["mds"](str(out), Output(size_limit="64mb", write_ids=False), "uint16", 2049)
    w.open(0)
    for i in range(0, len(texts), 256):
        for enc in tok.encode_batch(texts[i:i + 256], add_special_tokens=False):
            buf.extend(enc.ids)
            buf.append(eos)
        while len(buf) >= 2049:
            w.write({"tokens": np.asarray(buf[:2049], dtype=np.uint16)})
            del buf[:2049]
    n = w.close()
    w.finalize([0])
    return time.perf_counter() - t0, n * 2049


def job(lake: Path, tok_path: Path, out: Path, shared: Path, decontam: bool) -> tuple[float, int, str]:
    conf = Path(tempfile.mkstemp(suffix=".yaml")[1])
    conf.write_text(f"""name: bench
sources: [{{name: web, table: docs}}]
decontamination: {{enabled: {str(decontam).lower()}, eval_dir: {shared / "data" / "eval"}}}
packing: {{seq_len: 2048, remainder: drop, groups: 16}}
shuffle: {{seed: 1, sequences_per_group: 4096}}
""")
    try:
        elapsed, proc = harness.run_job([sys.executable, "-m", "jobs.dataset", "--config", str(conf), "--lake",
                                         str(lake), "--out", str(out), "--tokenizer", str(tok_path)], "dataset job",
                                        env=ENV, cwd=REPO)
    finally:
        conf.unlink()
    m = json.loads((out / "manifest.json").read_text())
    dec = next((ln for ln in proc.stdout.splitlines() if ln.startswith("decontamination:")), "")
    return elapsed, m["tokens"], re.sub(r"; eval examples found.*", "", dec)


def read(out: Path) -> tuple[float, int]:
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(out), shuffle=False, batch_size=1)
    t0 = time.perf_counter()
    n = 0
    for s in ds:
        n += len(s["tokens"])
    return time.perf_counter() - t0, n


def main() -> int:
    args = harness.parse_args(__doc__, out="tokenize", chars=50_000_000, repeats=3)
    shared, out = Path(args.shared), Path(args.out)
    tok = shared / "data" / "tokenizers" / "gpt-neox-20b" / "20B_tokenizer.json"
    lake, texts, chars = prepare(shared, out, args.chars)
    print(f"text: {len(texts)} real documents, {chars:,} characters; {os.cpu_count()} cores")
    lt, jt, rt = [], [], []
    for i in range(args.repeats):
        t, ltok = loop(tok, texts, out / "loop")
        lt.append(t)
        t, jtok, _ = job(lake, tok, out / "job", shared, False)
        jt.append(t)
        t, rtok = read(out / "job")
        rt.append(t)
        print(f"run {i + 1}: loop {ltok / lt[-1]:,.0f} tokens/s ({ltok:,} tokens); job {jtok / jt[-1]:,.0f} tokens/s "
              f"({jtok:,} tokens, end to end); read {rtok / rt[-1]:,.0f} tokens/s", flush=True)
    t, dtok, dec = job(lake, tok, out / "job_decontam", shared, True)
    lr, jr, rr = harness.rate(ltok, lt), harness.rate(jtok, jt), harness.rate(rtok, rt)
    print(f"median: loop {lr:,.0f} tokens/s (1 process); job {jr:,.0f} tokens/s end to end; "
          f"ratio job / loop {jr / lr:.2f}x")
    print(f"job with decontamination (62 eval files, 13-grams): {dtok / t:,.0f} tokens/s end to end; {dec}")
    print(f"read: StreamingDataset {rr:,.0f} tokens/s in one process "
          f"({rr / 100_000:.0f}x the ~100k tokens/s one GPU consumes at 400M)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
