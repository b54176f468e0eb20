"""Stage 4, mix (DCLM's frequency semantics): each sequence of a source with frequency ``f`` written
``floor(f)`` times plus once more when a seeded per-sequence draw falls below ``frac(f)``; the
frequencies come from ``udfs.tokenizing.frequencies``."""

from __future__ import annotations


def mix(packed, sources, freq: dict[str, float], seed: int):
    """Full sequences with their ``seq_id`` (source index << 48 | group << 32 | index) and one row per
    copy to write (``rep`` 0, 1, …)."""
    from pyspark.sql import functions as F

    src_index = {s.name: i for i, s in enumerate(sources)}
    src_col = F.create_map(*[x for k, v in src_index.items() for x in (F.lit(k), F.lit(v))])
    freq_col = F.create_map(*[x for k, v in freq.items() for x in (F.lit(k), F.lit(float(v)))])
    seqs = packed.filter(F.col("tokens").isNotNull()).withColumn(
        "seq_id", (src_col[F.col("source")].cast("long") * F.lit(1 << 48))
        + (F.col("grp").cast("long") * F.lit(1 << 32)) + F.col("seq_index").cast("long"))
    # a uniform draw per sequence from a seeded hash: 53 bits of it as a double in [0, 1)
    u = (F.pmod(F.xxhash64(F.lit(seed), F.lit("mix"), "seq_id"), F.lit(1 << 53)).cast("double") / float(1 << 53))
    f = freq_col[F.col("source")]
    reps = (F.floor(f) + F.when(u < f - F.floor(f), 1).otherwise(0)).cast("int")
    return seqs.withColumn("_reps", reps).filter("_reps > 0").withColumn(
        "rep", F.explode(F.sequence(F.lit(0), F.col("_reps") - 1)))
