"""Decontaminate, mix, tokenize, pack and shuffle lake tables into MDS shards for the trainer.

    spark-submit jobs/tokenize.py --config conf/tokenize/dclm.yaml --lake LAKE --out OUT_URI \\
        [--tokenizer FILE_OR_HUB_ID] [--eval-dir DIR] [--seed S]

Stages, all on the cluster:
1. sources: each configured table (``filtered``, ``deduped`` ... or a Delta path) with its name;
2. decontamination: word 13-gram overlap with the evaluation task files (``udfs.decontam``); the index
   is built once on the driver and shipped to executors as a file; contaminated documents are dropped
   (or only annotated), and a per-task report says how many eval examples were found in the data and
   how many documents each touched;
3. tokenize + pack: HF ``tokenizers`` in ``mapInArrow``, EOS after each document, sequences of
   ``seq_len + 1`` tokens per packing group (``udfs.tokenizing``);
4. mix: each sequence written floor(f) or floor(f) + 1 times (seeded), f per source;
5. shuffle + write: a seeded 64-bit key per written sequence, sequences spread over shard groups by
   key and sorted by key inside them; each group becomes an MDS folder written by the executor that
   holds it (``tokens`` as ``ndarray:uint16`` when the vocabulary fits), then the driver merges the
   folders' indexes into ``OUT/index.json``.

``OUT/manifest.json`` and a row of the Delta ``datasets`` table record the tokenizer, sequence length,
counts per source (documents, tokens, padding, dropped tail tokens, sequences written), shards and the
config. The same config, inputs and seed give byte-identical shards; re-running replaces ``OUT``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository, not jobs/, first on sys.path
    # (this file's name would otherwise shadow the standard library's `tokenize` module)
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from lakesift.config import ConfigError, load_model  # noqa: E402
from lakesift.log import get_logger, job_done, job_start, kv  # noqa: E402

log = get_logger("tokenize")


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="jobs/tokenize.py",
        description="Decontaminate, mix, tokenize, pack and shuffle lake tables into MDS shards.",
        epilog="Example: python jobs/tokenize.py --config conf/tokenize/demo.yaml --lake ./lake "
        "--out ./lake/datasets/demo --tokenizer ../shared/data/tokenizers/gpt-neox-20b/20B_tokenizer.json",
    )
    p.add_argument("--config", required=True, help="conf/tokenize/*.yaml")
    p.add_argument("--lake", default="./lake", help="root URI of the tables (default ./lake)")
    p.add_argument("--out", required=True, help="output folder for the MDS dataset (local path or cloud URI)")
    p.add_argument("--tokenizer", help="tokenizer file / folder / hub id (overrides tokenizer.name)")
    p.add_argument("--eval-dir", help="evaluation task files (overrides decontamination.eval_dir)")
    p.add_argument("--seed", type=int, help="shuffle / mixing seed (overrides shuffle.seed)")
    return p.parse_args(argv)


def load_config(args):
    from udfs.tokenizing import TokenizeConfig

    overrides = {}
    if args.tokenizer:
        overrides["tokenizer.name"] = args.tokenizer
    if args.eval_dir:
        overrides["decontamination.eval_dir"] = args.eval_dir
    if args.seed is not None:
        overrides["shuffle.seed"] = args.seed
    return load_model(TokenizeConfig, args.config, overrides)


def eval_index(cfg, work: str):
    """Build the decontamination index on the driver; None when disabled or skipped."""
    from udfs.decontam import EvalIndex, task_files

    d = cfg.decontamination
    if not d.enabled:
        return None, None
    root = d.eval_dir or os.path.join(os.environ.get("LAKESIFT_SHARED", "../shared"), "data", "eval")
    from lakesift.io import fetch_to_cache, scheme_of

    if scheme_of(root):  # s3://... eval sets: fetched once to a local folder; file: / dbfs:/ as paths
        root = fetch_to_cache(root, "evaluation task folder")
    files = task_files(Path(root), d.tasks) if Path(root).is_dir() else []
    if not files:
        msg = f"decontamination: no task files matching {d.tasks} under {root}"
        if d.if_missing == "skip":
            log.warning(msg + "; skipped (decontamination.if_missing: skip)")
            return None, None
        raise ConfigError(msg + " (set decontamination.eval_dir / --eval-dir, or enabled: false)")
    t0 = time.perf_counter()
    index = EvalIndex.build(files, d.ngram, d.lowercase)
    path = os.path.join(work, f"evalindex-{hashlib.sha1(index.hashes.tobytes()).hexdigest()[:12]}.npz")
    index.save(path)
    log.info(kv(eval_tasks=len(index.tasks), eval_examples=sum(index.examples), ngrams=len(index.hashes),
                seconds=round(time.perf_counter() - t0, 1)))
    return index, path


def decontam_task(index_name: str, lowercase: bool):
    def task(batches):
        import pyarrow as pa
        from pyspark import SparkFiles

        from udfs.decontam import load_index

        index = load_index(SparkFiles.get(index_name))
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


def pack_task(tok_json: str, eos_id: int | None, batch_size: int, length: int, remainder: str, pad_id: int):
    """``mapInArrow``: documents sorted by (source, group, doc id) in, packed sequences out. The first
    row of each group carries the group's document and token counts (the tail row, with ``tokens``
    null when the remainder is dropped, keeps them even for a group shorter than one sequence)."""

    def emit(key, token_lists):
        import numpy as np
        import pyarrow as pa

        from udfs.tokenizing import pack

        src, grp = key
        seqs, pads, drops = [], [], []
        for seq, pad, dropped in pack(token_lists, length, remainder, pad_id):
            seqs.append(seq)
            pads.append(pad)
            drops.append(dropped)
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
        return pa.RecordBatch.from_arrays(
            [pa.array([src] * n, pa.string()), pa.array([grp] * n, pa.int32()), pa.array(range(n), pa.int32()),
             tokens, pa.array(pads, pa.int32()), pa.array(drops, pa.int64()),
             pa.array([len(token_lists) * f for f in first], pa.int64()),
             pa.array([sum(len(t) for t in token_lists) * f for f in first], pa.int64())],
            names=["source", "grp", "seq_index", "tokens", "pad", "dropped", "docs", "group_tokens"])

    def task(batches):
        from udfs.tokenizing import encode, load_tokenizer

        tok = load_tokenizer(tok_json)
        current, pending = None, []  # a (source, group) run may span batches
        for b in batches:
            cols = b.to_pydict()
            ids = encode(tok, [t or "" for t in cols["text"]], eos_id, batch_size)
            for src, grp, toks in zip(cols["source"], cols["grp"], ids, strict=True):
                if (src, grp) != current:
                    if current is not None:
                        yield emit(current, pending)
                    current, pending = (src, grp), []
                pending.append(toks)
        if current is not None:
            yield emit(current, pending)

    return task


def write_task(out: str, columns: dict, size_limit, compression, write_ids: bool, dtype: str):
    def task(batches):
        import numpy as np
        import pyarrow as pa
        from streaming import MDSWriter

        writer, current, written = None, None, []
        count = 0
        per_source: dict[str, int] = {}

        def close():
            if writer is not None:
                writer.finish()
                written.append((current, count))

        for b in batches:
            cols = b.to_pydict()
            for g, toks, sid, src in zip(cols["shard_group"], cols["tokens"], cols["seq_id"], cols["source"],
                                         strict=True):
                if g != current:
                    close()
                    current, count = g, 0
                    writer = MDSWriter(out=f"{out.rstrip('/')}/group-{g:05d}", columns=columns,
                                       compression=compression, size_limit=size_limit, exist_ok=True)
                sample = {"tokens": np.asarray(toks, dtype=dtype)}
                if write_ids:
                    sample["seq_id"] = int(sid)
                    sample["source"] = src
                writer.write(sample)
                count += 1
                per_source[src] = per_source.get(src, 0) + 1
        close()
        if written:
            import json

            yield pa.RecordBatch.from_arrays([pa.array([g for g, _ in written], pa.int64()),
                                              pa.array([c for _, c in written], pa.int64()),
                                              pa.array([json.dumps(per_source)] + [None] * (len(written) - 1))],
                                             names=["shard_group", "samples", "per_source"])

    return task


def prepare_out(out: str) -> None:
    """Start from an empty output folder; refuse to clear one that is not a Lakesift dataset."""
    from lakesift.io import is_local, local_path

    if is_local(out):
        p = Path(local_path(out))
        if p.exists() and any(p.iterdir()):
            if not (p / "manifest.json").exists() and not (p / "index.json").exists():
                raise ConfigError(f"--out {out} exists and is not a Lakesift dataset (no manifest.json); "
                                  "choose another folder")
            shutil.rmtree(p)
        p.mkdir(parents=True, exist_ok=True)
        return
    import fsspec

    fs, root = fsspec.core.url_to_fs(out)
    if fs.exists(root):
        if not fs.exists(f"{root}/manifest.json") and fs.ls(root):
            raise ConfigError(f"--out {out} exists and is not a Lakesift dataset (no manifest.json)")
        fs.rm(root, recursive=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    from lakesift.io import is_local, local_path

    if is_local(args.out):  # file:///x -> /x (MDSWriter takes paths or s3:// gs:// oci:// azure:// dbfs:/ ...)
        args.out = local_path(args.out)
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    try:
        cfg = load_config(args)
        from udfs.tokenizing import resolve_tokenizer, tokenizer_info

        tok_json = resolve_tokenizer(cfg.tokenizer.name)
        tinfo = tokenizer_info(tok_json, cfg.tokenizer)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    vocab = tinfo["vocab_size"]
    dtype = cfg.output.dtype if cfg.output.dtype != "auto" else ("uint16" if vocab <= 65536 else "uint32")
    if dtype == "uint16" and vocab > 65536:
        print(f"error: output.dtype uint16 cannot hold a vocabulary of {vocab}", file=sys.stderr)
        return 2

    from delta.tables import DeltaTable
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.common.lake import record_run, replace_run_rows, resolve_table, table_exists, table_path
    from jobs.common.spark import get_spark

    spark = get_spark("lakesift-tokenize")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "256")
    work = tempfile.mkdtemp(prefix="lakesift-tokenize-")

    # 1. sources
    frames, versions = [], {}
    for s in cfg.sources:
        uri = resolve_table(args.lake, s.table)
        if not table_exists(spark, uri):
            print(f"error: source {s.name}: no Delta table at {uri}", file=sys.stderr)
            return 2
        versions[s.name] = DeltaTable.forPath(spark, uri).history(1).select("version").first()[0]
        frames.append(spark.read.format("delta").load(uri).select(
            F.col(s.id_column).cast("string").alias("doc_id"), F.col(s.text_column).alias("text"),
            F.lit(s.name).alias("source")))
    docs = frames[0]
    for f in frames[1:]:
        docs = docs.unionByName(f)
    fingerprint = hashlib.sha1(json.dumps({"cfg": cfg.model_dump(), "versions": versions, "tok": tinfo["sha1"]},
                                          sort_keys=True).encode()).hexdigest()[:10]
    run_id = f"tokenize-{cfg.name}-{fingerprint}"
    job_start(log, "tokenize", run_id, [f"{k}@v{v}" for k, v in versions.items()],
              [args.out, table_path(args.lake, "datasets")])

    # 2. decontamination
    try:
        index, index_path = eval_index(cfg, work)
        prepare_out(args.out)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    persisted = []
    contamination = []
    if index is not None:
        spark.sparkContext.addFile(index_path)
        d = cfg.decontamination
        checked = docs.mapInArrow(decontam_task(os.path.basename(index_path), d.lowercase),
                                  "doc_id string, text string, source string, _matched long, _hits array<long>") \
            .persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(checked)
        bad = F.col("_matched") >= d.min_matches
        hits = (checked.filter(bad).select("doc_id", "source", F.explode("_hits").alias("h"))
                .select("doc_id", (F.col("h") / F.lit(1 << 32)).cast("long").alias("task"),
                        F.pmod("h", F.lit(1 << 32)).alias("example")))
        per_task = {r.task: (r.examples, r.docs) for r in hits.groupBy("task").agg(
            F.countDistinct("example").alias("examples"), F.countDistinct("doc_id").alias("docs")).collect()}
        n_bad = checked.filter(bad).count()
        for t, name in enumerate(index.tasks):
            found, touched = per_task.get(t, (0, 0))
            contamination.append({"task": name, "examples": index.examples[t], "too_short": index.too_short[t],
                                  "examples_found": int(found), "documents_touched": int(touched)})
        docs = checked.filter(~bad) if d.action == "drop" else checked
        docs = docs.select("doc_id", "text", "source")
        log.info(kv(contaminated_documents=n_bad, action=d.action,
                    tasks_touched=sum(1 for c in contamination if c["documents_touched"])))
    else:
        n_bad = 0

    # 3. tokenize + pack, per (source, packing group), documents in id order
    p = cfg.packing
    length = p.seq_len + 1
    pad_id = p.pad_token_id if p.pad_token_id is not None else tinfo["eos_id"]
    eos = tinfo["eos_id"] if cfg.tokenizer.append_eos else None
    grouped = (docs.withColumn("grp", F.pmod(F.xxhash64("doc_id"), F.lit(p.groups)).cast("int"))
               .repartition(max(2, min(p.groups * len(cfg.sources), 200)), "source", "grp")
               .sortWithinPartitions("source", "grp", "doc_id"))
    packed = grouped.mapInArrow(
        pack_task(tok_json, eos, cfg.tokenizer.batch_size, length, p.remainder, pad_id),
        "source string, grp int, seq_index int, tokens array<int>, pad int, dropped long, docs long, "
        "group_tokens long").persist(StorageLevel.MEMORY_AND_DISK)
    persisted.append(packed)
    per_source = {r.source: r for r in packed.groupBy("source").agg(
        F.sum("docs").alias("documents"), F.sum("group_tokens").alias("tokens"),
        F.sum("pad").alias("padding"), F.sum("dropped").alias("dropped"),
        F.count(F.col("tokens")).alias("sequences")).collect()}
    tokens_in = {s.name: int(per_source[s.name].tokens) if s.name in per_source else 0 for s in cfg.sources}
    log.info(kv(phase="tokenize+pack", sequences=sum(int(r.sequences) for r in per_source.values()),
                tokens=sum(tokens_in.values()), seconds=round(time.perf_counter() - t_start, 1)))

    # 4. mix
    from udfs.tokenizing import frequencies

    try:
        freq = frequencies(cfg, tokens_in)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seed = cfg.shuffle.seed
    src_index = {s.name: i for i, s in enumerate(cfg.sources)}
    src_col = F.create_map(*[x for k, v in src_index.items() for x in (F.lit(k), F.lit(v))])
    freq_col = F.create_map(*[x for k, v in freq.items() for x in (F.lit(k), F.lit(float(v)))])
    seqs = packed.filter(F.col("tokens").isNotNull()).withColumn(
        "seq_id", (src_col[F.col("source")].cast("long") * F.lit(1 << 48))
        + (F.col("grp").cast("long") * F.lit(1 << 32)) + F.col("seq_index").cast("long"))
    # a uniform draw per sequence from a seeded hash: 53 bits of it as a double in [0, 1)
    u = (F.pmod(F.xxhash64(F.lit(seed), F.lit("mix"), "seq_id"), F.lit(1 << 53)).cast("double") / float(1 << 53))
    f = freq_col[F.col("source")]
    reps = (F.floor(f) + F.when(u < f - F.floor(f), 1).otherwise(0)).cast("int")
    mixed = seqs.withColumn("_reps", reps).filter("_reps > 0").withColumn(
        "rep", F.explode(F.sequence(F.lit(0), F.col("_reps") - 1)))

    # 5. shuffle + write
    n_written = mixed.count()
    n_groups = max(1, math.ceil(n_written / cfg.shuffle.sequences_per_group))
    key = F.xxhash64(F.lit(seed), F.lit("shuffle"), "seq_id", "rep")
    shuffled = (mixed.withColumn("key", key).withColumn("shard_group", F.pmod("key", F.lit(n_groups)))
                .repartition(n_groups, "shard_group").sortWithinPartitions("shard_group", "key", "seq_id", "rep")
                .select("shard_group", "tokens", "seq_id", "source"))
    columns = {"tokens": f"ndarray:{dtype}:{length}"}
    if cfg.output.write_ids:
        columns.update({"seq_id": "int64", "source": "str"})
    t0 = time.perf_counter()
    from lakesift.progress import spark_action

    write_df = shuffled.mapInArrow(
        write_task(args.out, columns, cfg.output.size_limit, cfg.output.compression, cfg.output.write_ids, dtype),
        "shard_group long, samples long, per_source string")
    # one task per shard group at the end: the bar counts MDS shard groups written
    written = spark_action(spark, write_df.collect, "writing MDS shard groups", unit="task")
    write_seconds = time.perf_counter() - t0
    log.info(kv(phase="shuffle+write", shard_groups=n_groups, seconds=round(write_seconds, 1)))
    from streaming.base.util import merge_index

    from lakesift.io import is_local

    folders = sorted(f"{args.out.rstrip('/')}/group-{r.shard_group:05d}/index.json" for r in written)
    merge_index(folders, args.out, keep_local=True)
    index_json = json.loads(Path(args.out, "index.json").read_text()) if is_local(args.out) else None
    shards = len(index_json["shards"]) if index_json else None
    per_written: dict[str, int] = {}
    for r in written:
        for k, v in json.loads(r.per_source or "{}").items():
            per_written[k] = per_written.get(k, 0) + v
    if not sum(per_written.values()) == sum(r.samples for r in written) == n_written:
        raise RuntimeError(f"written samples {sum(r.samples for r in written)} != sequences {n_written}")
    for df in persisted:
        df.unpersist()

    sources = {}
    for s in cfg.sources:
        r = per_source.get(s.name)
        sources[s.name] = {
            "table": s.table, "table_version": versions[s.name], "frequency": round(freq[s.name], 6),
            "documents": int(r.documents) if r else 0, "tokens": int(r.tokens) if r else 0,
            "sequences": int(r.sequences) if r else 0, "padding_tokens": int(r.padding) if r else 0,
            "dropped_tail_tokens": int(r.dropped) if r else 0,
            "sequences_written": int(per_written.get(s.name, 0)),
            "tokens_written": int(per_written.get(s.name, 0)) * length,
        }
    manifest = {
        "run_id": run_id, "name": cfg.name, "created_at": started.isoformat(), "out": args.out,
        "tokenizer": {"name": cfg.tokenizer.name, **tinfo, "append_eos": cfg.tokenizer.append_eos},
        "seq_len": p.seq_len, "sequence_tokens": length, "dtype": dtype, "remainder": p.remainder,
        "sequences": int(n_written), "tokens": int(n_written) * length, "shards": shards,
        "shard_groups": n_groups, "sources": sources,
        "decontamination": {"enabled": index is not None, "documents_flagged": int(n_bad),
                            "action": cfg.decontamination.action, "tasks": contamination},
        "config": cfg.model_dump(),
    }
    from lakesift.io import write_text

    write_text(f"{args.out.rstrip('/')}/manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    ds_path = table_path(args.lake, "datasets")
    row = [(run_id, cfg.name, args.out, cfg.tokenizer.name, tinfo["sha1"], p.seq_len, dtype, int(n_written),
            int(n_written) * length, shards, json.dumps(sources, sort_keys=True),
            json.dumps(cfg.model_dump(), sort_keys=True), datetime.now(UTC))]
    ds = spark.createDataFrame(row, "run_id string, name string, out string, tokenizer string, tokenizer_sha1 string, "
                                    "seq_len int, dtype string, sequences long, tokens long, shards int, "
                                    "sources_json string, config_json string, created_at timestamp")
    replace_run_rows(spark, ds, ds_path, run_id)
    record_run(spark, args.lake, run_id, "tokenize", {"config": args.config, "resolved": cfg.model_dump()},
               sys.argv if argv is None else ["jobs/tokenize.py", *argv], started, "succeeded",
               {"sequences": int(n_written), "tokens": int(n_written) * length, "shards": shards})
    shutil.rmtree(work, ignore_errors=True)

    print(f"\n=== tokenize: {cfg.name} -> {args.out} ===")
    if index is not None:
        found = [c for c in contamination if c["examples_found"]]
        print(f"decontamination: {len(index.tasks)} eval tasks, {n_bad} documents {cfg.decontamination.action}"
              f"{'ped' if cfg.decontamination.action == 'drop' else 'd'}; eval examples found in the data: "
              + (", ".join(f"{c['task']} {c['examples_found']}" for c in found[:8]) if found else "none"))
    print(f"{'source':16s} {'docs':>8s} {'tokens':>12s} {'freq':>6s} {'sequences':>10s} {'written':>9s}")
    for name, s in sources.items():
        print(f"{name:16s} {s['documents']:8d} {s['tokens']:12d} {s['frequency']:6.2f} {s['sequences']:10d} "
              f"{s['sequences_written']:9d}")
    print(f"{n_written} sequences of {length} tokens ({n_written * length:,} tokens, {dtype}) in "
          f"{shards} shards, {n_groups} shard groups; written in {write_seconds:.1f} s")
    job_done(log, "tokenize", run_id, time.perf_counter() - t_start, documents=sum(s["documents"] for s in sources.values()),
             sequences=n_written, tokens=n_written * length, shards=shards)
    return 0


if __name__ == "__main__":
    sys.exit(main())
