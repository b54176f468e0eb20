"""Connected components of an edge list on the cluster (MinHash dedup's grouping step)."""

from __future__ import annotations

from jobs.common.ship import set_checkpoint_dir
from lakesift.log import get_logger, kv

log = get_logger("dedup")


def connected_components(spark, edges, max_rounds: int, checkpoint_dir: str):
    """``((node, component), rounds)`` for every node of ``edges`` (u, v); component = the smallest
    node id.

    Alternating large-star / small-star (Kiveris et al. 2014) until an edge set repeats, each round
    checkpointed (to ``checkpoint_dir``) to cut the lineage; no edge list reaches the driver. Raises
    when ``max_rounds`` pass without convergence. ``udfs.dedup.components`` is the same on one machine."""
    from pyspark.sql import functions as F

    set_checkpoint_dir(spark, checkpoint_dir)
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
