"""A self-contained HTML report of what a pipeline run did to the data, to look at before training.

    python -m jobs.report --lake LAKE [--run FILTER_RUN_ID] --out report.html
    spark-submit jobs/report.py --lake s3://bucket/lake --out s3://bucket/reports/latest.html

It reads only lake tables (``_runs``, ``run_stats``, the filter's input / output / rejected tables,
``dup_clusters``, ``datasets``); every figure is an aggregate computed in Spark, so it works on a lake
of any size. The page (``lakesift.report``) has inline SVG plots and no external resources:

* the filter funnel (documents and tokens left after each step, dedup steps appended);
* the documents each step dropped, by reason;
* document length and language distributions before / after filtering (and after dedup);
* the quality-score histogram, kept vs dropped, with the threshold;
* the duplicate-cluster size distribution per dedup method;
* tokens per source in the final mix;
* a few sampled kept documents and rejected ones per reason (chosen by a hash of ``doc_id``, so the
  same run always shows the same documents).

Runs: ``--run`` names the filter run (default: the newest successful one); the dedup run is the newest
one that read that filter run's output table, the dataset the newest tokenize run after it (override
with ``--dedup-run`` / ``--dataset-run``; ``none`` leaves a section out).

``--doremi DIR`` (repeatable) adds a section per DoReMi folder (a proxy run or ``make doremi`` output:
the domain weights per step, the final mixture, validation perplexities; ``lakesift.doremi_report``).
Those folders are read and checked before Spark starts.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from jobs.common import runs
from jobs.common.job import Context, Job, UsageError
from lakesift.log import get_logger, kv

log = get_logger("report")

LENGTH_BINS_PER_DECADE = 4
SCORE_BINS = 20
DEFAULT_CHARS_PER_TOKEN = 4.0


class ReportError(UsageError):
    """The lake does not hold what the report needs (exit 2)."""


def _runs(spark, lake: str):
    """Newest row per run id of ``LAKE/_runs`` (a re-run of the same run id appends a row)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from jobs.common.lake import Lake, table_exists

    path = Lake(lake).path("_runs")
    if not table_exists(spark, path):
        raise ReportError(f"no run log at {path}: run the pipeline jobs on this lake first")
    w = Window.partitionBy("run_id").orderBy(F.col("finished_at").desc())
    runs = (spark.read.format("delta").load(path).filter("status = 'succeeded'")
            .withColumn("_n", F.row_number().over(w)).filter("_n = 1").drop("_n"))
    return [r.asDict() for r in runs.orderBy("finished_at").collect()]


def _tables(run: dict, kind: str, default: list[str]) -> list[str]:
    """Names of a run's recorded inputs or outputs (``kind``), or ``default`` for rows written before
    runs recorded them."""
    got = [t["name"] for t in (run.get(kind) or [])]
    return got or default


def _filter_tables(run: dict) -> tuple[str, str]:
    """(input table, output table) of a filter run."""
    return _tables(run, "inputs", ["documents"])[0], _tables(run, "outputs", ["filtered"])[0]


def pick_runs(runs: list[dict], run: str | None, dedup_run: str | None, dataset_run: str | None):
    """(filter run, dedup run or None, tokenize run or None) from the newest-last run list."""
    filters = [r for r in runs if r["job"] == "filter"]
    if run:
        match = [r for r in filters if r["run_id"] == run]
        if not match:
            known = ", ".join(r["run_id"] for r in filters[-5:]) or "none"
            raise ReportError(f"no successful filter run {run!r} in _runs (newest: {known})")
        f = match[-1]
    elif filters:
        f = filters[-1]
    else:
        raise ReportError("no successful filter run in _runs: run jobs/filter.py first")
    f_output = _filter_tables(f)[1]

    def choose(job, wanted, accept):
        if wanted == "none":
            return None
        cands = [r for r in runs if r["job"] == job]
        if wanted:
            match = [r for r in cands if r["run_id"] == wanted]
            if not match:
                raise ReportError(f"no successful {job} run {wanted!r} in _runs")
            return match[-1]
        cands = [r for r in cands if r["finished_at"] >= f["started_at"] and accept(r)]
        return cands[-1] if cands else None

    def reads_filter_output(r):
        return _tables(r, "inputs", ["filtered"])[0] == f_output

    d = choose("dedup", dedup_run, reads_filter_output)
    t = choose("tokenize", dataset_run, lambda r: True)
    return f, d, t


