#!/usr/bin/env python
"""Documents/s per core of conf/pipelines/zh_baseline.yaml against Data-Juicer's closest Chinese ops, same documents.

    python bench/zh_filter.py [--shared ../shared] [--runs 3] [--docs 10624] [--dj-np 0]

Documents (bench/zh_pages.py, built once under bench/out/zh/): the 2,656 real Chinese HTML pages of
../shared/data/zh/html, ``ceil(--docs / 2656)`` copies (each copy its own URL and one numbered line, so
no copy is an exact duplicate of another), written as WARC files and ingested by ``jobs/ingest.py``
into a Delta ``documents`` table; the first ``--docs`` of them (WARC file and record order; a Delta
table of their own when fewer than all) and the same rows exported to JSONL, so both sides read the
text our ingest produced.

Measured, alternating (ours 1 process, ours Spark, the same two with only the steps matching
Data-Juicer's ops, Data-Juicer, ...), medians over ``--runs``:
* ours, Spark: ``python jobs/filter.py --config conf/pipelines/zh_baseline.yaml --input documents
  --output zh_filtered`` in a fresh process, end to end (JVM and Spark start-up, Delta read, the
  pipeline, the Delta writes), local[*] on all cores; docs/s per core = documents / seconds / cores.
  Whatever steps the pipeline file holds are run;
* ours, one process: ``udfs.pipeline`` (``run_batch``, 512 documents a batch, as the job's Arrow
  batches) over the JSONL in a fresh Python process, from loading the pipeline (its dictionaries and
  models load on first use, inside the timing) to the last batch;
* Data-Juicer (bench/datajuicer_peer.py, in its own venv ``DATAJUICER_PYTHON``, default
  ~/.cache/lakesift/dj-venv): chinese_convert_mapper (t2s), text_length_filter (min_len 201),
  character_repetition_filter (rep_len 10, max_ratio 0.5), flagged_words_filter (lang zh, jieba
  tokens, word 2-grams, max_ratio 0.0045 -- Data-Juicer's config_all.yaml value -- over our blacklist
  dictionary converted to its JSON format), special_characters_filter (max_ratio 0.25), through its
  NestedDataset.process over a Hugging Face dataset, ``num_proc=1`` (one core); ``--dj-np N`` (N > 1)
  also runs it with ``num_proc=N`` each round and reports that per core. Its time is its op time
  (JSONL reading and ``import data_juicer`` left out, in its favour).

Then the keep / drop decisions per document: ours from the Spark job's output tables (zh_filtered,
zh_filtered_rejected; checked against the one-process run), Data-Juicer's from its output; the share of
documents both keep or both drop, the 2x2 table and the commonest reasons for each side's drops that
the other side keeps.

Peer set-up (Python 3.11; PyPI only: the word list comes from our dictionary and jieba's dictionary is
in its wheel, so nothing is downloaded at run time)::

    python3 -m venv ~/.cache/lakesift/dj-venv
    ~/.cache/lakesift/dj-venv/bin/pip install py-data-juicer==1.6.1 aiohttp==3.14.5 ray==2.60.0 \\
        opencc==1.1.9 jieba==0.42.1

(aiohttp: imported by ``import data_juicer`` but not declared; ray: imported by its dataset module,
which otherwise pip-installs it on first import; opencc: its ``nlp`` extra's pin; jieba: the tokenizer.)
"""

from __future__ import annotations

import collections
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import harness
import zh_pages

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIG = REPO / "conf" / "pipelines" / "zh_baseline.yaml"
DEFAULT_DICTIONARY = "banlists/zh_blacklist.tsv"
PEER_PY = os.environ.get("DATAJUICER_PYTHON", str(Path.home() / ".cache/lakesift/dj-venv/bin/python"))
DJ_FLAGGED_MAX_RATIO = 0.0045
BATCH = 512
# our steps that do what Data-Juicer's five ops do (conversion, length, character repetition, flagged
# words, special characters): the "same ops" runs skip every other step of the pipeline
SAME_OPS = ("chinese_convert_modifier", "page_length_filter", "char_repetition_filter", "blacklist_filter",
            "special_char_ratio_filter")
# used only when neither the pipeline nor conf/ has a blacklist dictionary yet
FALLBACK_WORDS = ["博彩", "百家乐", "六合彩", "时时彩", "赌场", "网上赌博", "色情", "成人视频", "代开发票",
                  "刷单", "套现", "裸聊", "冰毒", "摇头丸", "传销", "网赚"]

