"""``method: minhash``: near-duplicates by MinHash-LSH and connected components."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from jobs.dedup.components import connected_components
from jobs.dedup.methods.base import KeepConfig, Method, StepResult, register, survivors_by_key
from lakesift.config import ConfigError
from lakesift.log import kv
from udfs.dedup import Normalization


class MinHashConfig(KeepConfig):
    method: Literal["minhash"]
    ngram: int = Field(5, ge=1)  # units per shingle: words, or characters with normalization.units: chars
    num_perm: int = Field(128, ge=2)
    threshold: float = Field(0.8, gt=0, lt=1)
    bands: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1)
    seed: int = 1
    hash: Literal["sha1", "crc32"] = "sha1"
    normalization: Normalization = Normalization()
    verify: bool = False  # keep only candidate edges whose exact Jaccard >= threshold
    max_rounds: int = Field(40, ge=1)


def minhash_bands(cfg: MinHashConfig, where: str = "minhash") -> tuple[int, int]:
    """``(bands, rows)``: as given (``ConfigError`` when they need more than ``num_perm`` values), or
    chosen for ``threshold`` as datasketch does."""
    from udfs.dedup import optimal_bands

    if cfg.bands and cfg.rows:
        if cfg.bands * cfg.rows > cfg.num_perm:
            raise ConfigError(f"{where}: bands * rows = {cfg.bands * cfg.rows} > num_perm {cfg.num_perm}")
        return cfg.bands, cfg.rows
    return optimal_bands(cfg.threshold, cfg.num_perm)


def band_task(cfg: MinHashConfig, bands: int, rows: int):
    """``mapInArrow``: (doc_id, text) -> one (doc_id, band, key) row per band of each signature."""
    ngram, num_perm, seed, kind, norm = cfg.ngram, cfg.num_perm, cfg.seed, cfg.hash, cfg.normalization

    def task(batches):
        import pyarrow as pa

        from udfs import dedup as D

        a, b = D.permutations(num_perm, seed)
        for batch in batches:
            ids, texts = batch.column("doc_id").to_pylist(), batch.column("text").to_pylist()
            out_id, out_band, out_key = [], [], []
            for doc_id, text in zip(ids, texts, strict=True):
                sig = D.text_signature(text, ngram, a, b, norm, kind)
                if sig is None:
                    continue
                for i, k in enumerate(D.band_keys(sig, bands, rows)):
                    out_id.append(doc_id)
                    out_band.append(i)
                    out_key.append(k)
            yield pa.RecordBatch.from_arrays([pa.array(out_id, pa.string()), pa.array(out_band, pa.int32()),
                                              pa.array(out_key, pa.int64())], names=["doc_id", "band", "key"])

    return task


def verify_task(cfg: MinHashConfig):
    """``mapInArrow``: candidate edges (u, v, tu, tv) -> the (u, v) whose exact Jaccard >= threshold."""
    ngram, threshold, norm = cfg.ngram, cfg.threshold, cfg.normalization

    def task(batches):
        import pyarrow as pa

        from udfs.dedup import text_jaccard

        for batch in batches:
            u, v = batch.column("u").to_pylist(), batch.column("v").to_pylist()
            tu, tv = batch.column("tu").to_pylist(), batch.column("tv").to_pylist()
            mask = pa.array([text_jaccard(x, y, ngram, norm) >= threshold for x, y in zip(tu, tv, strict=True)])
            yield pa.RecordBatch.from_arrays([pa.array(u, pa.string()).filter(mask), pa.array(v, pa.string()).filter(mask)],
                                             names=["u", "v"])

    return task


def component_stats(comp, log) -> dict:
    """Histogram of component sizes and the largest one (warned about past 1,000)."""
    from pyspark.sql import functions as F

    sizes = comp.groupBy("component").count()
    hist = {r.bucket: r.n for r in sizes.withColumn(
        "bucket", F.when(F.col("count") <= 2, "2").when(F.col("count") <= 10, "3-10")
        .when(F.col("count") <= 100, "11-100").when(F.col("count") <= 1000, "101-1000").otherwise(">1000"))
        .groupBy("bucket").agg(F.count("*").alias("n")).collect()}
    largest = sizes.agg(F.max("count")).first()[0] or 0
    if largest > 1000:
        log.warning(kv(giant_component=largest, hint="set verify: true to split components held by weak edges"))
    return {"component_sizes": hist, "largest_component": int(largest)}


@register
class MinHash(Method):
    """MinHash signatures of ``ngram``-unit shingles (``udfs.dedup``: words, or characters with
    ``normalization.units: chars``; datasketch-compatible) computed in ``mapInArrow``; ``bands``
    x ``rows`` LSH keys (given, or chosen for ``threshold`` as datasketch does); every document of a
    bucket is linked to the bucket's smallest id (a star, not all pairs); optionally each candidate edge
    is verified by the exact Jaccard of the two shingle sets; connected components by alternating
    large-star / small-star rounds on the cluster (``jobs.dedup.components``), at most ``max_rounds``;
    no edge list is collected to the driver. A component is one group."""

    name, config = "minhash", MinHashConfig

    def check_config(self, cfg: MinHashConfig, where: str) -> None:
        if cfg.bands and cfg.rows:
            minhash_bands(cfg, where)

    def run(self, spark, df, cfg: MinHashConfig, ctx) -> StepResult:
        from pyspark import StorageLevel
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        bands, rows = minhash_bands(cfg)
        keys = df.select("doc_id", "text").mapInArrow(band_task(cfg, bands, rows), "doc_id string, band int, key long") \
            .persist(StorageLevel.MEMORY_AND_DISK)
        w = Window.partitionBy("band", "key")
        edges = (keys.withColumn("root", F.min("doc_id").over(w)).filter(F.col("doc_id") != F.col("root"))
                 .select(F.col("doc_id").alias("u"), F.col("root").alias("v")).distinct())
        candidates = edges.count()
        if cfg.verify:
            texts = df.select("doc_id", "text")
            pairs = (edges.join(texts.select(F.col("doc_id").alias("u"), F.col("text").alias("tu")), "u")
                     .join(texts.select(F.col("doc_id").alias("v"), F.col("text").alias("tv")), "v"))
            edges = pairs.select("u", "v", "tu", "tv").mapInArrow(verify_task(cfg), "u string, v string")
            edges = edges.persist(StorageLevel.MEMORY_AND_DISK)
        stats = {"bands": bands, "rows": rows, "candidate_edges": candidates,
                 "verified_edges": edges.count() if cfg.verify else candidates}
        comp, stats["cc_rounds"] = connected_components(spark, edges, cfg.max_rounds, ctx.checkpoint_dir)
        comp = comp.persist(StorageLevel.MEMORY_AND_DISK)
        stats.update(component_stats(comp, ctx.log))
        joined = df.join(comp.select(F.col("node").alias("doc_id"), "component"), "doc_id", "left")
        joined = joined.withColumn("component", F.coalesce("component", "doc_id"))
        kept, clusters = survivors_by_key(joined, "component", cfg, self.name, ctx.run_id)
        keys.unpersist()
        return StepResult(kept, clusters, stats, [comp, edges])
