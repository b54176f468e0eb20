"""Remove duplicates from a Delta table: exact text / URL, MinHash-LSH, and paragraph-level (BFF-style).

    spark-submit jobs/dedup.py --config conf/dedup/default.yaml --lake LAKE \\
        [--input filtered] [--output deduped]

The config's steps run in order, each on the survivors of the previous one:

* ``exact``: documents whose normalised text (``udfs.dedup.normalized_text``) is equal;
* ``url``: documents with the same URL;
* ``minhash``: MinHash signatures (``udfs.dedup``; datasketch-compatible) computed in ``mapInArrow``;
  ``bands`` x ``rows`` LSH keys (given, or chosen for ``threshold`` as datasketch does); every
  document of a bucket is linked to the bucket's smallest id (a star, not all pairs); optionally each
  candidate edge is verified by the exact Jaccard of the two shingle sets; connected components by
  alternating large-star / small-star rounds on the cluster (Kiveris et al. 2014), checkpointed each
  round, at most ``max_rounds``; no edge list is collected to the driver;
* ``paragraph``: DCLM's BFF idea made exact and order-defined: an n-gram occurrence in paragraph
  ``p`` of document ``d`` is *seen earlier* when the same n-gram occurs in a paragraph that comes
  first in (doc_id, paragraph index) order. A document is dropped when at least ``doc_threshold`` of
  its n-grams were seen earlier; otherwise each paragraph with at least ``threshold`` of its n-grams
  seen earlier is removed ("old-both"), and a document left with no paragraph is dropped.

In every group of duplicates one survivor is kept by the step's ``keep`` policy: ``first`` (smallest
doc_id), ``longest`` (most characters, then smallest id) or ``best`` (largest value of column ``by``,
then smallest id), so the same input gives the same survivors.

Outputs under ``LAKE``: ``<output>`` (survivors), ``dup_clusters`` (``doc_id``, ``cluster_id``,
``kept``, ``method``, ``run_id`` for every document in a group of two or more; ``paragraph`` rows
list documents it dropped or shortened), and rows in ``run_stats`` per method. Every input document is
kept or removed exactly once; re-running the same config on the same input replaces its rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository, not jobs/, first on sys.path
    # (jobs/tokenize.py would otherwise shadow the standard library's `tokenize` module)
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Annotated, Literal  # noqa: E402

from pydantic import Field  # noqa: E402

from lakesift.config import ConfigError, StrictModel, config_fingerprint, load_model  # noqa: E402
from lakesift.log import get_logger, job_done, job_start, kv  # noqa: E402
from udfs.dedup import Normalization  # noqa: E402

log = get_logger("dedup")


class Keep(StrictModel):
    keep: Literal["first", "longest", "best"] = "first"
    by: str | None = None  # column for keep: best


class ExactStep(Keep):
    method: Literal["exact"]
    normalization: Normalization = Normalization()


class UrlStep(Keep):
    method: Literal["url"]


class MinHashStep(Keep):
    method: Literal["minhash"]
    ngram: int = Field(5, ge=1)
    num_perm: int = Field(128, ge=2)
    threshold: float = Field(0.8, gt=0, lt=1)
    bands: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1)
    seed: int = 1
    hash: Literal["sha1", "crc32"] = "sha1"
    normalization: Normalization = Normalization()
    verify: bool = False  # keep only candidate edges whose exact Jaccard >= threshold
    max_rounds: int = Field(40, ge=1)


class ParagraphStep(StrictModel):
    method: Literal["paragraph"]
    ngram: int = Field(13, ge=1)
    threshold: float = Field(0.8, gt=0, le=1)
    doc_threshold: float = Field(0.8, gt=0, le=1)
    normalization: Normalization = Normalization()


Step = Annotated[ExactStep | UrlStep | MinHashStep | ParagraphStep, Field(discriminator="method")]


class DedupConfig(StrictModel):
    name: str = "dedup"
    steps: list[Step]


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="jobs/dedup.py",
        description="Exact, URL, MinHash-LSH and paragraph-level dedup of a Delta table (conf/dedup/*.yaml).",
        epilog="Example: python jobs/dedup.py --config conf/dedup/default.yaml --lake ./lake",
    )
    p.add_argument("--config", required=True, help="conf/dedup/*.yaml")
    p.add_argument("--lake", default="./lake", help="root URI of the tables (default ./lake)")
    p.add_argument("--input", default="filtered", help="input table (default filtered)")
    p.add_argument("--output", default="deduped", help="output table (default deduped)")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------- helpers

def keep_order(step, columns):
    from pyspark.sql import functions as F

    if step.keep == "longest":
        return [F.length("text").desc(), F.col("doc_id").asc()]
    if step.keep == "best":
        if not step.by or step.by not in columns:
            raise ConfigError(f"keep: best needs `by` naming an input column (have {', '.join(columns)})")
        return [F.col(step.by).desc_nulls_last(), F.col("doc_id").asc()]
    return [F.col("doc_id").asc()]


def survivors_by_key(df, key_col, step, method, run_id):
    """Group on ``key_col`` (null: never a duplicate); the first row by the keep policy survives."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy(key_col).orderBy(*keep_order(step, df.columns))
    ranked = (df.withColumn("_rank", F.when(F.col(key_col).isNull(), F.lit(1)).otherwise(F.row_number().over(w)))
              .withColumn("_size", F.when(F.col(key_col).isNull(), F.lit(1))
                          .otherwise(F.count("*").over(Window.partitionBy(key_col))))
              .withColumn("_cluster", F.first("doc_id").over(w)))
    clusters = ranked.filter("_size > 1").select(
        "doc_id", F.col("_cluster").alias("cluster_id"), (F.col("_rank") == 1).alias("kept"),
        F.lit(method).alias("method"), F.lit(run_id).alias("run_id"))
    return ranked.filter("_rank = 1").drop("_rank", "_size", "_cluster", key_col), clusters