ONE_PROCESS = """
import json, sys, time
sys.path.insert(0, {repo!r})
from udfs import kernels
from udfs.pipeline import load
docs = []
with open({jsonl!r}, encoding="utf-8") as f:
    for i, line in enumerate(f):
        if i >= {limit}:
            break
        docs.append(json.loads(line))
t0 = time.perf_counter()
pipe = load({config!r}, skips={skips!r})
out = []
for s in range(0, len(docs), {batch}):
    b = docs[s:s + {batch}]
    res = pipe.run_batch([d["text"] or "" for d in b], [d["url"] for d in b],
                         [{{"language": d["language"], "language_score": d["language_score"]}} for d in b])
    out += [None if o.kept else [o.step, o.reason] for o in res]
seconds = time.perf_counter() - t0
with open({decisions!r}, "w", encoding="utf-8") as f:
    json.dump(out, f)
print(json.dumps({{"docs": len(docs), "kept": sum(o is None for o in out), "seconds": seconds,
                  "kernels": kernels.describe()}}))
"""

SUBSET = """
import sys
sys.path.insert(0, {repo!r})
from jobs.common.session import get_spark
spark = get_spark("bench-zh-subset")
df = spark.read.format("delta").load({src!r}).orderBy("warc_path", "warc_record_index").limit({n})
df.repartition(8).write.format("delta").mode("overwrite").save({dst!r})
print(spark.read.format("delta").load({dst!r}).count())
"""

DECISIONS = """
import json, sys
sys.path.insert(0, {repo!r})
from jobs.common.session import get_spark
spark = get_spark("bench-zh-decisions")
out = {{r.doc_id: None for r in spark.read.format("delta").load({kept!r}).select("doc_id").toLocalIterator()}}
for r in spark.read.format("delta").load({rejected!r}).select("doc_id", "step", "reason").toLocalIterator():
    out[r.doc_id] = [r.step, r.reason]
with open({path!r}, "w", encoding="utf-8") as f:
    json.dump(out, f)
print(len(out))
"""


def prepare(shared: Path, out: Path, n_docs: int) -> tuple[dict, str, int]:
    """The input: (zh_pages' build info, the filter job's --input table, number of documents)."""
    pages = sum(1 for _ in open(shared / "data" / "zh" / "html" / "index.jsonl", encoding="utf-8"))
    copies = max(1, math.ceil(n_docs / pages))
    info = zh_pages.build(shared, out, copies)
    lake, n = Path(info["lake"]), min(n_docs, info["docs"])
    table = "documents"
    if n < info["docs"]:
        table = f"documents_first_{n}"
        if not (lake / table / "_delta_log").exists():
            code = SUBSET.format(repo=str(REPO), src=str(lake / "documents"), n=n, dst=str(lake / table))
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=zh_pages.job_env())
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-3000:])
                raise SystemExit("subset table failed")
    return info, table, n


def flagged_words(out: Path) -> tuple[Path, str, int]:
    """Data-Juicer's word list from our blacklist dictionary: (its folder, where the words came from, count)."""
    from udfs import resources
    from udfs.pipeline import load

    path = next((step.p.dictionary for _, step in load(CONFIG).steps if step.name == "blacklist_filter"), None)
    where = f"the pipeline's blacklist_filter dictionary ({path})" if path else None
    if path is None:
        try:
            resources.resolve(DEFAULT_DICTIONARY)
            path, where = DEFAULT_DICTIONARY, f"conf/{DEFAULT_DICTIONARY} (the pipeline has no blacklist_filter)"
        except FileNotFoundError:
            pass
    if path is not None:
        from udfs.steps.blacklist import read_dictionary

        words = [e.word for e in read_dictionary(path)]
    else:
        words, where = FALLBACK_WORDS, "a fallback list of 16 words (no blacklist dictionary yet)"
    folder = out / "dj_assets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zh_flagged_words.json").write_text(json.dumps({"zh": words}, ensure_ascii=False), encoding="utf-8")
    return folder, where, len(words)


def same_ops_skips() -> list[str]:
    """Step ids of zh_baseline.yaml to skip for the run with only the steps Data-Juicer's ops match."""
    from udfs.pipeline import load

    return [sid for sid, _ in load(CONFIG).steps if sid not in SAME_OPS]


def ours_python(jsonl: str, n: int, decisions: Path, skips: list[str] | None = None) -> dict:
    code = ONE_PROCESS.format(repo=str(REPO), jsonl=jsonl, limit=n, config=str(CONFIG), batch=BATCH,
                              decisions=str(decisions), skips=list(skips or []))
    _, proc = harness.run_job([sys.executable, "-c", code], "ours (1 process)", env=zh_pages.job_env())
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ours_spark(lake: str, table: str, skips: list[str] | None = None) -> tuple[float, int, int]:
    extra = ["--skip", ",".join(skips), "--output", "zh_filtered_same_ops"] if skips else ["--output", "zh_filtered"]
    elapsed, proc = harness.run_job([sys.executable, str(REPO / "jobs" / "filter.py"), "--config", str(CONFIG),
                                     "--lake", lake, "--input", table, *extra],
                                    "filter job", env=zh_pages.job_env())
    line = next(x for x in proc.stdout.splitlines() if x.startswith("kept "))
    return elapsed, harness.counted(proc, "kept "), int(line.split()[3])