def _load(spark, lake: str, table: str, version: int | None = None):
    from jobs.common.lake import Lake, table_exists

    path = Lake(lake).path(table)
    if not table_exists(spark, path):
        return None
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", int(version))
    return reader.load(path)


def _hist_log_length(df):
    """{bin index: count} of floor(log10(chars) * bins per decade); empty texts in bin -1."""
    from pyspark.sql import functions as F

    b = F.when(F.length("text") > 0, F.floor(F.log10(F.length("text")) * LENGTH_BINS_PER_DECADE)).otherwise(-1)
    return {int(r.b): int(r.n) for r in df.select(b.alias("b")).groupBy("b").agg(F.count("*").alias("n")).collect()}


def _languages(df, top: int = 10):
    from pyspark.sql import functions as F

    if df is None or "language" not in df.columns:
        return {}
    rows = df.groupBy("language").agg(F.count("*").alias("n")).orderBy(F.desc("n")).limit(top).collect()
    return {str(r.language): int(r.n) for r in rows}


def _quality(fconfig: dict, kept_df, rej_df):
    """Score histogram of pages that reached the quality threshold step, kept vs dropped there."""
    from pyspark.sql import functions as F

    steps = (fconfig.get("pipeline") or {}).get("steps") or []
    qsteps = [s for s in steps if s.get("func") == "quality_filter"]
    if not qsteps:
        return None
    q = qsteps[-1]
    sid = q.get("id") or "quality_filter"
    key = q.get("key", "fasttext_hq_prob")
    threshold = (fconfig.get("thresholds") or {}).get(sid, q.get("threshold"))
    if kept_df is None or key not in kept_df.columns:
        return None
    frames = [kept_df.select(F.col(key).alias("s"), F.lit("kept").alias("g"))]
    if rej_df is not None and key in rej_df.columns:
        frames.append(rej_df.filter(F.col("step") == sid).select(F.col(key).alias("s"), F.lit("dropped").alias("g")))
    scores = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
    scores = scores.filter(F.col("s").isNotNull())
    b = F.least(F.floor(F.col("s") * SCORE_BINS), F.lit(SCORE_BINS - 1))
    hist = {"kept": [0] * SCORE_BINS, "dropped": [0] * SCORE_BINS}
    for r in scores.select(b.alias("b"), "g").groupBy("b", "g").agg(F.count("*").alias("n")).collect():
        if r.b is not None and 0 <= r.b < SCORE_BINS:
            hist[r.g][int(r.b)] += int(r.n)
    return {"step": sid, "key": key, "threshold": threshold, "lower_better": bool(q.get("lower_better")),
            "bins": SCORE_BINS, "hist": hist}


def _samples(df, n: int, chars: int, text_df=None):
    """``n`` documents chosen by a hash of doc_id (stable across runs), text cut to ``chars``."""
    from pyspark.sql import functions as F

    picked = df.orderBy(F.xxhash64("doc_id"), "doc_id").limit(n)
    if "text" not in picked.columns and text_df is not None:
        picked = picked.join(text_df.select("doc_id", "url", "text"), "doc_id", "left")
    cols = [c for c in ("doc_id", "url", "text") if c in picked.columns]
    out = []
    for r in picked.select(*cols).collect():
        text = r["text"] if "text" in cols else None
        out.append({"doc_id": r["doc_id"], "url": r["url"] if "url" in cols else None,
                    "chars": len(text) if text is not None else None,
                    "text": (text or "")[:chars] if text is not None else None})
    return out


