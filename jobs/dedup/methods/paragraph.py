"""``method: paragraph``: DCLM's BFF "old-both", exact and order-defined."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from jobs.dedup.methods.base import Method, StepConfig, StepResult, cluster_columns, register
from udfs.dedup import Normalization


class ParagraphConfig(StepConfig):
    method: Literal["paragraph"]
    ngram: int = Field(13, ge=1)  # units per n-gram: words, or characters with normalization.units: chars
    threshold: float = Field(0.8, gt=0, le=1)
    doc_threshold: float = Field(0.8, gt=0, le=1)
    normalization: Normalization = Normalization()


def grams_task(n: int, norm: Normalization):
    """``mapInArrow``: (doc_id, text) -> one (doc_id, para, h, para_ngrams) row per distinct n-gram of
    each paragraph (``udfs.dedup.paragraph_ngram_sets``)."""

    def task(batches):
        import pyarrow as pa

        from udfs.dedup import paragraph_ngram_sets

        for batch in batches:
            ids, texts = batch.column("doc_id").to_pylist(), batch.column("text").to_pylist()
            o_id, o_p, o_h, o_n = [], [], [], []
            for doc_id, text in zip(ids, texts, strict=True):
                for p, u in enumerate(paragraph_ngram_sets(text, n, norm)):
                    for h in u:
                        o_id.append(doc_id)
                        o_p.append(p)
                        o_h.append(h)
                        o_n.append(len(u))
            yield pa.RecordBatch.from_arrays([pa.array(o_id, pa.string()), pa.array(o_p, pa.int32()),
                                              pa.array(o_h, pa.int64()), pa.array(o_n, pa.int32())],
                                             names=["doc_id", "para", "h", "para_ngrams"])

    return task


def rewrite_task():
    """``mapInArrow``: each row's ``text`` without the paragraphs listed in ``drop_paras``."""

    def task(batches):
        import pyarrow as pa

        from udfs.dedup import drop_lines

        for batch in batches:
            cols = batch.to_pydict()
            cols["text"] = [drop_lines(t, d) for t, d in zip(cols["text"], cols["drop_paras"], strict=True)]
            yield pa.RecordBatch.from_pydict(cols, schema=batch.schema)

    return task


@register
class Paragraph(Method):
    """An n-gram occurrence in paragraph ``p`` of document ``d`` is *seen earlier* when the same n-gram
    occurs in a paragraph that comes first in (doc_id, paragraph index) order. A document is dropped
    when at least ``doc_threshold`` of its n-grams were seen earlier; otherwise each paragraph with at
    least ``threshold`` of its n-grams seen earlier is removed ("old-both"), and a document left with no
    paragraph is dropped. ``dup_clusters`` lists the documents it dropped (``kept`` false) or shortened
    (``kept`` true), each its own cluster."""

    name, config = "paragraph", ParagraphConfig

    def run(self, spark, df, cfg: ParagraphConfig, ctx) -> StepResult:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        occ = df.select("doc_id", "text").mapInArrow(grams_task(cfg.ngram, cfg.normalization),
                                                     "doc_id string, para int, h long, para_ngrams int") \
            .persist(StorageLevel.MEMORY_AND_DISK)
        first = occ.groupBy("h").agg(F.min(F.struct("doc_id", "para")).alias("first"))
        seen = (occ.join(first, "h")
                .withColumn("earlier", (F.col("first.doc_id") != F.col("doc_id")) | (F.col("first.para") != F.col("para"))))
        per_para = seen.groupBy("doc_id", "para").agg(F.count("*").alias("total"),
                                                      F.sum(F.col("earlier").cast("int")).alias("seen"))
        per_doc = per_para.groupBy("doc_id").agg(
            (F.sum("seen") / F.sum("total")).alias("doc_seen"),
            F.collect_list(F.when(F.col("seen") / F.col("total") >= cfg.threshold, F.col("para"))).alias("drop_paras"))
        marked = df.join(per_doc, "doc_id", "left").persist(StorageLevel.MEMORY_AND_DISK)

        doc_drop = F.coalesce(F.col("doc_seen"), F.lit(0.0)) >= cfg.doc_threshold
        survivors = marked.filter(~doc_drop)
        rewritten = survivors.mapInArrow(rewrite_task(), survivors.schema)
        empty = F.length(F.trim(F.col("text"))) == 0
        shortened = F.size(F.coalesce(F.col("drop_paras"), F.array())) > 0
        kept = rewritten.filter(~empty).drop("doc_seen", "drop_paras")
        clusters = (rewritten.filter(empty | shortened).select("doc_id", (~empty).alias("kept"))
                    .unionByName(marked.filter(doc_drop).select("doc_id", F.lit(False).alias("kept")))
                    .select(*cluster_columns("doc_id", "doc_id", "kept", self.name, ctx.run_id)))
        stats = {"documents_shortened": rewritten.filter(shortened & ~empty).count()}
        return StepResult(kept, clusters, stats, [occ, marked])