def minhash_bands(step):
    from udfs.dedup import optimal_bands

    if step.bands and step.rows:
        if step.bands * step.rows > step.num_perm:
            raise ConfigError(f"minhash: bands * rows = {step.bands * step.rows} > num_perm {step.num_perm}")
        return step.bands, step.rows
    return optimal_bands(step.threshold, step.num_perm)


def band_task(step, bands, rows):
    def task(batches):
        import pyarrow as pa

        from udfs import dedup as D

        a, b = D.permutations(step.num_perm, step.seed)
        for batch in batches:
            ids, texts = batch.column("doc_id").to_pylist(), batch.column("text").to_pylist()
            out_id, out_band, out_key = [], [], []
            for doc_id, text in zip(ids, texts, strict=True):
                sh = D.shingles(D.normalize_words(text or "", step.normalization), step.ngram)
                sig = D.signature(D.hash32(sh, step.hash), a, b)
                if sig is None:
                    continue
                for i, k in enumerate(D.band_keys(sig, bands, rows)):
                    out_id.append(doc_id)
                    out_band.append(i)
                    out_key.append(k)
            yield pa.RecordBatch.from_arrays([pa.array(out_id, pa.string()), pa.array(out_band, pa.int32()),
                                              pa.array(out_key, pa.int64())], names=["doc_id", "band", "key"])

    return task


def verify_task(step):
    def task(batches):
        import pyarrow as pa

        from udfs import dedup as D

        for batch in batches:
            u, v = batch.column("u").to_pylist(), batch.column("v").to_pylist()
            tu, tv = batch.column("tu").to_pylist(), batch.column("tv").to_pylist()
            keep = []
            for x, y in zip(tu, tv, strict=True):
                sx = set(D.shingles(D.normalize_words(x or "", step.normalization), step.ngram))
                sy = set(D.shingles(D.normalize_words(y or "", step.normalization), step.ngram))
                keep.append(D.jaccard(sx, sy) >= step.threshold)
            mask = pa.array(keep)
            yield pa.RecordBatch.from_arrays([pa.array(u, pa.string()).filter(mask), pa.array(v, pa.string()).filter(mask)],
                                             names=["u", "v"])

    return task