def gather(spark, lake: str, run: str | None = None, dedup_run: str | None = None,
           dataset_run: str | None = None, samples: int = 2, reasons: int = 8, sample_chars: int = 700) -> dict:
    """Everything the report shows, as plain JSON-able data."""
    from pyspark.sql import functions as F

    from jobs.common.lake import lake_root

    all_runs = _runs(spark, lake)
    f, d, t = pick_runs(all_runs, run, dedup_run, dataset_run)
    fconfig = json.loads(f["config_json"])
    f_in, f_out = _filter_tables(f)
    data: dict = {"lake": lake_root(lake), "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                  "runs": {}, "tables": {"input": f_in, "filtered": f_out}}
    for kind, r in (("filter", f), ("dedup", d), ("tokenize", t)):
        if r is not None:
            data["runs"][kind] = {"run_id": r["run_id"], "started_at": str(r["started_at"]),
                                  "finished_at": str(r["finished_at"]), "summary": json.loads(r["summary_json"])}

    stats = _load(spark, lake, "run_stats")
    if stats is None:
        raise ReportError("no run_stats table in the lake")
    run_ids = [f["run_id"]] + ([d["run_id"]] if d else [])
    srows = [r.asDict() for r in stats.filter(F.col("run_id").isin(run_ids)).collect()]
    funnel = []
    for rid, stage in ((f["run_id"], "filter"), *(((d["run_id"], "dedup"),) if d else ())):
        for r in sorted((r for r in srows if r["run_id"] == rid and r["reason"] is None), key=lambda r: r["step_index"]):
            funnel.append({"stage": stage, "step": r["step"], "docs_in": r["docs_in"], "docs_out": r["docs_out"],
                           "chars_in": r["chars_in"], "chars_out": r["chars_out"]})
    data["funnel"] = funnel
    # filter: one row per step and reason; dedup: a step's removed documents are its "duplicate" reason
    dropped = [{"stage": "filter", "step": r["step"], "reason": r["reason"], "docs": r["docs_dropped"] or 0}
               for r in srows if r["run_id"] == f["run_id"] and r["reason"] is not None]
    dropped += [{"stage": "dedup", "step": x["step"], "reason": "duplicate", "docs": x["docs_in"] - x["docs_out"]}
                for x in funnel if x["stage"] == "dedup" and x["docs_in"] > x["docs_out"]]
    data["reasons"] = sorted(dropped, key=lambda x: (-x["docs"], x["step"], x["reason"]))

    docs = _load(spark, lake, f_in)
    kept = _load(spark, lake, f_out)
    rejected = _load(spark, lake, f"{f_out}_rejected")
    if kept is not None and "filter_run_id" in kept.columns:
        current = kept.select("filter_run_id").limit(1).collect()
        if current and current[0][0] != f["run_id"]:
            log.warning(kv(note="the filtered table now holds another run's output", table=f_out,
                           holds=current[0][0], report_run=f["run_id"]))
            data["stale_tables"] = True
    deduped = None
    if d is not None:
        deduped = _load(spark, lake, _tables(d, "outputs", ["deduped"])[0])
    dists = {}
    for name, df in (("input", docs), ("filtered", kept), ("deduped", deduped)):
        if df is not None:
            dists[name] = {"length": _hist_log_length(df), "languages": _languages(df)}
    data["distributions"] = {"bins_per_decade": LENGTH_BINS_PER_DECADE, **dists}
    data["quality"] = _quality(fconfig, kept, rejected)

    data["clusters"] = None
    if d is not None:
        clusters = _load(spark, lake, "dup_clusters")
        if clusters is not None:
            c = clusters.filter((F.col("run_id") == d["run_id"]) & (F.col("method") != "paragraph"))
            sizes = c.groupBy("method", "cluster_id").agg(F.count("*").alias("size"))
            data["clusters"] = [{"method": r.method, "size": int(r.size), "clusters": int(r.n)} for r in
                                sizes.groupBy("method", "size").agg(F.count("*").alias("n")).orderBy("method", "size").collect()]

    data["mix"] = None
    chars_per_token = None
    if t is not None:
        ds = _load(spark, lake, "datasets")
        row = ds.filter(F.col("run_id") == t["run_id"]).orderBy(F.desc("created_at")).first() if ds is not None else None
        if row is not None:
            sources = json.loads(row.sources_json)
            data["mix"] = {"name": row.name, "out": row.out, "tokenizer": row.tokenizer, "seq_len": row.seq_len,
                           "sequences": row.sequences, "tokens": row.tokens, "sources": sources}
            # characters per token measured on the tokenized tables, at the versions that were read
            chars = tokens = 0
            for s in sources.values():
                src = _load(spark, lake, s["table"], s.get("table_version"))
                if src is not None and s.get("tokens"):
                    chars += int(src.select(F.sum(F.length("text"))).first()[0] or 0)
                    tokens += int(s["tokens"])
            if chars and tokens:
                chars_per_token = chars / tokens
    data["chars_per_token"] = chars_per_token or DEFAULT_CHARS_PER_TOKEN
    data["chars_per_token_measured"] = chars_per_token is not None

    sample = {"kept": [], "rejected": []}
    if kept is not None:
        sample["kept"] = _samples(kept, max(samples, 3), sample_chars)
    if rejected is not None:
        for r in [x for x in data["reasons"] if x["stage"] == "filter"][:reasons]:
            sub = rejected.filter((F.col("step") == r["step"]) & (F.col("reason") == r["reason"]))
            sample["rejected"].append({"step": r["step"], "reason": r["reason"],
                                       "docs": _samples(sub, samples, sample_chars, docs)})
    data["samples"] = sample
    return data


class ReportJob(Job):
    name, prog = "report", "python -m jobs.report"
    description = "Write a self-contained HTML report (plots, funnel, samples) of a pipeline run in a lake."
    epilog = "Example: python -m jobs.report --lake ./lake --out lake/report.html"
    has_config = False

    def add_arguments(self, p):
        p.add_argument("--run", help="filter run id (default: the newest successful filter run)")
        p.add_argument("--dedup-run", help="dedup run id, or 'none' (default: newest one that read the filter output)")
        p.add_argument("--dataset-run",
                       help="tokenize run id, or 'none' (default: the newest one after the filter run)")
        p.add_argument("--out", default="report.html", help="output file: local path or cloud URI (default report.html)")
        p.add_argument("--samples", type=int, default=2, help="sampled documents per drop reason (default 2)")
        p.add_argument("--reasons", type=int, default=8, help="drop reasons to sample documents from (default 8)")
        p.add_argument("--sample-chars", type=int, default=700, help="characters shown per sampled document")
        p.add_argument("--doremi", action="append", default=[], metavar="DIR",
                       help="DoReMi proxy run or `make doremi` output folder: adds its domain-weight section "
                            "(repeatable)")

    def configure(self, args):
        """The ``--doremi`` folders' data (a list, empty without the flag), loaded here so that a missing or
        malformed file fails before Spark starts."""
        from lakesift.doremi_report import load, thin

        return [thin(load(folder)) for folder in args.doremi]

    def run_config(self, ctx):
        a = ctx.args
        doremi = {"doremi": a.doremi} if a.doremi else {}  # only when given: a plain report keeps its run id
        return {"run": a.run, "dedup_run": a.dedup_run, "dataset_run": a.dataset_run, "out": a.out, **doremi}

    def run(self, ctx: Context) -> None:
        from lakesift.io import write_text
        from lakesift.report import render

        args = ctx.args
        ctx.input("lake", ctx.lake.root)
        for folder in args.doremi:
            ctx.input("doremi", folder)
        ctx.output("report", args.out)
        ctx.start(runs.run_id("report", "report", runs.fingerprint(self.run_config(ctx))), run=args.run or "newest")
        data = gather(ctx.spark, args.lake, args.run, args.dedup_run, args.dataset_run,
                      args.samples, args.reasons, args.sample_chars)
        if ctx.cfg:
            data["doremi"] = ctx.cfg
        where = write_text(args.out, render(data))
        picked = data["runs"]
        print(f"report: {where}")
        ctx.done(filter_run=picked["filter"]["run_id"], dedup_run=picked.get("dedup", {}).get("run_id", "-"),
                 dataset_run=picked.get("tokenize", {}).get("run_id", "-"), funnel_steps=len(data["funnel"]),
                 out=where)


job = ReportJob()
main, parse_args = job.main, job.parse_args

if __name__ == "__main__":
    sys.exit(main())
