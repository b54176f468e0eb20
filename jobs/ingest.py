"""Ingest WARC / WET files into the Delta table ``documents`` (and ``ingest_log``).

    spark-submit jobs/ingest.py --input PATH_OR_GLOB_OR_LISTING... --lake LAKE \\
        [--source NAME] [--extractor resiliparse|trafilatura] [--config conf/ingest.yaml]

(``python jobs/ingest.py ...`` does the same with an embedded local Spark.)

How it runs: the driver lists the input files; Spark runs one task per file (``spark.range(n, n)``
gives exactly one row per partition, so a 90,000-line Common Crawl listing becomes 90,000 tasks, not
one). Each task streams its file through FastWARC inside ``mapInArrow``, decodes and extracts each
HTML page and identifies its language, all in the Python worker: raw HTML never crosses into the
JVM, only extracted text does, in Arrow batches of ``batch_size`` documents. The task also emits one
report row for its file; both kinds of rows are written from one cached computation.

Incremental and idempotent: files whose latest ``ingest_log`` status is terminal are skipped, so a
re-run on the same inputs writes nothing, and new files are processed alone. Before writing, rows
of the pending files left in ``documents`` by a run killed between its two commits are deleted, so a
killed run started again ends with exactly the rows of a clean run.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from jobs.common import runs
from jobs.common.job import Context, Job, parse_sets
from jobs.common.lake import schema as table_schema
from jobs.common.lake import table_exists
from lakesift.config import load_model
from lakesift.io import expand_inputs
from lakesift.log import kv
from udfs.ingest import IngestConfig

DOCUMENTS = "documents"
INGEST_LOG = "ingest_log"
TERMINAL = ("done", "partial", "failed")
DELETE_CHUNK = 1000  # paths per DELETE predicate (keeps Delta's data skipping effective)


def _schemas():
    """The two catalogued tables, and the one task output that carries both kinds of rows (``_kind``)."""
    from pyspark.sql import types as T

    docs, files = table_schema(DOCUMENTS), table_schema(INGEST_LOG)
    names = {f.name for f in docs.fields}
    fields = [T.StructField("_kind", T.StringType(), False)]
    fields += [T.StructField(f.name, f.dataType, True) for f in docs.fields]
    fields += [T.StructField(f.name, f.dataType, True) for f in files.fields if f.name not in names]
    return docs, files, T.StructType(fields)


def make_task(files: list[str], cfg_json: str, source: str, run_id: str, schema):
    """The ``mapInArrow`` function: rows of ``spark.range`` are indexes into ``files``.

    Batches are built as Arrow directly: no pandas frames, no NaN-for-null conversions.
    """
    from pyspark.sql.pandas.types import to_arrow_schema

    arrow_schema = to_arrow_schema(schema, timezone="UTC")
    columns = schema.fieldNames()

    def task(batches):
        import pyarrow as pa

        from udfs.ingest import DocumentBuilder, FileReport, IngestConfig, iter_documents

        cfg = IngestConfig.model_validate_json(cfg_json)
        builder = DocumentBuilder(cfg)

        def batch(rows: list[dict]) -> pa.RecordBatch:
            data = {c: [r.get(c) for r in rows] for c in columns}
            for c in ("skipped", "languages"):  # Arrow maps take lists of (key, value) pairs
                data[c] = [None if m is None else list(m.items()) for m in data[c]]
            return pa.RecordBatch.from_pydict(data, schema=arrow_schema)

        for ids in batches:
            for index in ids.column("id").to_pylist():
                uri = files[int(index)]
                report = FileReport(uri)
                rows: list[dict] = []
                languages: dict[str, int] = {}
                for doc in iter_documents(uri, cfg, report, source, builder):
                    languages[doc["language"]] = languages.get(doc["language"], 0) + 1
                    doc["_kind"] = "doc"
                    doc["ingest_run_id"] = run_id
                    rows.append(doc)
                    if len(rows) >= cfg.batch_size:
                        yield batch(rows)
                        rows = []
                if rows:
                    yield batch(rows)
                yield batch([{
                    "_kind": "file", "run_id": run_id, "warc_path": uri, "source": source,
                    "status": report.status, "records_read": report.records_read,
                    "documents_written": report.documents, "skipped": dict(report.skipped),
                    "languages": languages, "error": report.error, "extractor": cfg.extractor,
                    "started_at": report.started_at, "finished_at": report.finished_at,
                    "seconds": report.seconds,
                }])

    return task


def plan(spark, log_path: str, files: list[str], retry_failed: bool) -> tuple[list[str], dict[str, str]]:
    """Split ``files`` into pending ones and those already finished (path -> latest status)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not table_exists(spark, log_path):
        return files, {}
    latest = (spark.read.format("delta").load(log_path)
              .withColumn("_rn", F.row_number().over(
                  Window.partitionBy("warc_path").orderBy(F.col("finished_at").desc_nulls_last(),
                                                          F.col("run_id").desc())))
              .filter("_rn = 1")
              .select("warc_path", "status"))
    wanted = ["done"] if retry_failed else list(TERMINAL)
    # Only the statuses of the requested files come back to the driver: one short row per file.
    requested = spark.createDataFrame([(f,) for f in files], "warc_path string")
    finished = {r.warc_path: r.status for r in
                latest.join(requested, "warc_path").filter(F.col("status").isin(wanted)).collect()}
    return [f for f in files if f not in finished], finished


