"""Stage 2, decontaminate: drop (or annotate) documents that share word n-grams with the evaluation
task files. The task files are found before Spark starts (:func:`eval_files`); the index is built on
the driver (:func:`build_index`), shipped to executors as a file and matched there (:func:`decontaminate`)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from jobs.common.ship import local_file, ship_file
from jobs.dataset import log
from lakesift.config import ConfigError
from lakesift.log import kv
from lakesift.resolve import ResolveError, resolve, shared_path


def eval_files(d) -> tuple[list[tuple[str, Path]], str | None]:
    """``(task files, note)`` for the config's ``decontamination`` section: no files when it is disabled
    or, with ``if_missing: skip``, when there are none (``note`` then says so, for the log);
    :class:`ConfigError` when there are none and that is an error."""
    if not d.enabled:
        return [], None
    root, why = d.eval_dir or shared_path("data", "eval"), ""
    try:  # a cloud folder (s3://…) is fetched once into the local cache; paths, file: and dbfs:/ as they are
        root = resolve(root, "evaluation task folder", must_exist=False)
    except ResolveError as exc:
        why = f" ({exc})"
    from udfs.decontam import task_files

    files = task_files(Path(root), d.tasks) if not why and Path(root).is_dir() else []
    if files:
        return files, None
    msg = f"decontamination: no task files matching {d.tasks} under {root}{why}"
    if d.if_missing == "skip":
        return [], msg + "; skipped (decontamination.if_missing: skip)"
    raise ConfigError(msg + " (set decontamination.eval_dir / --eval-dir, or enabled: false)")


def build_index(files: list[tuple[str, Path]], d, work: str):
    """``(EvalIndex, path of its saved copy under work)``, on the driver."""
    from udfs.decontam import EvalIndex

    t0 = time.perf_counter()
    index = EvalIndex.build(files, d.ngram, d.lowercase)
    path = os.path.join(work, f"evalindex-{hashlib.sha1(index.hashes.tobytes()).hexdigest()[:12]}.npz")
    index.save(path)
    log.info(kv(eval_tasks=len(index.tasks), eval_examples=sum(index.examples), ngrams=len(index.hashes),
                seconds=round(time.perf_counter() - t0, 1)))
    return index, path


def decontam_task(index_name: str, lowercase: bool):
    """``mapInArrow``: documents in, the same with ``_matched`` (n-grams found) and ``_hits``
    (``task << 32 | example`` of each eval example found) out."""

    def task(batches):
        import pyarrow as pa

        from udfs.decontam import load_index

        index = load_index(local_file(index_name))
        for b in batches:
            texts = b.column("text").to_pylist()
            matched, hits = [], []
            for t in texts:
                n, pairs = index.match(t or "", lowercase)
                matched.append(n)
                hits.append([(tk << 32) | ex for tk, ex in pairs])
            yield pa.RecordBatch.from_arrays(
                [*b.columns, pa.array(matched, pa.int64()), pa.array(hits, pa.list_(pa.int64()))],
                names=[*b.schema.names, "_matched", "_hits"])

    return task


def decontaminate(spark, docs, d, index, index_path: str, persisted: list):
    """``(documents kept, documents flagged, per-task report)``; the checked documents are cached
    (appended to ``persisted``: the caller unpersists them once the shards are written)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    name = ship_file(spark, index_path)
    checked = docs.mapInArrow(decontam_task(name, d.lowercase),
                              "doc_id string, text string, source string, domain string, _matched long, "
                              "_hits array<long>") \
        .persist(StorageLevel.MEMORY_AND_DISK)
    persisted.append(checked)
    bad = F.col("_matched") >= d.min_matches
    hits = (checked.filter(bad).select("doc_id", "source", F.explode("_hits").alias("h"))
            .select("doc_id", (F.col("h") / F.lit(1 << 32)).cast("long").alias("task"),
                    F.pmod("h", F.lit(1 << 32)).alias("example")))
    per_task = {r.task: (r.examples, r.docs) for r in hits.groupBy("task").agg(
        F.countDistinct("example").alias("examples"), F.countDistinct("doc_id").alias("docs")).collect()}
    n_bad = checked.filter(bad).count()
    report = []
    for t, task_name in enumerate(index.tasks):
        found, touched = per_task.get(t, (0, 0))
        report.append({"task": task_name, "examples": index.examples[t], "too_short": index.too_short[t],
                       "examples_found": int(found), "documents_touched": int(touched)})
    kept = (checked.filter(~bad) if d.action == "drop" else checked).select("doc_id", "text", "source", "domain")
    log.info(kv(contaminated_documents=n_bad, action=d.action,
                tasks_touched=sum(1 for c in report if c["documents_touched"])))
    return kept, n_bad, report