def connected_components(spark, edges, max_rounds: int, checkpoint_dir: str):
    """(node, component) for every node of ``edges`` (u, v); component = the smallest node id.

    Alternating large-star / small-star (Kiveris et al. 2014) until an edge set repeats, each round
    checkpointed to cut the lineage. Raises when ``max_rounds`` pass without convergence."""
    from pyspark.sql import functions as F

    spark.sparkContext.setCheckpointDir(checkpoint_dir)
    e = edges.select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v")).filter("u != v").distinct()
    e = e.checkpoint()
    prev = None
    for rnd in range(1, max_rounds + 1):
        # large star: connect each node's larger neighbours to the smallest of its neighbourhood
        both = e.unionByName(e.select(F.col("v").alias("u"), F.col("u").alias("v"))).distinct()
        m = both.groupBy("u").agg(F.min("v").alias("m")).withColumn("m", F.least("m", "u"))
        large = (both.join(m, "u").filter(F.col("v") > F.col("u"))
                 .select(F.col("v").alias("u"), F.col("m").alias("v")).distinct())
        # small star: connect each node and its smaller neighbours to the smallest of them
        o = large.select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v")).distinct()
        m2 = o.groupBy("u").agg(F.min("v").alias("m"))
        small = (o.join(m2, "u").select(F.col("v").alias("u"), "m")
                 .unionByName(m2.select("u", "m"))
                 .filter(F.col("u") != F.col("m"))
                 .select(F.greatest("u", "m").alias("u"), F.least("u", "m").alias("v")).distinct())
        e = small.checkpoint()
        n = e.count()
        changed = prev is None or n != prev[0] or e.exceptAll(prev[1]).limit(1).count() > 0
        log.info(kv(cc_round=rnd, edges=n, changed=changed))
        if not changed:
            break
        prev = (n, e)
    else:
        raise RuntimeError(f"connected components did not converge in {max_rounds} rounds (raise max_rounds)")
    # after convergence every edge points from a node to its component's smallest id
    nodes = e.select(F.col("u").alias("node"), F.col("v").alias("component"))
    roots = e.select(F.col("v").alias("node")).distinct().withColumn("component", F.col("node"))
    return nodes.unionByName(roots).distinct(), rnd


def minhash_step(spark, df, step, run_id, checkpoint_dir, stats):
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    bands, rows = minhash_bands(step)
    keys = df.select("doc_id", "text").mapInArrow(band_task(step, bands, rows), "doc_id string, band int, key long") \
        .persist(StorageLevel.MEMORY_AND_DISK)
    w = Window.partitionBy("band", "key")
    edges = (keys.withColumn("root", F.min("doc_id").over(w)).filter(F.col("doc_id") != F.col("root"))
             .select(F.col("doc_id").alias("u"), F.col("root").alias("v")).distinct())
    candidates = edges.count()
    if step.verify:
        texts = df.select("doc_id", "text")
        pairs = (edges.join(texts.select(F.col("doc_id").alias("u"), F.col("text").alias("tu")), "u")
                 .join(texts.select(F.col("doc_id").alias("v"), F.col("text").alias("tv")), "v"))
        edges = pairs.select("u", "v", "tu", "tv").mapInArrow(verify_task(step), "u string, v string")
        edges = edges.persist(StorageLevel.MEMORY_AND_DISK)
    verified = edges.count() if step.verify else candidates
    stats["bands"], stats["rows"], stats["candidate_edges"], stats["verified_edges"] = bands, rows, candidates, verified
    comp, rounds = connected_components(spark, edges, step.max_rounds, checkpoint_dir)
    stats["cc_rounds"] = rounds
    comp = comp.persist(StorageLevel.MEMORY_AND_DISK)
    sizes = comp.groupBy("component").count()
    hist = {r.bucket: r.n for r in sizes.withColumn(
        "bucket", F.when(F.col("count") <= 2, "2").when(F.col("count") <= 10, "3-10")
        .when(F.col("count") <= 100, "11-100").when(F.col("count") <= 1000, "101-1000").otherwise(">1000"))
        .groupBy("bucket").agg(F.count("*").alias("n")).collect()}
    largest = sizes.agg(F.max("count")).first()[0] or 0
    stats["component_sizes"], stats["largest_component"] = hist, int(largest)
    if largest > 1000:
        log.warning(kv(giant_component=largest, hint="set verify: true to split components held by weak edges"))
    joined = df.join(comp.select(F.col("node").alias("doc_id"), "component"), "doc_id", "left")
    joined = joined.withColumn("component", F.coalesce("component", "doc_id"))
    kept, clusters = survivors_by_key(joined, "component", step, "minhash", run_id)
    keys.unpersist()
    return kept, clusters, [comp, edges]