def delete_stale(spark, docs_path: str, pending: list[str]) -> None:
    """Remove rows of ``pending`` files left by a run that died between its two commits."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if not table_exists(spark, docs_path):
        return
    table = DeltaTable.forPath(spark, docs_path)
    for i in range(0, len(pending), DELETE_CHUNK):
        table.delete(F.col("warc_path").isin(pending[i:i + DELETE_CHUNK]))


def summarize(reports) -> dict:
    """Totals of this run from its per-file report rows, in one Spark aggregation."""
    from pyspark.sql import functions as F

    one = F.lit(1).cast("long")
    long_form = (
        reports.select(F.lit("status").alias("kind"), F.col("status").alias("key"), one.alias("n"))
        .unionByName(reports.select(F.lit("records").alias("kind"), F.lit("").alias("key"),
                                    F.col("records_read").alias("n")))
        .unionByName(reports.select(F.lit("documents").alias("kind"), F.lit("").alias("key"),
                                    F.col("documents_written").alias("n")))
        .unionByName(reports.select(F.lit("skipped").alias("kind"), F.explode("skipped").alias("key", "n")))
        .unionByName(reports.select(F.lit("languages").alias("kind"),
                                    F.explode("languages").alias("key", "n")))
    )
    totals: dict[str, dict[str, int]] = {}
    for r in long_form.groupBy("kind", "key").agg(F.sum("n").alias("n")).collect():
        totals.setdefault(r.kind, {})[r.key] = int(r.n)
    status = totals.get("status", {})
    by_count = lambda d: dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))  # noqa: E731
    problems = [(r.warc_path, r.status, r.error) for r in
                reports.filter(F.col("status") != "done").orderBy("warc_path").limit(20).collect()]
    return {
        "files": sum(status.values()), "files_done": status.get("done", 0),
        "files_partial": status.get("partial", 0), "files_failed": status.get("failed", 0),
        "records": totals.get("records", {}).get("", 0), "documents": totals.get("documents", {}).get("", 0),
        "skipped": by_count(totals.get("skipped", {})),
        "languages_top10": dict(list(by_count(totals.get("languages", {})).items())[:10]),
        "problem_files": problems,
    }


def print_summary(summary: dict, out=sys.stdout) -> None:
    w = out.write
    w("\n=== ingest summary ===\n")
    w(f"files      {summary['files']} (done {summary['files_done']}, partial {summary['files_partial']}, "
      f"failed {summary['files_failed']}, already finished earlier {summary.get('files_skipped', 0)})\n")
    w(f"records    {summary['records']}\n")
    w(f"documents  {summary['documents']}\n")
    if summary["skipped"]:
        w("skipped    " + ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()) + "\n")
    if summary["languages_top10"]:
        w("languages  " + ", ".join(f"{k} {v}" for k, v in summary["languages_top10"].items()) + "\n")
    for path, status, error in summary["problem_files"]:
        w(f"{status:8s}   {path}: {error}\n")


EMPTY_SUMMARY = {"files": 0, "files_done": 0, "files_partial": 0, "files_failed": 0, "records": 0,
                 "documents": 0, "skipped": {}, "languages_top10": {}, "problem_files": []}


@dataclass
class Request:
    cfg: IngestConfig
    files: list[str]


def write_pending(ctx: Context, pending: list[str], docs_path: str, log_path: str) -> dict:
    """Extract the pending files (one task each) and append to ``documents`` and ``ingest_log``."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark = ctx.spark
    delete_stale(spark, docs_path, pending)
    docs_schema, files_schema, combined = _schemas()
    task = make_task(pending, ctx.cfg.cfg.model_dump_json(), ctx.args.source, ctx.run.id, combined)
    # Cached so that the file reports do not re-run the extraction; spills to disk when large.
    out = (spark.range(0, len(pending), 1, numPartitions=len(pending))
           .mapInArrow(task, combined)
           .persist(StorageLevel.MEMORY_AND_DISK))
    try:
        t0 = time.perf_counter()
        (out.filter(F.col("_kind") == "doc").select(*docs_schema.fieldNames())
         .write.format("delta").mode("append").save(docs_path))
        t1 = time.perf_counter()
        reports = out.filter(F.col("_kind") == "file").select(*files_schema.fieldNames()).cache()
        reports.write.format("delta").mode("append").save(log_path)
        ctx.log.info(kv(phase="write", documents_seconds=round(t1 - t0, 1),
                        ingest_log_seconds=round(time.perf_counter() - t1, 1)))
        summary = summarize(reports)
        reports.unpersist()
    finally:
        out.unpersist()
    return summary


