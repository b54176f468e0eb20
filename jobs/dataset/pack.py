"""Stage 3, tokenize + pack: per (source, domain, packing group), documents in id order, each document's
tokens plus EOS concatenated and cut into sequences of ``seq_len + 1`` tokens (``udfs.tokenizing``); a
sequence never mixes domains. The counts per (source, domain) come back to the driver as :class:`Counts`.

With ``buckets`` (Colossal-LLaMA-2's bucketed preparation), each domain's documents are first dealt over
the buckets (:func:`deal_buckets`), so every bucket holds the same number of each domain's documents (to
one) and about the same share of its text; a document's packing group is then
``bucket x packing.groups + hash(doc_id) mod packing.groups``, so a sequence never mixes buckets either.
Nothing is dropped: each group's last sequence is padded, and with ``buckets.boundaries`` every sequence
carries its document starts (``udfs.tokenizing.pack_bounded``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime

from jobs.dataset import log
from lakesift.log import kv

PACKED_SCHEMA = ("source string, domain string, grp int, seq_index int, tokens array<int>, pad int, dropped long, "
                 "docs long, group_tokens long, group_chunks long, starts array<int>")


@dataclass
class Counts:
    """What packing counted for a source, a domain or a (source, domain)."""

    documents: int = 0
    tokens: int = 0  # the documents' tokens (EOS included)
    chunks: int = 0  # sum of ceil(document tokens / seq_len): DoReMi's "nopack" count
    padding: int = 0
    dropped: int = 0  # tail tokens dropped (remainder: drop)
    sequences: int = 0  # full sequences packed (before hold-out and mixing)

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def packed_batch(key: tuple[str, int], token_lists: list[list[int]], length: int, remainder: str, pad_id: int,
                 domain: str | None = None, boundaries: bool = False):
    """One packing group's sequences as an Arrow batch (``PACKED_SCHEMA``); ``key`` is (source, group),
    ``domain`` the group's domain (default: the source's name). The first row carries the group's
    document, token and chunk counts (the tail row, with ``tokens`` null when the remainder is dropped,
    keeps them even for a group shorter than one sequence). ``boundaries``: pack with
    ``udfs.tokenizing.pack_bounded`` (the tail padded) and fill ``starts``; else ``starts`` is null."""
    import numpy as np
    import pyarrow as pa

    from udfs.tokenizing import chunks, pack, pack_bounded

    src, grp = key
    seqs, pads, drops, starts = [], [], [], []
    if boundaries:
        for seq, pad, st in pack_bounded(token_lists, length, pad_id):
            seqs.append(seq)
            pads.append(pad)
            drops.append(0)
            starts.append(st)
        if not seqs:  # a group of empty documents: one null row keeps its document count
            seqs, pads, drops, starts = [None], [0], [0], [None]
    else:
        for seq, pad, dropped in pack(token_lists, length, remainder, pad_id):
            seqs.append(seq)
            pads.append(pad)
            drops.append(dropped)
            starts.append(None)
    n = len(seqs)
    full = [s for s in seqs if s is not None]
    values = pa.array(np.concatenate(full).astype(np.int32) if full else np.zeros(0, np.int32))
    offsets, mask, at = [], [], 0
    for s in seqs:
        offsets.append(at)
        mask.append(s is None)
        at += 0 if s is None else length
    offsets.append(at)
    tokens = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, mask=pa.array(mask))
    first = [1] + [0] * (n - 1)
    n_chunks = chunks(token_lists, length - 1)
    return pa.RecordBatch.from_arrays(
        [pa.array([src] * n, pa.string()), pa.array([src if domain is None else domain] * n, pa.string()),
         pa.array([grp] * n, pa.int32()), pa.array(range(n), pa.int32()),
         tokens, pa.array(pads, pa.int32()), pa.array(drops, pa.int64()),
         pa.array([len(token_lists) * f for f in first], pa.int64()),
         pa.array([sum(len(t) for t in token_lists) * f for f in first], pa.int64()),
         pa.array([n_chunks * f for f in first], pa.int64()),
         pa.array([None if st is None else st.tolist() for st in starts], pa.list_(pa.int32()))],
        names=["source", "domain", "grp", "seq_index", "tokens", "pad", "dropped", "docs", "group_tokens",
               "group_chunks", "starts"])


def pack_task(tok_json: str, eos_id: int | None, batch_size: int, length: int, remainder: str, pad_id: int,
              boundaries: bool = False):
    """``mapInArrow``: documents sorted by (source, domain, group, doc id) in, packed sequences out, a batch
    per (source, domain, group)."""

    def task(batches):
        from udfs.tokenizing import encode, load_tokenizer

        def group(key, token_lists):
            src, dom, grp = key
            return packed_batch((src, grp), token_lists, length, remainder, pad_id, dom, boundaries)

        tok = load_tokenizer(tok_json)
        current, pending = None, []  # a (source, domain, group) run may span batches
        for b in batches:
            cols = b.to_pydict()
            ids = encode(tok, [t or "" for t in cols["text"]], eos_id, batch_size)
            keys = zip(cols["source"], cols["domain"], cols["grp"], strict=True)
            for key, toks in zip(keys, ids, strict=True):
                if key != current:
                    if current is not None:
                        yield group(current, pending)
                    current, pending = key, []
                pending.append(toks)
        if current is not None:
            yield group(current, pending)

    return task


def deal_buckets(docs, count: int, seed: int):
    """``docs`` with a ``bucket`` column. Within each domain, documents sorted by length (longest first;
    ties by a seeded hash of the id, then the id) are cut into runs of ``count`` of about the same length,
    and each run is dealt one document per bucket in an order drawn by a seeded hash: every bucket gets
    the same number of the domain's documents (to one) and about the same number of its characters (to
    one document's length), whatever the spread of lengths."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    h = F.xxhash64(F.lit(seed), F.lit("bucket"), "doc_id")
    by_length = Window.partitionBy("domain").orderBy(F.length("text").desc_nulls_last(), h, "doc_id")
    in_run = Window.partitionBy("domain", "_run").orderBy(h, "doc_id")
    return (docs.withColumn("_run", F.floor((F.row_number().over(by_length) - 1) / F.lit(count)))
            .withColumn("bucket", (F.row_number().over(in_run) - 1).cast("int")).drop("_run"))