def paragraph_step(spark, df, step, run_id, stats):
    """Exact, order-defined version of DCLM's BFF "old-both" (see the module docstring)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    n, norm = step.ngram, step.normalization

    def grams(batches):
        import pyarrow as pa

        from udfs.dedup import paragraph_ngrams

        for batch in batches:
            ids, texts = batch.column("doc_id").to_pylist(), batch.column("text").to_pylist()
            o_id, o_p, o_h, o_n = [], [], [], []
            for doc_id, text in zip(ids, texts, strict=True):
                for p, hs in enumerate(paragraph_ngrams(text or "", n, norm)):
                    u = set(hs.view("int64").tolist())
                    for h in u:
                        o_id.append(doc_id)
                        o_p.append(p)
                        o_h.append(h)
                        o_n.append(len(u))
            yield pa.RecordBatch.from_arrays([pa.array(o_id, pa.string()), pa.array(o_p, pa.int32()),
                                              pa.array(o_h, pa.int64()), pa.array(o_n, pa.int32())],
                                             names=["doc_id", "para", "h", "para_ngrams"])

    occ = df.select("doc_id", "text").mapInArrow(grams, "doc_id string, para int, h long, para_ngrams int") \
        .persist(StorageLevel.MEMORY_AND_DISK)
    first = occ.groupBy("h").agg(F.min(F.struct("doc_id", "para")).alias("first"))
    seen = (occ.join(first, "h")
            .withColumn("earlier", (F.col("first.doc_id") != F.col("doc_id")) | (F.col("first.para") != F.col("para"))))
    per_para = seen.groupBy("doc_id", "para").agg(F.count("*").alias("total"),
                                                  F.sum(F.col("earlier").cast("int")).alias("seen"))
    per_doc = per_para.groupBy("doc_id").agg(
        (F.sum("seen") / F.sum("total")).alias("doc_seen"),
        F.collect_list(F.when(F.col("seen") / F.col("total") >= step.threshold, F.col("para"))).alias("drop_paras"))
    marked = df.join(per_doc, "doc_id", "left").persist(StorageLevel.MEMORY_AND_DISK)

    def rewrite(batches):
        import pyarrow as pa

        for batch in batches:
            cols = batch.to_pydict()
            texts = []
            for text, drop in zip(cols["text"], cols["drop_paras"], strict=True):
                if not drop:
                    texts.append(text)
                    continue
                gone = set(drop)
                lines = (text or "").split("\n")
                texts.append("\n".join(ln for i, ln in enumerate(lines) if i not in gone))
            cols["text"] = texts
            yield pa.RecordBatch.from_pydict(cols, schema=batch.schema)

    doc_drop = F.coalesce(F.col("doc_seen"), F.lit(0.0)) >= step.doc_threshold
    survivors = marked.filter(~doc_drop)
    rewritten = survivors.mapInArrow(rewrite, survivors.schema)
    empty = F.length(F.trim(F.col("text"))) == 0
    shortened = F.size(F.coalesce(F.col("drop_paras"), F.array())) > 0
    kept = rewritten.filter(~empty).drop("doc_seen", "drop_paras")
    clusters = (rewritten.filter(empty | shortened).select("doc_id", (~empty).alias("kept"))
                .unionByName(marked.filter(doc_drop).select("doc_id", F.lit(False).alias("kept")))
                .select("doc_id", F.col("doc_id").alias("cluster_id"), "kept", F.lit("paragraph").alias("method"),
                        F.lit(run_id).alias("run_id")))
    stats["documents_shortened"] = rewritten.filter(shortened & ~empty).count()
    return kept, clusters, [occ, marked]


# ----------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    try:
        cfg = load_model(DedupConfig, args.config)
        if not cfg.steps:
            raise ConfigError(f"{args.config}: steps: at least one step")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from delta.tables import DeltaTable
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.common.lake import record_run, replace_run_rows, table_exists, table_path, write_run_stats
    from jobs.common.spark import get_spark

    spark = get_spark("lakesift-dedup")
    in_path = table_path(args.lake, args.input)
    if not table_exists(spark, in_path):
        print(f"error: no Delta table at {in_path}", file=sys.stderr)
        return 2
    version = DeltaTable.forPath(spark, in_path).history(1).select("version").first()[0]
    run_id = f"dedup-{cfg.name}-{config_fingerprint(cfg)}-{args.input}-v{version}"
    checkpoint_dir = table_path(args.lake, f"_checkpoints/{run_id}")
    docs = spark.read.format("delta").load(in_path)
    for s in cfg.steps:
        if getattr(s, "keep", None) == "best":
            try:
                keep_order(s, docs.columns)
            except ConfigError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
    job_start(log, "dedup", run_id, f"{in_path}@v{version}",
              [table_path(args.lake, t) for t in (args.output, "dup_clusters", "run_stats")], steps=len(cfg.steps))

    current = docs
    agg = docs.agg(F.count("*").alias("n"), F.sum(F.length("text")).alias("chars")).first()
    n_in = n_current = int(agg.n)
    chars_current = int(agg.chars or 0)
    all_clusters = None
    stat_rows, funnel, persisted = [], [], []
    for i, step in enumerate(cfg.steps):
        t0 = time.perf_counter()
        stats: dict = {}
        if step.method == "exact":
            norm = step.normalization

            def key_task(batches, norm=norm):
                import hashlib

                import pyarrow as pa

                from udfs.dedup import normalized_text

                for b in batches:
                    keys = []
                    for t in b.column("text").to_pylist():
                        nt = normalized_text(t or "", norm)
                        keys.append(hashlib.sha1(nt.encode("utf-8")).hexdigest() if nt else None)
                    yield pa.RecordBatch.from_arrays([*b.columns, pa.array(keys, pa.string())],
                                                     names=[*b.schema.names, "_key"])

            from pyspark.sql import types as T

            keyed = current.mapInArrow(key_task, T.StructType(
                [*current.schema.fields, T.StructField("_key", T.StringType(), True)]))
            kept, clusters = survivors_by_key(keyed, "_key", step, "exact", run_id)
            extra = []
        elif step.method == "url":
            if "url" not in current.columns:
                print("error: url dedup needs a `url` column", file=sys.stderr)
                return 2
            keyed = current.withColumn("_key", F.nullif(F.trim("url"), F.lit("")))
            kept, clusters = survivors_by_key(keyed, "_key", step, "url", run_id)
            extra = []
        elif step.method == "minhash":
            try:
                kept, clusters, extra = minhash_step(spark, current, step, run_id, checkpoint_dir, stats)
            except ConfigError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        else:
            kept, clusters, extra = paragraph_step(spark, current, step, run_id, stats)
        kept = kept.persist(StorageLevel.MEMORY_AND_DISK)
        clusters = clusters.persist(StorageLevel.MEMORY_AND_DISK)
        # one pass: documents and characters left (paragraph dedup shortens texts)
        agg = kept.agg(F.count("*").alias("n"), F.sum(F.length("text")).alias("chars")).first()
        n_kept, chars_kept = int(agg.n), int(agg.chars or 0)
        removed = n_current - n_kept
        persisted += [kept, clusters, *extra]
        all_clusters = clusters if all_clusters is None else all_clusters.unionByName(clusters)
        sid = f"{i:02d}_{step.method}"
        stat_rows.append((run_id, cfg.name, sid, i, None, n_current, n_kept, removed, chars_current, chars_kept))
        for k, v in stats.items():
            stat_rows.append((run_id, cfg.name, sid, i, f"{k}={v}", None, None, None, None, None))
        funnel.append((sid, n_current, n_kept, removed, time.perf_counter() - t0, stats))
        log.info(kv(step=sid, documents_in=n_current, kept=n_kept, removed=removed,
                    seconds=round(time.perf_counter() - t0, 1), **{k: v for k, v in stats.items() if k != "component_sizes"}))
        current, n_current, chars_current = kept, n_kept, chars_kept

    current.write.format("delta").mode("overwrite").option("overwriteSchema", "true") \
        .save(table_path(args.lake, args.output))
    replace_run_rows(spark, all_clusters, table_path(args.lake, "dup_clusters"), run_id)
    write_run_stats(spark, args.lake, stat_rows, run_id)
    for df in persisted:
        df.unpersist()
    try:
        import shutil

        from lakesift.io import is_local, local_path

        if is_local(checkpoint_dir):
            shutil.rmtree(local_path(checkpoint_dir), ignore_errors=True)
    except OSError:
        pass

    print(f"\n=== dedup: {cfg.name} ({n_in} documents in) ===")
    print(f"{'step':14s} {'docs in':>8s} {'kept':>8s} {'removed':>8s} {'seconds':>8s}  details")
    for sid, a, b, r, secs, st in funnel:
        detail = ", ".join(f"{k} {v}" for k, v in st.items())
        print(f"{sid:14s} {a:8d} {b:8d} {r:8d} {secs:8.1f}  {detail}")
    print(f"kept {n_current} of {n_in} documents")
    record_run(spark, args.lake, run_id, "dedup", {"config": args.config, "resolved": cfg.model_dump()},
               sys.argv if argv is None else ["jobs/dedup.py", *argv], started, "succeeded",
               {"documents_in": n_in, "kept": n_current})
    job_done(log, "dedup", run_id, time.perf_counter() - t_start, documents_in=n_in, kept=n_current,
             removed=n_in - n_current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