def spark_decisions(lake: str, path: Path) -> dict | None:
    code = DECISIONS.format(repo=str(REPO), kept=f"{lake}/zh_filtered", rejected=f"{lake}/zh_filtered_rejected",
                            path=str(path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=zh_pages.job_env())
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-2000:])
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def peer(jsonl: str, words: Path, n: int, num_proc: int, keep_out: Path) -> dict | None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    cmd = [PEER_PY, str(REPO / "bench" / "datajuicer_peer.py"), jsonl, str(words), "--num-proc", str(num_proc),
           "--limit", str(n), "--keep-out", str(keep_out), "--flagged-max-ratio", str(DJ_FLAGGED_MAX_RATIO)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median(xs: list[float]) -> float:
    import statistics

    return statistics.median(xs)


def agreement(docs: list[dict], ours: list, dj: dict) -> None:
    """Prints the share of documents both sides keep or both drop, the 2x2 table, and each side's
    commonest reasons for the documents the other side keeps (an example URL each)."""
    keep, dropped_by = dj["keep"], dj["dropped_by"]
    n = len(docs)
    table = collections.Counter((ours[i] is None, bool(keep[i])) for i in range(n))
    same = table[(True, True)] + table[(False, False)]
    print(f"agreement on keep / drop: {same / n:.1%} of {n} documents")
    print(f"{'':16s}{'DJ keeps':>10s}{'DJ drops':>10s}")
    for label, o in (("ours keeps", True), ("ours drops", False)):
        print(f"{label:16s}{table[(o, True)]:10d}{table[(o, False)]:10d}")
    for title, pick, reason in (
            ("ours drops, DJ keeps: our reasons", lambda i: ours[i] is not None and keep[i],
             lambda i: f"{ours[i][0]}: {ours[i][1]}"),
            ("DJ drops, ours keeps: DJ's op", lambda i: ours[i] is None and not keep[i], lambda i: dropped_by[i])):
        c, example = collections.Counter(), {}
        for i in range(n):
            if pick(i):
                r = reason(i)
                c[r] += 1
                example.setdefault(r, docs[i]["url"])
        print(f"{title} ({sum(c.values())} documents):")
        for r, k in c.most_common(10):
            print(f"  {k:6d}  {r}   e.g. {example[r]}")


def main() -> int:
    args = harness.parse_args(__doc__, out="zh", runs=3, docs=10624, dj_np=0)
    out = Path(args.out)
    info, table, n = prepare(Path(args.shared), out, args.docs)
    lake, jsonl = info["lake"], info["jsonl"]
    docs = []
    with open(jsonl, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= n:
                break
            docs.append(json.loads(line))
    dup = n - len({d["text"] for d in docs})
    cores = os.cpu_count() or 1
    from udfs.pipeline import load

    steps = [sid for sid, _ in load(CONFIG).steps]
    print(f"documents: {n} ({info['pages']} real Chinese pages x {info['copies']} copies, each copy its own URL "
          f"and numbered line: no copy is an exact duplicate of another; {dup} share their text with a "
          f"different page, as in the source), ingested by jobs/ingest.py; {cores} cores")
    print(f"pipeline {CONFIG.relative_to(REPO)}: {len(steps)} steps: {', '.join(steps)}")
    words, where, n_words = flagged_words(out)
    have_peer = Path(PEER_PY).exists()
    if have_peer:
        print(f"Data-Juicer flagged words: {n_words} words from {where}")
    else:
        print(f"Data-Juicer venv not found at {PEER_PY}: python3 -m venv ~/.cache/lakesift/dj-venv && "
              "~/.cache/lakesift/dj-venv/bin/pip install py-data-juicer==1.6.1 aiohttp==3.14.5 ray==2.60.0 "
              "opencc==1.1.9 jieba==0.42.1   (running our side only)")
    py_dec, dj_keep = out / "decisions-1proc.json", out / "dj-keep.json"
    skips = same_ops_skips()
    print(f"same ops: ours with only {', '.join(SAME_OPS)} (--skip the other {len(skips)} steps)")
    py_t, sp_t, dj_t, djn_t, py_same, sp_same = [], [], [], [], [], []
    dj_last = None
    for i in range(args.runs):
        r = ours_python(jsonl, n, py_dec)
        py_t.append(r["seconds"])
        t, kept_sp, n_in = ours_spark(lake, table)
        sp_t.append(t)
        r2 = ours_python(jsonl, n, out / "decisions-1proc-same-ops.json", skips)
        py_same.append(r2["seconds"])
        t2, kept2, _ = ours_spark(lake, table, skips)
        sp_same.append(t2)
        line = (f"run {i + 1}: ours 1 process {n / r['seconds']:.0f} docs/s (kept {r['kept']}, {r['kernels']}); "
                f"ours spark {t:.1f}s = {n / t / cores:.0f} docs/s per core (kept {kept_sp} of {n_in}); "
                f"same ops: 1 process {n / r2['seconds']:.0f} docs/s (kept {r2['kept']}), spark {t2:.1f}s = "
                f"{n / t2 / cores:.0f} docs/s per core (kept {kept2})")
        if have_peer:
            d = peer(jsonl, words, n, 1, dj_keep)
            if d is None:
                have_peer = False
                line += "; datajuicer failed (stderr above)"
            else:
                dj_t.append(d["seconds"])
                dj_last = d
                line += (f"; datajuicer {d['docs'] / d['seconds']:.1f} docs/s (kept {d['kept']}; process "
                         f"{d['wall_seconds']:.1f}s, of which op seconds "
                         + ", ".join(f"{k.removesuffix('_filter').removesuffix('_mapper')} {v:.1f}"
                                     for k, v in d["ops"].items()) + ")")
            if have_peer and args.dj_np > 1:
                d2 = peer(jsonl, words, n, args.dj_np, out / f"dj-keep-np{args.dj_np}.json")
                if d2 is not None:
                    djn_t.append(d2["seconds"])
                    line += f"; datajuicer num_proc={args.dj_np} {d2['seconds']:.1f}s (kept {d2['kept']})"
        print(line, flush=True)

    py_rate, sp_rate = harness.rate(n, py_t), harness.rate(n, sp_t)
    print(f"median: ours spark {sp_rate:.0f} docs/s end to end on {cores} cores = {sp_rate / cores:.1f} docs/s "
          f"per core, start-up included ({median(sp_t):.1f}s)")
    print(f"median: ours 1 process {py_rate:.0f} docs/s per core ({median(py_t):.1f}s)")
    py_same_rate, sp_same_rate = harness.rate(n, py_same), harness.rate(n, sp_same)
    print(f"median, same ops: ours spark {sp_same_rate / cores:.1f} docs/s per core ({median(sp_same):.1f}s), "
          f"ours 1 process {py_same_rate:.0f} docs/s ({median(py_same):.1f}s)")
    if dj_t:
        dj = harness.rate(n, dj_t)
        print(f"median: datajuicer {dj:.1f} docs/s per core (num_proc=1; {median(dj_t):.1f}s of op time)")
        if djn_t:
            djn = harness.rate(n, djn_t)
            print(f"median: datajuicer num_proc={args.dj_np} {djn:.1f} docs/s = {djn / args.dj_np:.1f} docs/s "
                  f"per core ({median(djn_t):.1f}s)")
        print(harness.ratios("ratio per core", {"ours spark / datajuicer": sp_rate / cores / dj,
                                                "ours 1 process / datajuicer": py_rate / dj,
                                                "same ops, ours spark / datajuicer": sp_same_rate / cores / dj,
                                                "same ops, ours 1 process / datajuicer": py_same_rate / dj},
                             digits=1))
        goal = sp_rate / cores / dj
        print(f"goal ours spark >= 10x datajuicer per core: {'met' if goal >= 10 else 'NOT met'} ({goal:.1f}x)")

    # decisions: ours from the Spark job's tables (the last run), checked against the one-process run
    one = json.loads(py_dec.read_text(encoding="utf-8"))
    by_id = spark_decisions(lake, out / "decisions-spark.json")
    if by_id is None:
        print("could not read the filter job's tables: decisions from the one-process run")
        ours = one
    else:
        ours = [by_id.get(d["doc_id"], ["<missing>", "not in the job's output"]) for d in docs]
        differ = sum((a is None) != (b is None) for a, b in zip(ours, one, strict=True))
        print(f"ours: Spark job and one-process run differ on {differ} of {n} keep / drop decisions")
    drops = collections.Counter(o[0] for o in ours if o is not None)
    print("ours drops by step: " + ", ".join(f"{s} {k}" for s, k in drops.most_common()))
    if dj_last:
        dj_dec = json.loads(Path(dj_last["keep"]).read_text(encoding="utf-8"))
        dj_drops = collections.Counter(x for x in dj_dec["dropped_by"] if x)
        print("datajuicer drops by op: " + ", ".join(f"{s} {k}" for s, k in dj_drops.most_common()))
        agreement(docs, ours, dj_dec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
