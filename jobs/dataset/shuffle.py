"""Stage 5, shuffle: a seeded 64-bit key per written sequence; sequences spread over
``ceil(n / sequences_per_group)`` shard groups by key, one Spark partition per group, sorted by key
inside it, so each group is written whole, in a fixed order, by one task."""

from __future__ import annotations

import math


def shuffle(mixed, shuffle_cfg, extra: tuple[str, ...] = ()) -> tuple[object, int, int]:
    """``(shard_group, tokens, seq_id, source, domain, *extra)`` rows partitioned and sorted for the writers,
    the number of sequences to write and the number of shard groups."""
    from pyspark.sql import functions as F

    n_written = mixed.count()
    n_groups = max(1, math.ceil(n_written / shuffle_cfg.sequences_per_group))
    key = F.xxhash64(F.lit(shuffle_cfg.seed), F.lit("shuffle"), "seq_id", "rep")
    shuffled = (mixed.withColumn("key", key).withColumn("shard_group", F.pmod("key", F.lit(n_groups)))
                .repartition(n_groups, "shard_group").sortWithinPartitions("shard_group", "key", "seq_id", "rep")
                .select("shard_group", "tokens", "seq_id", "source", "domain", *extra))
    return shuffled, n_written, n_groups
