"""Stage 4, ids, hold-out and mix.

* ids: each full sequence gets ``seq_id = source index << 48 | group field << 32 | sequence index``,
  the group field being ``domain index x packing.groups + packing group``, where the domain index is
  the domain's place among its source's domains (sorted by name; always 0 with ``domains.by: source``,
  which leaves the ids of a run without domains as they were). :func:`check_id_budget` refuses a run
  whose fields would not fit.
* hold-out (``domains.validation``): a seeded draw per sequence sends ``fraction`` of them to the
  validation set, once each, before mixing: the set keeps the data's natural proportions.
* mix (DCLM's frequency semantics): each remaining sequence of a mixing unit (its source, or its
  domain when proportions name domains) with frequency ``f`` written ``floor(f)`` times plus once more
  when a seeded per-sequence draw falls below ``frac(f)``; the frequencies come from
  ``udfs.tokenizing``."""

from __future__ import annotations

from lakesift.config import ConfigError

SOURCE_BITS, GROUP_BITS, INDEX_BITS = 15, 16, 32  # seq_id fields (a signed 64-bit integer)


def check_id_budget(n_sources: int, domains_per_source: int, groups: int, most_sequences: int) -> None:
    """:class:`ConfigError` when the seq_id fields cannot hold the sources, ``domains_per_source`` x
    ``groups`` group values or a (source, domain)'s ``most_sequences``."""
    if n_sources > 1 << SOURCE_BITS:
        raise ConfigError(f"sources: {n_sources} sources, at most {1 << SOURCE_BITS} fit in a seq_id")
    if domains_per_source * groups > 1 << GROUP_BITS:
        raise ConfigError(f"domains: a source has {domains_per_source} domains x packing.groups {groups} = "
                          f"{domains_per_source * groups} packing groups, more than a seq_id holds "
                          f"({1 << GROUP_BITS}); lower packing.groups or merge domains with domains.rules")
    if most_sequences >= 1 << INDEX_BITS:
        raise ConfigError(f"packing: {most_sequences} sequences of one (source, domain), more than a seq_id "
                          f"numbers ({1 << INDEX_BITS})")


def _draw(seed: int, salt: str):
    """A uniform draw in [0, 1) per sequence from a seeded hash of its seq_id (53 bits as a double)."""
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64(F.lit(seed), F.lit(salt), "seq_id"), F.lit(1 << 53)).cast("double") / float(1 << 53)


def sequences(packed, sources, local_index: dict[tuple[str, str], int], groups: int):
    """The full sequences of ``packed`` with their ``seq_id``; ``local_index``: (source, domain) -> the
    domain's index among its source's domains."""
    from pyspark.sql import functions as F

    spark = packed.sparkSession
    src_index = {s.name: i for i, s in enumerate(sources)}
    index = spark.createDataFrame([(s, d, src_index[s], i) for (s, d), i in sorted(local_index.items())],
                                  "source string, domain string, _src long, _dom long")
    return (packed.filter(F.col("tokens").isNotNull()).join(F.broadcast(index), ["source", "domain"])
            .withColumn("seq_id", (F.col("_src") * F.lit(1 << 48))
                        + ((F.col("_dom") * F.lit(groups) + F.col("grp").cast("long")) * F.lit(1 << 32))
                        + F.col("seq_index").cast("long"))
            .drop("_src", "_dom"))


def hold_out(seqs, fraction: float, seed: int):
    """``(training sequences, held-out sequences)``: a sequence is held out when its seeded draw is below
    ``fraction``."""
    from pyspark.sql import functions as F

    held = _draw(seed, "validation") < F.lit(fraction)
    return seqs.filter(~held), seqs.filter(held)


def mix(seqs, unit: str, freq: dict[str, float], seed: int):
    """One row per copy to write (``rep`` 0, 1, …) of each sequence; ``unit`` the column (``source`` or
    ``domain``) whose value ``freq`` is keyed by."""
    from pyspark.sql import functions as F

    freq_col = F.create_map(*[x for k, v in freq.items() for x in (F.lit(k), F.lit(float(v)))])
    f = freq_col[F.col(unit)]
    reps = (F.floor(f) + F.when(_draw(seed, "mix") < f - F.floor(f), 1).otherwise(0)).cast("int")
    return seqs.withColumn("_reps", reps).filter("_reps > 0").withColumn(
        "rep", F.explode(F.sequence(F.lit(0), F.col("_reps") - 1)))