class IngestJob(Job):
    name, prog = "ingest", "jobs/ingest.py"
    description = ("Read WARC/WET files into the Delta table `documents`: extract main text from HTML "
                   "(resiliparse or trafilatura), identify language, and log every input file in `ingest_log`.")
    epilog = "Example: python jobs/ingest.py --input sample/warc --lake ./lake --source sample"
    # relative: found in the working directory, the checkout or the --py-files code archive (lakesift.config)
    config_model, default_config, config_help = IngestConfig, "conf/ingest.yaml", "ingest config YAML"
    sets_help = "override a config key, e.g. --set limits.max_payload_bytes=1000000 (VALUE is YAML; repeatable)"

    def add_arguments(self, p):
        p.add_argument("--input", nargs="+", required=True, metavar="PATH",
                       help="files, folders (searched recursively for *.warc[.gz|.lz4], *.wet[.gz]), globs, "
                       "or Common Crawl *.paths[.gz] listings; local paths or s3:// gs:// abfss:// dbfs:/ https:// URIs")
        p.add_argument("--source", default="web", help="name stored in the `source` column (default web)")
        p.add_argument("--extractor", choices=["resiliparse", "trafilatura"],
                       help="HTML main-text extractor (default from the config: resiliparse)")
        p.add_argument("--listing-prefix", help="prefix for relative lines of *.paths listings "
                       "(default from the config: s3://commoncrawl/; e.g. https://data.commoncrawl.org/)")
        p.add_argument("--retry-failed", action="store_true",
                       help="process again files whose last status is failed or partial")
        p.add_argument("--dry-run", action="store_true", help="list what would be processed, write nothing")

    def configure(self, args) -> Request:
        # everything that can be wrong with the request fails here, before Spark starts
        cfg = load_model(IngestConfig, args.config, {"extractor": args.extractor,
                                                      "listing_prefix": args.listing_prefix},
                         sets=parse_sets(args.sets))
        return Request(cfg, expand_inputs(args.input, cfg.listing_prefix))

    def run_config(self, ctx):
        return ctx.cfg.cfg.model_dump(mode="json")

    def run(self, ctx: Context) -> None:
        args, cfg, files = ctx.args, ctx.cfg.cfg, ctx.cfg.files
        for f in args.input:
            ctx.input(f, f)
        docs_path, log_path = ctx.output(DOCUMENTS), ctx.output(INGEST_LOG)
        pending, finished = plan(ctx.spark, log_path, files, args.retry_failed)
        ctx.start(runs.run_id("ingest", "ingest", runs.fingerprint(cfg)), files=len(files),
                  pending=len(pending), already_finished=len(finished), extractor=cfg.extractor)
        if args.dry_run:
            ctx.record = False
            for f in pending:
                print(f)
            return
        summary = write_pending(ctx, pending, docs_path, log_path) if pending else dict(EMPTY_SUMMARY)
        summary["files_skipped"] = len(finished)
        ctx.run.summary.update(summary)
        print_summary(summary)
        ctx.done(files=summary["files"], records=summary["records"], documents=summary["documents"],
                 failed=summary["files_failed"], partial=summary["files_partial"])


job = IngestJob()
main, parse_args = job.main, job.parse_args

if __name__ == "__main__":
    sys.exit(main())
