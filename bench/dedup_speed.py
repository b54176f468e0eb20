#!/usr/bin/env python
"""MinHash near-dup removal: our Spark job vs datatrove's MinHash pipeline vs datasketch MinHashLSH,
same corpus, same run; time, peak memory, precision and recall.

    python bench/dedup_speed.py [--shared ../shared] [--docs 100000] [--scale 1 4] [--skip-peers]

Corpus (deterministic): real English sentences (the 1,719 extracted benchmark pages and the NLTK /
WikiText text of ../shared/data/text) drawn 8 at a time into base documents (~150 words), and 10% of
the documents planted as copies of a random base with a known share of words replaced
(0, 1, 2, 5, 10, 20 %). ``--scale 1 4`` also runs 4x the documents, to show how cost grows.

Ground truth ("the pairs that matter", by brute force on exact 5-word-shingle Jaccard): every pair
inside a planted family (a base and its copies), and every document a method removed checked against
every document sharing a shingle with it. Recall: share of pairs with Jaccard >= 0.8 of which at most
one document survived. Precision: share of removed documents that have another document at
Jaccard >= 0.8.

Tools, one at a time, each in its own process tree, peak memory = the largest sum of the RSS of the
tree seen (sampled every 0.2 s; for Spark: JVM plus Python workers):
* ours: ``python jobs/dedup/main.py`` with a MinHash-only config (128 permutations, 20 bands x 6 rows,
  exact-Jaccard verification of candidate edges), end to end including Spark start-up;
* datatrove 0.10 (its venv): signatures, buckets, clustering, filtering (defaults: 14 x 8), 2 workers;
* datasketch ``MinHashLSH(threshold=0.8, num_perm=128)``, one process: signatures, insert, query,
  union-find.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PEER_PY = os.environ.get("DATATROVE_PYTHON", str(Path.home() / ".cache/lakesift/bench-venv/bin/python"))
RATES = [0.0, 0.01, 0.02, 0.05, 0.10, 0.20]

PREP = """
import sys
sys.path.insert(0, {repo!r})
from jobs.common.session import get_spark
spark = get_spark("bench-prep")
spark.read.json({jsonl!r}, schema="id string, text string").withColumnRenamed("id", "doc_id") \\
    .repartition(8).write.format("delta").mode("overwrite").save({table!r})
"""
READ = """
import sys, json
sys.path.insert(0, {repo!r})
from jobs.common.session import get_spark
spark = get_spark("bench-read")
ids = [r.doc_id for r in spark.read.format("delta").load({table!r}).filter("NOT kept AND method = 'minhash'").collect()]
json.dump(ids, open({out!r}, "w"))
"""
CONFIG = """name: bench
steps:
  - method: minhash
    ngram: 5
    num_perm: 128
    threshold: 0.8
    bands: 20
    rows: 6
    verify: true
