"""Remove duplicates from a Delta table: exact text / URL, MinHash-LSH, and paragraph-level (BFF-style).

    spark-submit jobs/dedup/main.py [--config conf/dedup/default.yaml] --lake LAKE \\
        [--input filtered] [--output deduped] [--set steps.1.threshold=0.7]
    python -m jobs.dedup …              (the same command, from the repository root)

The config's steps run in order, each on the survivors of the previous one. A step's ``method`` is one
file of ``jobs/dedup/methods/`` (``methods/base.py``: the registry and how to add a method):

* ``exact``: documents whose normalised text (``udfs.dedup.normalized_text``) is equal;
* ``url``: documents with the same URL;
* ``minhash``: MinHash-LSH candidate edges, optionally verified by exact Jaccard, grouped by connected
  components computed on the cluster (``jobs.dedup.components``);
* ``paragraph``: DCLM's BFF idea made exact and order-defined: documents and paragraphs whose n-grams
  were mostly seen earlier in (doc_id, paragraph) order are removed ("old-both").

The text-based methods (exact, minhash, paragraph) take ``normalization`` (``udfs.dedup.Normalization``):
``units: words`` (the default) or ``units: chars`` for Chinese and other scripts written without spaces
(``conf/dedup/zh.yaml``), where shingles and n-grams count characters.

In every group of duplicates one survivor is kept by the step's ``keep`` policy: ``first`` (smallest
doc_id), ``longest`` (most characters, then smallest id) or ``best`` (largest value of column ``by``,
then smallest id), so the same input gives the same survivors.

Outputs under ``LAKE``: ``<output>`` (survivors), ``dup_clusters`` (``doc_id``, ``cluster_id``,
``kept``, ``method``, ``run_id`` for every document in a group of two or more; ``paragraph`` rows
list documents it dropped or shortened), and rows in ``run_stats`` per method. Every input document is
kept or removed exactly once. The input is read pinned to its current Delta version, which the run id
names; re-running the same config on the same version replaces its rows.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from jobs.common import runs
from jobs.common.job import Context, Job
from jobs.dedup.methods import StepContext, StepResult, method_for, step_type
from lakesift.config import ConfigError, StrictModel
from lakesift.log import kv

Step = step_type()  # one of the registered methods' configs, chosen by `method`


class DedupConfig(StrictModel):
    name: str = "dedup"
    steps: list[Step]


def count_docs(df) -> tuple[int, int]:
    """Documents and characters of ``df``, in one pass."""
    from pyspark.sql import functions as F

    agg = df.agg(F.count("*").alias("n"), F.sum(F.length("text")).alias("chars")).first()
    return int(agg.n), int(agg.chars or 0)


@dataclass
class Funnel:
    """The steps' results as they accumulate: the survivors so far, every step's clusters, the
    ``run_stats`` rows and the printed rows."""

    name: str
    kept: Any
    n: int
    chars: int
    n_in: int = 0
    clusters: Any = None
    stat_rows: list = field(default_factory=list)
    rows: list = field(default_factory=list)  # (step id, docs in, kept, removed, seconds, stats)
    persisted: list = field(default_factory=list)

    def add(self, sctx: StepContext, i: int, method: str, result: StepResult, n_kept: int, chars_kept: int,
            seconds: float) -> None:
        kept, clusters, stats, extra = result
        sid, removed = f"{i:02d}_{method}", self.n - n_kept
        self.persisted += [kept, clusters, *extra]
        self.clusters = clusters if self.clusters is None else self.clusters.unionByName(clusters)
        self.stat_rows.append((sctx.run_id, self.name, sid, i, None, self.n, n_kept, removed, self.chars, chars_kept))
        for k, v in stats.items():
            self.stat_rows.append((sctx.run_id, self.name, sid, i, f"{k}={v}", None, None, None, None, None))
        self.rows.append((sid, self.n, n_kept, removed, seconds, stats))
        sctx.log.info(kv(step=sid, documents_in=self.n, kept=n_kept, removed=removed, seconds=round(seconds, 1),
                        **{k: v for k, v in stats.items() if k != "component_sizes"}))
        self.kept, self.n, self.chars = kept, n_kept, chars_kept

    def print(self) -> None:
        print(f"\n=== dedup: {self.name} ({self.n_in} documents in) ===")
        print(f"{'step':14s} {'docs in':>8s} {'kept':>8s} {'removed':>8s} {'seconds':>8s}  details")
        for sid, a, b, r, secs, st in self.rows:
            detail = ", ".join(f"{k} {v}" for k, v in st.items())
            print(f"{sid:14s} {a:8d} {b:8d} {r:8d} {secs:8.1f}  {detail}")
        print(f"kept {self.n} of {self.n_in} documents")


def run_steps(spark, docs, cfg: DedupConfig, sctx: StepContext) -> Funnel:
    """Each step on the survivors of the previous one; kept and clusters persisted and counted."""
    from pyspark import StorageLevel

    n, chars = count_docs(docs)
    funnel = Funnel(cfg.name, docs, n, chars, n_in=n)
    for i, step in enumerate(cfg.steps):
        t0 = time.perf_counter()
        res = method_for(step).run(spark, funnel.kept, step, sctx)
        res = res._replace(kept=res.kept.persist(StorageLevel.MEMORY_AND_DISK),
                           clusters=res.clusters.persist(StorageLevel.MEMORY_AND_DISK))
        n_kept, chars_kept = count_docs(res.kept)  # characters too: paragraph dedup shortens texts
        funnel.add(sctx, i, step.method, res, n_kept, chars_kept, time.perf_counter() - t0)
    return funnel


def remove_checkpoints(path: str) -> None:
    import shutil

    from lakesift.io import is_local, local_path

    if is_local(path):
        shutil.rmtree(local_path(path), ignore_errors=True)


class DedupJob(Job):
    name, prog = "dedup", "jobs/dedup/main.py"
    description = "Exact, URL, MinHash-LSH and paragraph-level dedup of a Delta table (conf/dedup/*.yaml)."
    epilog = "Example: python jobs/dedup/main.py --config conf/dedup/default.yaml --lake ./lake"
    config_model, default_config = DedupConfig, "conf/dedup/default.yaml"
    config_help = "dedup config, conf/dedup/*.yaml"

    def add_arguments(self, p) -> None:
        p.add_argument("--input", default="filtered", help="input table (default filtered)")
        p.add_argument("--output", default="deduped", help="output table (default deduped)")

    def configure(self, args) -> DedupConfig:
        cfg = super().configure(args)
        if not cfg.steps:
            raise ConfigError(f"{args.config}: steps: at least one step")
        for i, step in enumerate(cfg.steps):
            method_for(step).check_config(step, f"{args.config}: steps.{i}")
        return cfg

    def run(self, ctx: Context) -> None:
        args, cfg, spark, lake = ctx.args, ctx.cfg, ctx.spark, ctx.lake
        docs, version = ctx.read(args.input)
        for step in cfg.steps:  # UsageError (exit 2, nothing recorded) before anything runs
            method_for(step).check_input(step, docs.columns)
        for table in (args.output, "dup_clusters", "run_stats"):
            ctx.output(table)
        run_id = runs.run_id("dedup", cfg.name, runs.fingerprint(cfg), {args.input: version})
        ctx.start(run_id, steps=len(cfg.steps))
        sctx = StepContext(run_id, f"{lake.root}/_checkpoints/{run_id}", self.log)

        funnel = run_steps(spark, docs, cfg, sctx)
        lake.overwrite(funnel.kept, args.output)
        lake.replace_run_rows(spark, funnel.clusters, "dup_clusters", run_id)
        lake.write_run_stats(spark, funnel.stat_rows, run_id)
        for df in funnel.persisted:
            df.unpersist()
        remove_checkpoints(sctx.checkpoint_dir)

        funnel.print()
        ctx.done(documents_in=funnel.n_in, kept=funnel.n, removed=funnel.n_in - funnel.n)


JOB = DedupJob()
main = JOB.main
parse_args = JOB.parse_args

if __name__ == "__main__":
    sys.exit(main())
