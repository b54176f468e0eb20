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
from jobs.common.job import Context, Job, UsageError
from jobs.dataset import NAME, log
from jobs.dataset import domains as D
from jobs.dataset.config import DatasetConfig
from jobs.dataset.decontam import build_index, decontaminate, eval_files
from jobs.dataset.manifest import (
    Result,
    datasets_row,
    domain_facts,
    domain_stats_rows,
    manifest,
    print_summary,
    source_facts,
    validation_seed,
    with_domain,
    write_manifest,
    write_reference_weights,
    write_stages,
)
from jobs.dataset.mix import hold_out, mix, sequences
from jobs.dataset.pack import Counts, tokenize_and_pack
from jobs.dataset.shuffle import shuffle
from jobs.dataset.write import check_out, clear_out, write
from jobs.dataset.writers import WRITERS
from jobs.dataset.writers.mds import MDSBucketsWriter, MDSStreamsWriter
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


def read_sources(ctx: Context, sources, d):
    """``(documents (doc_id, text, source, domain) of every source, {source: table version read})``; each
    table read once, pinned to one version, whichever sources name it; :class:`UsageError` for a missing
    table, or one without the column the domains (``d``) are read from."""
    from pyspark.sql import functions as F

    frames, versions, reads = [], {}, {}
    need = D.source_column(d)
    for s in sources:
        if s.table not in reads:
            reads[s.table] = ctx.read(s.table, f"source {s.name}")
        df, versions[s.name] = reads[s.table]
        if need is not None and need.lower() not in {c.lower() for c in df.columns}:
            key = "column" if d.by == "column" else "url_column"
            raise UsageError(f"no column {need!r} in table {s.table} (source {s.name}, domains.{key})")
        frames.append(df.select(F.col(s.id_column).cast("string").alias("doc_id"), F.col(s.text_column).alias("text"),
                                F.lit(s.name).alias("source"), D.domain_column(d, s.name).alias("domain")))
    docs = frames[0]
    for f in frames[1:]:
        docs = docs.unionByName(f)
    return docs, versions


def check_mixing_and_domains(cfg) -> None:
    """What the config alone shows wrong about mixing and domains (ValueError), before Spark starts:
    a weights file that cannot be read, names that are not sources, or not domains when the config
    decides the domains, folders that would collide."""
    from udfs.tokenizing import frequencies, share_frequencies, target_shares

    known = D.known_domains(cfg)
    if D.mixing_unit(cfg) == "source":  # token counts: any
        frequencies(cfg.sources, cfg.mixing, {s.name: 1 for s in cfg.sources})
    else:
        shares = target_shares(cfg.mixing)
        if known is not None:
            share_frequencies(shares, dict.fromkeys(known, 1), None, "domains")
    if known is not None:
        D.check_names(cfg.domains.epochs, known, "domains.epochs")
        if D.writes_folders(cfg):
            D.folders(known)


