"""Apply a YAML pipeline of filters / modifiers / enrichers to a Delta table of documents.

    spark-submit jobs/filter.py --config conf/pipelines/dclm_baseline.yaml --lake LAKE \\
        [--input documents] [--output filtered] [--rejected-text]

Writes, under ``LAKE``:
* ``<output>`` (default ``filtered``): the kept documents, text as modified by the pipeline,
  ``language`` / ``language_score`` updated when the pipeline re-identifies the language;
* ``<output>_rejected``: ``doc_id``, ``step``, ``reason``, ``run_id``, ``chars``, ``language``, the
  pipeline's columns (``route`` for a routed pipeline) and ``text`` with ``--rejected-text``;
* ``run_stats`` (shared by all stages): one row per run and step with documents and characters in /
  out, and one row per run, step, reason and language with the documents it dropped.

A routed pipeline (``conf/pipelines/multilingual.yaml``) sends each document to the pipeline of its
language; its steps are ``<branch>/<step>`` and a document runs only the shared steps and its branch's.

Every input document is kept or rejected exactly once. The run id is derived from the pipeline
config and the input table's Delta version, so running the same config on the same input again
replaces that run's outputs and statistics instead of adding to them, while a changed config is a
new run whose statistics sit beside the old ones.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

from jobs.common import runs
from jobs.common.job import Context, Job
from jobs.common.ship import local_file, ship_file
from lakesift.config import ConfigError, read_yaml_bytes
from lakesift.log import kv


@dataclass
class Request:
    """The checked request: the pipeline spec (with overrides), the built pipeline, what it came from."""

    spec: dict
    pipe: object
    raw: bytes
    skips: list[str]


def read_pipeline(path: str, sets: list[str] | None = None, skips: list[str] | None = None) -> Request:
    """Read the pipeline file once and apply command-line overrides; every step is validated."""
    from udfs.pipeline import build, override, resolve_routes

    raw, spec = read_yaml_bytes(path, "pipeline file")
    spec = resolve_routes(spec, path)  # a routed pipeline's branch files, read once here and carried inline
    if sets or skips:
        spec = override(spec, sets, skips, path)
    return Request(spec, build(spec, path), raw, list(skips or []))


def prepare_steps(spark, pipe, spec: dict) -> tuple[dict[str, str], list[str]]:
    """Driver side, before any task: fetch and check model files, ship each to the executors once
    (``jobs.common.ship``), and pin the text normalisation a model was trained with into the spec.
    Returns {step id: shipped file name} and the digests of the model files (part of the run id)."""
    import os

    from udfs import quality

    shipped: dict[str, str] = {}
    digests = []
    for (sid, step), raw in zip(pipe.steps, pipe.raw_steps(spec), strict=True):
        try:
            step.prepare()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"step {sid} ({step.name}): {exc}") from None
        raw.update(step.pinned_params())
        local = step.local_path
        if not local:
            continue
        digest = quality.file_digest(local)
        digests.append(digest)
        # unique name per file content, so two steps' "model.bin" do not collide among shipped files
        shipped[sid] = ship_file(spark, local, f"{sid}-{digest}-{os.path.basename(local)}")
    return shipped, digests


def make_task(config_path: str, spec: dict, schema, run_id: str, keep_rejected_text: bool,
              start: int, end: int, thresholds: dict[str, float], shipped: dict[str, str],
              carry_meta: bool):
    """``mapInArrow`` function: run steps ``start..end`` on each document, one output row per input row.

    The first segment starts from the input table; a later one (after a corpus-wide threshold) starts
    from the kept rows of the previous one, whose metadata travels as JSON in ``_meta``."""
    from pyspark.sql.pandas.types import to_arrow_schema

    arrow_schema = to_arrow_schema(schema, timezone="UTC")

    def task(batches):
        import json

        import pyarrow as pa

        from udfs.pipeline import build

        pipe = build(spec, config_path)
        steps = dict(pipe.steps)
        for sid, t in thresholds.items():
            steps[sid].resolve(t)
        for sid, name in shipped.items():
            steps[sid].local_path = local_file(name)
        # Columns the pipeline does not touch pass through as Arrow arrays, never converted to Python
        # objects (the text too, when no step in this segment rewrites it).
        rewrites = any(step.kind == "modifier" for _, step in pipe.steps[start:end])
        enriched = list(pipe.columns())
        reads = pipe.reads()
        wanted = {"text", "url", "language", "language_score", "_meta", "_chars_after", "_steps_ran", "_chars_in",
                  *reads}
        for b in batches:
            n = b.num_rows
            present = set(b.schema.names)
            cols = {k: b.column(k).to_pylist() for k in wanted if k in present}
            none = [None] * n
            texts = [t or "" for t in cols["text"]]
            urls = cols.get("url", none)
            if "_meta" in cols:
                metas = [json.loads(m) if m else {} for m in cols["_meta"]]
                before = [list(a or []) for a in cols["_chars_after"]]
                ran_before = [list(a or []) for a in cols["_steps_ran"]]
                chars_in = cols["_chars_in"]
            else:
                langs, scores = cols.get("language", none), cols.get("language_score", none)
                metas = [{"language": langs[i], "language_score": scores[i]} for i in range(n)]
                for k in reads:
                    if k in cols:
                        for i in range(n):
                            metas[i][k] = cols[k][i]
                before = [[] for _ in range(n)]
                ran_before = [[] for _ in range(n)]
                chars_in = [len(t) for t in texts]
            outcomes = pipe.run_batch(texts, urls, metas, start, end)
            out = {
                "_kept": [o.kept for o in outcomes],
                "_step": [o.step for o in outcomes],
                "_reason": [o.reason for o in outcomes],
                "_chars_in": chars_in,
                "_chars_after": [before[i] + o.chars_after for i, o in enumerate(outcomes)],
                "_steps_ran": [ran_before[i] + o.steps_ran for i, o in enumerate(outcomes)],
                "_run_id": [run_id] * n,
                "_meta": [json.dumps(o.meta, default=str) if carry_meta and o.kept else None for o in outcomes],
            }
            if rewrites:
                out["text"] = [o.text if (o.kept or keep_rejected_text) else None for o in outcomes]
            if "language" in present and "language_score" in present:
                out["language"] = [o.meta.get("language", cols["language"][i]) for i, o in enumerate(outcomes)]
                out["language_score"] = [o.meta.get("language_score", cols["language_score"][i])
                                         for i, o in enumerate(outcomes)]
            for k in enriched:
                out[k] = [o.meta.get(k) for o in outcomes]
            arrays = []
            for field in arrow_schema:
                if field.name in out:
                    arrays.append(pa.array(out[field.name], type=field.type))
                elif field.name in present:
                    arrays.append(b.column(field.name))
                else:
                    arrays.append(pa.nulls(n, field.type))
            yield pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)

    return task


def step_stats(spark, decided, step_ids: list[str], run_id: str, pipeline: str):
    """Per-step funnel from the per-document decisions, aggregated in Spark.

    A document reaches step k when it ran it (``_steps_ran``: every step up to the one that dropped
    it; in a routed pipeline only the shared steps and its branch's); it leaves step k when it passes
    it. Characters in / out of step k are the text lengths before / after it. Rows per reason are
    also per language (the document's ``language`` after the pipeline, when the table has one).
    """
    from pyspark.sql import functions as F

    idx = {s: i for i, s in enumerate(step_ids)}
    step_index = F.coalesce(F.element_at(F.create_map(*[x for s, i in idx.items() for x in (F.lit(s), F.lit(i))]),
                                         F.col("_step")), F.lit(len(step_ids)))
    lang = F.col("language") if "language" in decided.columns else F.lit(None).cast("string")
    d = decided.select(step_index.alias("drop_at"), "_chars_in", "_chars_after", "_steps_ran", "_step", "_reason",
                       lang.alias("language"))
    # position p of _chars_after is the length after the p-th step run (index _steps_ran[p]), so the
    # length before it is the previous position's (the input's for p = 0)
    before = F.when(F.col("p") == 0, F.col("_chars_in")).otherwise(F.element_at("_chars_after", F.col("p")))
    exploded = (d.select("drop_at", "_chars_in", "_chars_after", "_steps_ran",
                         F.posexplode("_chars_after").alias("p", "chars_out"))
                .withColumn("k", F.element_at("_steps_ran", F.col("p") + 1))
                .withColumn("chars_in", before))
    passed = F.col("drop_at") != F.col("k")
    rows = []
    for r in exploded.groupBy("k").agg(
            F.count("*").alias("docs_in"),
            F.sum(F.when(passed, 1).otherwise(0)).alias("docs_out"),
            F.sum("chars_in").alias("chars_in"),
            F.sum(F.when(passed, F.col("chars_out")).otherwise(0)).alias("chars_out")).collect():
        rows.append((run_id, pipeline, step_ids[r.k], int(r.k), None, int(r.docs_in), int(r.docs_out),
                     int(r.docs_in - r.docs_out), int(r.chars_in), int(r.chars_out), None))
    for r in (d.filter(F.col("_step").isNotNull()).groupBy("_step", "_reason", "language")
              .agg(F.count("*").alias("n"), F.sum("_chars_in").alias("chars")).collect()):
        rows.append((run_id, pipeline, r._step, idx[r._step], r._reason, None, None, int(r.n), int(r.chars), None,
                     r.language))
    return rows


def output_schema(pipe, docs, extra):
    """Input columns, the pipeline's new columns (Spark SQL types), then the decision columns."""
    from pyspark.sql import types as T

    added = [T.StructField(k, T.DataType.fromDDL(t), True) for k, t in pipe.columns().items()
             if k not in docs.columns]
    return T.StructType([T.StructField(f.name, f.dataType, True) for f in docs.schema.fields] + added + extra)


def decision_fields():
    from pyspark.sql import types as T

    return [T.StructField("_kept", T.BooleanType()), T.StructField("_step", T.StringType()),
            T.StructField("_reason", T.StringType()), T.StructField("_chars_in", T.LongType()),
            T.StructField("_chars_after", T.ArrayType(T.LongType())),
            T.StructField("_steps_ran", T.ArrayType(T.IntegerType())), T.StructField("_run_id", T.StringType()),
            T.StructField("_meta", T.StringType())]


def decide(ctx: Context, req: Request, docs, schema, shipped, persisted: list):
    """Run the pipeline segment by segment (a corpus-wide threshold ends a segment): every input row
    once in the result, with its decision columns; returns (decisions, thresholds)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    pipe, thresholds, parts, current = req.pipe, {}, [], docs
    segments = pipe.segments()
    for k, (start, end) in enumerate(segments):
        sid, step = pipe.steps[start]
        stat = step.corpus_stat()
        if stat is not None:
            # one approximate quantile over every page reaching this step, across all partitions
            got = current.approxQuantile(stat.column, [stat.quantile], stat.relative_error)
            thresholds[sid] = got[0] if got else float("inf")
            ctx.log.info(kv(step=sid, key=stat.column, quantile=stat.quantile, threshold=thresholds[sid]))
        last = k == len(segments) - 1
        task = make_task(ctx.args.config, req.spec, schema, ctx.run.id, ctx.args.rejected_text, start, end,
                         dict(thresholds), shipped, carry_meta=not last)
        out = current.mapInArrow(task, schema).persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(out)
        if last:
            parts.append(out)
        else:
            parts.append(out.filter(~F.col("_kept")))
            current = out.filter("_kept")
    decided = parts[0]
    for part in parts[1:]:
        decided = decided.unionByName(part)
    return decided, thresholds


def print_funnel(pipe, rows, thresholds) -> tuple[int, int]:
    """The funnel table (documents left after each step); returns (documents in, kept)."""
    funnel = sorted((r for r in rows if r[4] is None), key=lambda r: r[3])
    n_in = funnel[0][5] if funnel else 0
    dropped = sum(r[7] for r in rows if r[4] is not None)
    print(f"\n=== filter funnel: {pipe.name} ({n_in} documents in) ===")
    print(f"{'step':34s} {'docs in':>8s} {'docs out':>9s} {'dropped':>8s} {'chars out %':>11s}")
    for r in funnel:
        pct = 100.0 * r[9] / r[8] if r[8] else 0.0
        print(f"{r[2]:34s} {r[5]:8d} {r[6]:9d} {r[7]:8d} {pct:10.1f}%")
    kept_n = n_in - dropped
    if pipe.route is not None:  # per branch: documents routed there and kept
        by_index = {r[3]: r for r in funnel}
        for b, (first, last, _) in pipe.route.branches.items():
            got = [by_index[k] for k in range(first, last) if k in by_index]
            if got:
                print(f"route {b}: {got[0][5]} documents, kept {got[0][5] - sum(r[7] for r in got)}")
    print(f"kept {kept_n} of {n_in} documents" + (f" ({100.0 * kept_n / n_in:.1f}%)" if n_in else ""))
    steps = dict(pipe.steps)
    for sid, t in thresholds.items():
        print(f"{sid}: {steps[sid].describe_threshold(t)}")
    return n_in, kept_n


class FilterJob(Job):
    name, prog = "filter", "jobs/filter.py"
    description = ("Apply a pipeline of heuristic filters and modifiers (conf/pipelines/*.yaml) to a Delta "
                   "table; write kept documents, rejected ones with their reason, and per-step statistics.")
    epilog = "Example: python jobs/filter.py --config conf/pipelines/dclm_baseline.yaml --lake ./lake"
    default_config = "conf/pipelines/dclm_baseline.yaml"
    config_help = "pipeline YAML"
    sets_help = ("override a step parameter, STEP.PARAM=VALUE, e.g. --set quality.model=lake/models/quality "
                 "(VALUE is YAML, null removes it; repeatable)")

    def add_arguments(self, p):
        p.add_argument("--input", default="documents", help="input table (default documents)")
        p.add_argument("--output", default="filtered", help="output table (default filtered)")
        p.add_argument("--rejected-text", action="store_true", help="also store the text of rejected documents")
        p.add_argument("--skip", action="append", default=[], metavar="STEP[,STEP]",
                       help="leave steps out by id, e.g. --skip quality,quality_threshold (repeatable)")
        p.add_argument("--partition-mb", type=int, default=16,
                       help="input bytes per task (default 16: many small tasks balance a CPU-bound Python stage)")
        p.add_argument("--batch-rows", type=int, default=512,
                       help="documents per Arrow batch between the JVM and Python (default 512)")

    def configure(self, args) -> Request:
        skips = [x.strip() for item in args.skip for x in item.split(",") if x.strip()]
        return read_pipeline(args.config, args.sets, skips)  # validates every step before Spark starts

    def run_config(self, ctx):
        return {"config": ctx.args.config, "pipeline": ctx.cfg.spec, "set": ctx.args.sets, "skip": ctx.cfg.skips,
                "thresholds": ctx.extra.get("thresholds", {})}

    def run(self, ctx: Context) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from pyspark.sql import functions as F

        from udfs import kernels  # logged: what this driver uses (executors need the project installed too)

        args, req, spark, lake = ctx.args, ctx.cfg, ctx.spark, ctx.lake
        # The pipeline is CPU-bound Python: small input splits keep every core busy to the end, and small
        # Arrow batches let the JVM write one batch while Python works on the next (Spark's defaults,
        # 128 MB splits and 10,000-row batches, gave 2 tasks of one batch each on the benchmark table).
        spark.conf.set("spark.sql.files.maxPartitionBytes", f"{args.partition_mb}m")
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.batch_rows))
        docs, version = ctx.read(args.input, "run jobs/ingest.py first")
        shipped, digests = prepare_steps(spark, req.pipe, req.spec)
        # a routed pipeline's branch files are part of what ran
        branches = (req.spec.get("route") or {}).get("_resolved")
        fp = runs.fingerprint(req.raw, args.sets, "--skip", req.skips, digests,
                              *([json.dumps(branches, sort_keys=True, default=str)] if branches else []))
        for table in (args.output, f"{args.output}_rejected", "run_stats"):
            ctx.output(table)
        ctx.start(runs.run_id("filter", req.pipe.name, fp, {args.input: version}),
                  steps=len(req.pipe.steps), segments=len(req.pipe.segments()), kernels=kernels.describe())
        extra = decision_fields()
        schema, enriched = output_schema(req.pipe, docs, extra), list(req.pipe.columns())
        persisted: list = []
        t0 = time.perf_counter()
        try:
            decided, thresholds = decide(ctx, req, docs, schema, shipped, persisted)
            kept = (decided.filter("_kept").drop(*[f.name for f in extra])
                    .withColumn("filter_run_id", F.lit(ctx.run.id)))
            lake.overwrite(kept, args.output)
            t1 = time.perf_counter()
            rej_cols = ["doc_id", F.col("_step").alias("step"), F.col("_reason").alias("reason"),
                        F.col("_run_id").alias("run_id"), F.col("_chars_in").alias("chars"),
                        *(["language"] if "language" in decided.columns and "language" not in enriched else []),
                        *enriched]
            rejected = decided.filter(~F.col("_kept")).select(*rej_cols, *(["text"] if args.rejected_text else []))
            # The decisions are cached now (the write above computed them): the rejected table is written
            # while the statistics are computed from the cache and written (a Delta commit is mostly
            # driver-side waiting, so the two overlap well even on few cores).
            with ThreadPoolExecutor(max_workers=2) as pool:
                wrote = pool.submit(lake.overwrite, rejected, f"{args.output}_rejected")
                rows = step_stats(spark, decided, req.pipe.step_ids, ctx.run.id, req.pipe.name)
                lake.write_run_stats(spark, rows, ctx.run.id)
                wrote.result()
            ctx.log.info(kv(phase="write", kept_seconds=round(t1 - t0, 1),
                            rejected_and_stats_seconds=round(time.perf_counter() - t1, 1)))
        finally:
            for df in persisted:
                df.unpersist()
        n_in, kept_n = print_funnel(req.pipe, rows, thresholds)
        ctx.extra["thresholds"] = thresholds
        ctx.run.summary.update({f"threshold_{k}": v for k, v in thresholds.items()})
        ctx.done(documents_in=n_in, kept=kept_n, rejected=n_in - kept_n)


job = FilterJob()
main, parse_args = job.main, job.parse_args

if __name__ == "__main__":
    sys.exit(main())
