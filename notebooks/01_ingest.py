# Databricks notebook source
# MAGIC %md
# MAGIC # Lakesift 01 - Ingest WARC / WET files into the `documents` table
# MAGIC
# MAGIC Reads WARC / WET / ARC files (local paths, `s3://`, `abfss://`, `gs://`, `dbfs:/` URIs, folders, globs or
# MAGIC Common Crawl `*.paths.gz` listings), extracts text (resiliparse by default), identifies the language and
# MAGIC appends to the Delta table `LAKE/documents`; one row per file in `LAKE/ingest_log` with its status.
# MAGIC Files already ingested are skipped, so the notebook can be re-run after a failure.

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

if "spark" not in globals():  # plain Python: the %run cell above is a comment, so run the setup here
    globals().update(__import__("runpy").run_path(__file__.rsplit("/", 1)[0] + "/_setup.py"))

# COMMAND ----------

p = params(globals(), lake="./lake", input="sample/warc", source="sample", extractor="resiliparse")

# COMMAND ----------

import jobs.ingest  # noqa: E402

run_job(jobs.ingest, "--lake", p["lake"], "--source", p["source"], "--extractor", p["extractor"],
        "--input", *split(p["input"]))

# COMMAND ----------

# MAGIC %md What was read, per file, and the documents per language.

# COMMAND ----------

from pyspark.sql import functions as F  # noqa: E402

from jobs.common.lake import Lake  # noqa: E402

log_df = spark.read.format("delta").load(Lake(p["lake"]).path("ingest_log"))
show(globals(), log_df.select("warc_path", "status", "records_read", "documents_written", "error")
     .orderBy(F.desc("finished_at")))
docs = spark.read.format("delta").load(Lake(p["lake"]).path("documents"))
show(globals(), docs.groupBy("source", "language").count().orderBy(F.desc("count")))