"""


# ------------------------------------------------------------------------------------------ corpus

def sentence_pool(shared: Path) -> list[str]:
    from bench.filter_speed import prepare

    jsonl, _, _ = prepare(shared, REPO / "bench" / "out" / "filter", 12)
    texts = []
    with open(jsonl, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 1719:  # the rest are copies
                break
            texts.append(json.loads(line)["text"])
    texts.append((REPO / "sample" / "text" / "hq" / "wikipedia.txt").read_text(encoding="utf-8"))
    for name in ("abc.zip", "state_union.zip", "inaugural.zip"):
        with zipfile.ZipFile(shared / "data" / "text" / "nltk-corpora" / name) as zf:
            texts += [zf.read(n).decode("utf-8", "replace") for n in zf.namelist() if n.endswith(".txt")]
    pool = set()
    for t in texts:
        for s in re.split(r"(?<=[.!?])\s+", t.replace("\n", " ")):
            if 6 <= len(s.split()) <= 40:
                pool.add(s.strip())
    return sorted(pool)


def build_corpus(pool: list[str], n_docs: int, seed: int = 1) -> tuple[dict[str, str], list[list[str]]]:
    rng = random.Random(seed)
    n_planted = n_docs // 10
    docs = {f"d{i:07d}": " ".join(rng.sample(pool, 8)) for i in range(n_docs - n_planted)}
    bases = sorted(docs)
    vocab = [w for s in rng.sample(pool, 2000) for w in s.split()]
    families: dict[str, list[str]] = defaultdict(list)
    for j in range(n_planted):
        src = rng.choice(bases)
        rate = RATES[j % len(RATES)]
        words = docs[src].split()
        words = [rng.choice(vocab) if rng.random() < rate else w for w in words]
        pid = f"p{j:07d}"
        docs[pid] = " ".join(words)
        families[src].append(pid)
    return docs, [[b, *c] for b, c in sorted(families.items())]


# ------------------------------------------------------------------------------------------ measuring

def _tree_rss(pid: int) -> int:
    """Sum of RSS (bytes) of ``pid`` and all its descendants, from /proc."""
    children = defaultdict(list)
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
                children[int(fields[1])].append(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    total, stack = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while stack:
        q = stack.pop()
        try:
            total += int(Path(f"/proc/{q}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
        stack += children.get(q, [])
    return total


def run_measured(cmd: list[str], env=None) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    th.join()
    if proc.returncode != 0:
        sys.stderr.write(err[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd[:3])}")
    return time.perf_counter() - t0, peak[0], out


def datasketch_peer(jsonl: str) -> None:
    """One process: signatures, MinHashLSH insert + query, union-find; prints removed ids."""
    from datasketch import MinHash, MinHashLSH

    from udfs import dedup as D

    t0 = time.perf_counter()
    docs = [json.loads(line) for line in open(jsonl, encoding="utf-8")]
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    sigs = {}
    for d in docs:
        sh = D.shingles(D.normalize_words(d["text"]), 5)
        if not sh:
            continue
        m = MinHash(num_perm=128, seed=1)
        m.update_batch(sh)
        sigs[d["id"]] = m
        lsh.insert(d["id"], m)
    smallest = D.components((k, o) for k, m in sigs.items() for o in lsh.query(m))  # union-find
    removed = [k for k in sigs if smallest.get(k, k) != k]
    print(json.dumps({"seconds": time.perf_counter() - t0, "removed": removed}))


# ------------------------------------------------------------------------------------------ truth

def evaluate(docs: dict[str, str], families: list[list[str]], removed: set[str]) -> dict:
    from udfs import dedup as D

    sh = {}

    def shingles(k):
        if k not in sh:
            sh[k] = set(D.shingles(D.normalize_words(docs[k]), 5))
        return sh[k]

    pairs = [(a, b) for fam in families for i, a in enumerate(fam) for b in fam[i + 1:]
             if D.jaccard(shingles(a), shingles(b)) >= 0.8]
    recalled = sum(1 for a, b in pairs if a in removed or b in removed)
    # precision: each removed document needs a partner at >= 0.8 (searched among documents sharing a shingle)
    family_of = {m: fam for fam in families for m in fam}
    suspects = [k for k in removed if not any(o != k and D.jaccard(shingles(k), shingles(o)) >= 0.8
                                              for o in family_of.get(k, []))]
    index = defaultdict(set)
    wanted = {s for k in suspects for s in shingles(k)}
    if wanted:
        for k in docs:
            for s in shingles(k) & wanted:
                index[s].add(k)
    false_pos = 0
    for k in suspects:
        cands = set().union(*(index[s] for s in shingles(k))) - {k}
        if not any(D.jaccard(shingles(k), shingles(o)) >= 0.8 for o in cands):
            false_pos += 1
    return {"true_pairs": len(pairs), "recall": recalled / len(pairs) if pairs else 1.0,
            "removed": len(removed), "precision": 1 - false_pos / len(removed) if removed else 1.0}


# ------------------------------------------------------------------------------------------ main

def run_scale(args, pool, n: int) -> None:
    out = Path(args.out) / f"n{n}"
    out.mkdir(parents=True, exist_ok=True)
    docs, families = build_corpus(pool, n)
    parts = out / "jsonl"
    parts.mkdir(exist_ok=True)
    ids = sorted(docs)
    for k in range(4):
        with open(parts / f"part-{k}.jsonl", "w", encoding="utf-8") as f:
            for i in ids[k::4]:
                f.write(json.dumps({"id": i, "text": docs[i]}) + "\n")
    every = out / "all.jsonl"
    with open(every, "w", encoding="utf-8") as f:
        for i in ids:
            f.write(json.dumps({"id": i, "text": docs[i]}) + "\n")
    lake = out / "lake"
    if not (lake / "filtered").exists():
        subprocess.run([sys.executable, "-c", PREP.format(repo=str(REPO), jsonl=str(every),
                                                          table=str(lake / "filtered"))], check=True, capture_output=True)
    words = sum(len(t.split()) for t in docs.values())
    print(f"\n--- {n:,} documents ({words / n:.0f} words each on average), "
          f"{sum(len(f) - 1 for f in families):,} planted copies in {len(families):,} families ---", flush=True)
    results = {}
    conf = Path(tempfile.mkstemp(suffix=".yaml")[1])
    conf.write_text(CONFIG)
    secs, peak, _ = run_measured([sys.executable, str(REPO / "jobs" / "dedup" / "main.py"), "--config", str(conf),
                                  "--lake", str(lake), "--output", "deduped_bench"])
    ids_file = out / "ours_removed.json"
    subprocess.run([sys.executable, "-c", READ.format(repo=str(REPO), table=str(lake / "dup_clusters"),
                                                      out=str(ids_file))], check=True, capture_output=True)
    results["ours (Spark, 2 cores)"] = (secs, peak, set(json.loads(ids_file.read_text())))
    if not args.skip_peers:
        secs, peak, stdout = run_measured([sys.executable, __file__, "--datasketch-peer", str(every)])
        results["datasketch MinHashLSH (1 process)"] = (secs, peak, set(json.loads(stdout.splitlines()[-1])["removed"]))
        if Path(PEER_PY).exists():
            work = Path(tempfile.mkdtemp(prefix="dt-minhash-"))
            secs, peak, stdout = run_measured([PEER_PY, str(REPO / "bench" / "datatrove_minhash_peer.py"),
                                               str(parts), str(work), "2"])
            removed = set(json.loads(stdout.splitlines()[-1])["removed"])
            results["datatrove MinHash (2 workers)"] = (secs, peak, removed)
        else:
            print(f"datatrove venv not found at {PEER_PY}; skipped")
    base = results["ours (Spark, 2 cores)"]
    print(f"{'tool':36s} {'seconds':>8s} {'peak MB':>8s} {'removed':>8s} {'precision':>9s} {'recall':>7s} "
          f"{'time vs ours':>12s} {'mem vs ours':>11s}")
    for name, (secs, peak, removed) in results.items():
        ev = evaluate(docs, families, removed)
        print(f"{name:36s} {secs:8.1f} {peak / 1e6:8.0f} {ev['removed']:8d} {ev['precision']:9.4f} "
              f"{ev['recall']:7.4f} {secs / base[0]:11.2f}x {peak / base[1]:10.2f}x", flush=True)
    print(f"(pairs at Jaccard >= 0.8 inside planted families: {evaluate(docs, families, set())['true_pairs']})")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--datasketch-peer":
        datasketch_peer(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "dedup"))
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--scale", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--skip-peers", action="store_true")
    args = ap.parse_args()
    pool = sentence_pool(Path(args.shared))
    print(f"sentence pool: {len(pool):,} real sentences; {os.cpu_count()} cores")
    for s in args.scale:
        run_scale(args, pool, args.docs * s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