def tokenize_and_pack(docs, cfg, tok_json: str, tinfo: dict, persisted: list, started: datetime):
    """``(packed sequences, {(source, domain): Counts})`` of documents (doc_id, text, source, domain); the
    packed DataFrame is cached (appended to ``persisted``). ``started``: the run's start, for the log."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    p, b = cfg.packing, cfg.buckets
    pad_id = p.pad_token_id if p.pad_token_id is not None else tinfo["eos_id"]
    eos = tinfo["eos_id"] if cfg.tokenizer.append_eos else None
    grp = F.pmod(F.xxhash64("doc_id"), F.lit(p.groups))
    if b.count:
        docs = deal_buckets(docs, b.count, cfg.shuffle.seed if b.seed is None else b.seed)
        grp = F.col("bucket") * F.lit(p.groups) + grp
    grouped = (docs.withColumn("grp", grp.cast("int"))
               .repartition(max(2, min(cfg.packing_groups * len(cfg.sources), 200)), "source", "domain", "grp")
               .sortWithinPartitions("source", "domain", "grp", "doc_id"))
    packed = grouped.mapInArrow(
        pack_task(tok_json, eos, cfg.tokenizer.batch_size, p.seq_len + 1, cfg.remainder, pad_id,
                  bool(b.count and b.boundaries)),
        PACKED_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
    persisted.append(packed)
    per_domain = {(r.source, r.domain): Counts(int(r.documents), int(r.tokens), int(r.chunks), int(r.padding),
                                               int(r.dropped), int(r.sequences))
                  for r in packed.groupBy("source", "domain").agg(
                      F.sum("docs").alias("documents"), F.sum("group_tokens").alias("tokens"),
                      F.sum("group_chunks").alias("chunks"), F.sum("pad").alias("padding"),
                      F.sum("dropped").alias("dropped"), F.count(F.col("tokens")).alias("sequences")).collect()}
    log.info(kv(phase="tokenize+pack", domains=len({d for _, d in per_domain}),
                sequences=sum(c.sequences for c in per_domain.values()),
                tokens=sum(c.tokens for c in per_domain.values()),
                seconds=round((datetime.now(UTC) - started).total_seconds(), 1)))
    return packed, per_domain
