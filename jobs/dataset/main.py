"""The dataset job: its flags, what is checked before Spark starts, and the order of the stages
(``jobs/dataset/__init__.py`` describes them).

    python -m jobs.dataset --config conf/tokenize/dclm.yaml --lake LAKE --out OUT_URI
    spark-submit jobs/dataset/main.py --config conf/tokenize/dclm.yaml --lake LAKE --out OUT_URI
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jobs.common import runs
from jobs.common.job import Context, Job
from jobs.dataset import NAME
from jobs.dataset.config import DatasetConfig
from jobs.dataset.decontam import build_index, decontaminate, eval_files
from jobs.dataset.manifest import Result, datasets_row, manifest, print_summary, source_facts, write_manifest
from jobs.dataset.mix import mix
from jobs.dataset.pack import tokenize_and_pack
from jobs.dataset.shuffle import shuffle
from jobs.dataset.write import check_out, clear_out, write
from jobs.dataset.writers import WRITERS
from lakesift.config import ConfigError
from lakesift.io import is_local, local_path


@dataclass(frozen=True)
class Request:
    """What ``configure`` checked and resolved, before Spark starts."""

    cfg: DatasetConfig
    out: str  # --out; a local one as an absolute path (MDSWriter takes paths or s3:// gs:// dbfs:/ …)
    tok_json: str  # the tokenizer's JSON (shipped to the tasks inside the packing function)
    tinfo: dict  # vocab_size, eos_id, sha1
    dtype: str  # uint16 / uint32
    eval_files: list[tuple[str, Path]]  # (task, file); empty: no decontamination
    eval_note: str | None  # why decontamination is skipped, logged when the run starts


def read_sources(ctx: Context, sources):
    """``(documents (doc_id, text, source) of every source, {source: table version read})``; each table
    read once, pinned to one version, whichever sources name it; :class:`UsageError` for a missing one."""
    from pyspark.sql import functions as F

    frames, versions, reads = [], {}, {}
    for s in sources:
        if s.table not in reads:
            reads[s.table] = ctx.read(s.table, f"source {s.name}")
        df, versions[s.name] = reads[s.table]
        frames.append(df.select(F.col(s.id_column).cast("string").alias("doc_id"), F.col(s.text_column).alias("text"),
                                F.lit(s.name).alias("source")))
    docs = frames[0]
    for f in frames[1:]:
        docs = docs.unionByName(f)
    return docs, versions


class DatasetJob(Job):
    name, prog = NAME, "jobs/dataset/main.py"
    description = "Decontaminate, mix, tokenize, pack and shuffle lake tables into MDS shards."
    epilog = ("Example: python -m jobs.dataset --config conf/tokenize/demo.yaml --lake ./lake "
              "--out ./lake/datasets/demo --tokenizer ../shared/data/tokenizers/gpt-neox-20b/20B_tokenizer.json")
    config_model, default_config = DatasetConfig, "conf/tokenize/dclm.yaml"
    config_help = "dataset config, conf/tokenize/*.yaml"

    def add_arguments(self, p):
        p.add_argument("--out", required=True, help="output folder for the dataset (local path or cloud URI)")
        p.add_argument("--tokenizer", help="tokenizer file / folder / hub id (overrides tokenizer.name)")
        p.add_argument("--eval-dir", help="evaluation task files (overrides decontamination.eval_dir)")
        p.add_argument("--seed", type=int, help="shuffle / mixing seed (overrides shuffle.seed)")

    def overrides(self, args):
        return {"tokenizer.name": args.tokenizer or None, "decontamination.eval_dir": args.eval_dir or None,
                "shuffle.seed": args.seed}

    def configure(self, args) -> Request:
        from udfs.tokenizing import frequencies, resolve_tokenizer, tokenizer_info

        cfg = super().configure(args)
        try:
            tok_json = resolve_tokenizer(cfg.tokenizer.name)
            tinfo = tokenizer_info(tok_json, cfg.tokenizer.eos_token)
            # proportions / a weights file that cannot work fail now, not after tokenizing (token counts: any)
            frequencies(cfg.sources, cfg.mixing, {s.name: 1 for s in cfg.sources})
        except (ValueError, OSError) as exc:
            raise ConfigError(str(exc)) from None
        vocab = tinfo["vocab_size"]
        dtype = cfg.output.dtype if cfg.output.dtype != "auto" else ("uint16" if vocab <= 65536 else "uint32")
        if dtype == "uint16" and vocab > 65536:
            raise ConfigError(f"output.dtype uint16 cannot hold a vocabulary of {vocab}")
        out = local_path(args.out) if is_local(args.out) else args.out
        check_out(out)
        files, note = eval_files(cfg.decontamination)
        return Request(cfg, out, tok_json, tinfo, dtype, files, note)

    def run_config(self, ctx: Context) -> dict:
        return {"config": ctx.args.config, "resolved": ctx.cfg.cfg.model_dump(mode="json")}

    def run(self, ctx: Context) -> None:
        req, spark = ctx.cfg, ctx.spark
        cfg = req.cfg
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "256")
        docs, versions = read_sources(ctx, cfg.sources)
        writer = WRITERS[cfg.output.format](req.out, cfg.output, req.dtype, cfg.packing.seq_len + 1)
        ctx.output(cfg.output.format, req.out)
        ctx.output("datasets")
        fp = runs.fingerprint(cfg, req.tinfo["sha1"])
        ctx.start(runs.run_id(NAME, cfg.name, fp, {s.table: versions[s.name] for s in cfg.sources}))
        r = self.stages(ctx, req, docs, versions, writer)
        sources = source_facts(cfg, r)
        write_manifest(req.out, manifest(req, r, ctx.run.id, ctx.run.started_at, sources))
        ctx.lake.replace_run_rows(spark, datasets_row(spark, req, r, ctx.run.id, sources), "datasets", ctx.run.id)
        print_summary(req, r, sources)
        tokens = r.sequences * (cfg.packing.seq_len + 1)
        ctx.done(documents=sum(s["documents"] for s in sources.values()), sequences=r.sequences, tokens=tokens,
                 shards=r.facts["shards"])

    def stages(self, ctx: Context, req: Request, docs, versions: dict, writer) -> Result:
        """Decontaminate, tokenize + pack, mix, shuffle, write: the facts for the manifest."""
        from udfs.tokenizing import frequencies

        cfg, spark = req.cfg, ctx.spark
        d = cfg.decontamination
        persisted: list = []  # DataFrames cached by the stages, unpersisted once the shards are written
        work = tempfile.mkdtemp(prefix="lakesift-tokenize-")
        try:
            index = None
            if req.eval_files:
                index, index_path = build_index(req.eval_files, d, work)
            elif req.eval_note:
                ctx.log.warning(req.eval_note)
            clear_out(req.out)
            flagged, report = 0, None
            if index is not None:
                docs, flagged, report = decontaminate(spark, docs, d, index, index_path, persisted)
            packed, per_source = tokenize_and_pack(docs, cfg, req.tok_json, req.tinfo, persisted, ctx.run.started_at)
            tokens = {s.name: int(per_source[s.name].tokens) if s.name in per_source else 0 for s in cfg.sources}
            freq = frequencies(cfg.sources, cfg.mixing, tokens)  # its errors were found by configure
            shuffled, n_written, n_groups = shuffle(mix(packed, cfg.sources, freq, cfg.shuffle.seed), cfg.shuffle)
            w = write(spark, shuffled, writer, n_written, n_groups)
            facts = writer.finalize(w.groups)
        finally:
            for df in persisted:
                df.unpersist()
            shutil.rmtree(work, ignore_errors=True)
        return Result(versions, per_source, freq, w.per_source, n_written, n_groups, w.seconds, facts,
                      index.tasks if index is not None else None, flagged, report)


job = DatasetJob()
main, parse_args = job.main, job.parse_args

if __name__ == "__main__":
    sys.exit(main())