def unit_frequencies(cfg, plan: D.Plan, per_domain: dict, held: dict) -> dict[str, float]:
    """Per mixing unit (``plan.unit``), its frequency; proportions weigh each unit by the tokens of its
    training sequences (its documents' tokens times the share of its sequences not held out).
    :class:`ConfigError` for proportions naming domains the data does not have."""
    from udfs.tokenizing import frequencies, share_frequencies, target_shares

    part = 0 if plan.unit == "source" else 1
    totals = {n: Counts() for n in (plan.names if part else [])}
    held_by = dict.fromkeys(totals, 0)
    for key, c in per_domain.items():
        totals[key[part]] = totals.get(key[part], Counts()) + c
        held_by[key[part]] = held_by.get(key[part], 0) + held.get(key, 0)
    tokens = {n: c.tokens * (c.sequences - held_by[n]) / c.sequences if held_by[n] else c.tokens
              for n, c in totals.items()}
    if plan.unit == "source":
        return frequencies(cfg.sources, cfg.mixing, tokens)  # its errors were found by configure
    try:
        return share_frequencies(target_shares(cfg.mixing), tokens, cfg.mixing.total_tokens, "domains")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


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
        from udfs.tokenizing import resolve_tokenizer, tokenizer_info

        cfg = super().configure(args)
        try:
            tok_json = resolve_tokenizer(cfg.tokenizer.name)
            tinfo = tokenizer_info(tok_json, cfg.tokenizer.eos_token)
            # proportions / a weights file / domains that cannot work fail now, not after tokenizing
            check_mixing_and_domains(cfg)
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
        return {"config": ctx.args.config, "resolved": ctx.cfg.cfg.record(mode="json")}

    def run(self, ctx: Context) -> None:
        req, spark = ctx.cfg, ctx.spark
        cfg = req.cfg
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "256")
        docs, versions = read_sources(ctx, cfg.sources, cfg.domains)
        ctx.output(cfg.output.format, req.out)
        ctx.output("datasets")
        if cfg.domains_given:
            ctx.output("domain_stats")
        fp = runs.fingerprint(cfg.record(mode="json"), req.tinfo["sha1"])
        ctx.start(runs.run_id(NAME, cfg.name, fp, {s.table: versions[s.name] for s in cfg.sources}))
        r = self.stages(ctx, req, docs, versions)
        sources = source_facts(cfg, r)
        domains = domain_facts(cfg, r) if cfg.domains_given else None
        write_manifest(req.out, manifest(req, r, ctx.run.id, ctx.run.started_at, sources, domains))
        if cfg.buckets.count:
            write_stages(req.out, cfg, r)
        ctx.lake.replace_run_rows(spark, datasets_row(spark, req, r, ctx.run.id, sources), "datasets", ctx.run.id)
        if domains is not None:
            write_reference_weights(req.out, domains)
            ctx.lake.replace_run_rows(spark, domain_stats_rows(spark, req, ctx.run.id, domains), "domain_stats",
                                      ctx.run.id)
        print_summary(req, r, sources, domains)
        tokens = r.sequences * (cfg.packing.seq_len + 1)
        ctx.done(documents=sum(s["documents"] for s in sources.values()), sequences=r.sequences, tokens=tokens,
                 shards=r.facts["shards"])

    def stages(self, ctx: Context, req: Request, docs, versions: dict) -> Result:
        """Decontaminate, tokenize + pack, plan the domains, hold out, mix, shuffle, write: the facts for
        the manifest. The output folder is cleared only once the plan and the frequencies stand, so a
        request refused on what packing counted leaves it untouched."""
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
            flagged, report = 0, None
            if index is not None:
                docs, flagged, report = decontaminate(spark, docs, d, index, index_path, persisted)
            packed, per_domain = tokenize_and_pack(docs, cfg, req.tok_json, req.tinfo, persisted, ctx.run.started_at)
            plan = D.plan(cfg, per_domain)
            train = sequences(packed, cfg.sources, plan.local_index, cfg.packing_groups)
            extra: tuple[str, ...] = ()
            if cfg.buckets.count:
                from pyspark.sql import functions as F

                train = train.withColumn("bucket", F.floor(F.col("grp") / F.lit(cfg.packing.groups)).cast("int"))
                extra = ("bucket", "starts", "pad") if cfg.buckets.boundaries else ("bucket",)
            held, n_held = None, {}
            if cfg.domains.validation.fraction > 0:
                train, held = hold_out(train, cfg.domains.validation.fraction, validation_seed(cfg))
                n_held = {(r.source, r.domain): int(r["count"]) for r in held.groupBy("source", "domain").count()
                          .collect()}
            freq = unit_frequencies(cfg, plan, per_domain, n_held)
            clear_out(req.out)
            shuffled, n_written, n_groups = shuffle(mix(train, plan.unit, freq, cfg.shuffle.seed), cfg.shuffle, extra)
            writer = self.writer(req, req.out, plan, cfg.domains.layout == "streams")
            w = write(spark, shuffled, writer, n_written, n_groups)
            facts = writer.finalize(w.groups, w.parts)
            validation = None
            if held is not None:
                validation = self.write_validation(spark, req, held, plan)
        finally:
            for df in persisted:
                df.unpersist()
            shutil.rmtree(work, ignore_errors=True)
        return Result(versions, per_domain, plan, freq, w.per_source, w.per_domain, n_held, n_written, n_groups,
                      w.seconds, facts, validation, index.tasks if index is not None else None, flagged, report,
                      w.per_route if cfg.buckets.count else None)

    @staticmethod
    def writer(req: Request, out: str, plan: D.Plan, streams: bool):
        """The shard writer into ``out``: the configured format, or one MDS dataset per domain."""
        cfg, length = req.cfg, req.cfg.packing.seq_len + 1
        if streams:
            return MDSStreamsWriter(out, cfg.output, req.dtype, length,
                                    {n: f"domains/{f}" for n, f in plan.folders.items()})
        if cfg.buckets.count:
            return MDSBucketsWriter(out, cfg.output, req.dtype, length, cfg.buckets.count, with_domain(cfg),
                                    cfg.buckets.boundaries)
        return WRITERS[cfg.output.format](out, cfg.output, req.dtype, length, with_domain(cfg))

    def write_validation(self, spark, req: Request, held, plan: D.Plan) -> dict:
        """Shuffle and write the held-out sequences (once each) to ``OUT/validation``, a dataset per domain."""
        from pyspark.sql import functions as F

        cfg, length = req.cfg, req.cfg.packing.seq_len + 1
        out = f"{req.out.rstrip('/')}/validation"
        shuffled, n, n_groups = shuffle(held.withColumn("rep", F.lit(0)), cfg.shuffle)
        facts = {"fraction": cfg.domains.validation.fraction, "seed": validation_seed(cfg), "folder": "validation",
                 "sequences": n, "tokens": n * length, "shards": 0, "shard_groups": 0}
        if n == 0:
            log.warning("domains.validation: no sequence drawn for validation; no OUT/validation written")
            return facts
        writer = self.writer(req, out, plan, True)
        w = write(spark, shuffled, writer, n, n_groups, "validation shard groups")
        return {**facts, **writer.finalize(w.groups, w.parts), "shard_groups": n_groups}


job = DatasetJob()
main, parse_args = job.main, job.parse_args

if __name__ == "__main__":
    sys.exit(main())
