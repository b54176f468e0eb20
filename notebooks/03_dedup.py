# Databricks notebook source
# MAGIC %md
# MAGIC # Lakesift 03 - Deduplicate: exact, URL, MinHash-LSH, paragraphs
# MAGIC
# MAGIC Runs `jobs/dedup/main.py` with a config from `conf/dedup/` on the filtered table: exact and URL dedup,
# MAGIC MinHash-LSH with connected components, and paragraph-level dedup. Survivors go to `LAKE/<output>`,
# MAGIC cluster membership to `LAKE/dup_clusters`.

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

if "spark" not in globals():  # plain Python: the %run cell above is a comment, so run the setup here
    globals().update(__import__("runpy").run_path(__file__.rsplit("/", 1)[0] + "/_setup.py"))

# COMMAND ----------

p = params(globals(), lake="./lake", config="conf/dedup/default.yaml", input="filtered", output="deduped")

# COMMAND ----------

import jobs.dedup  # noqa: E402

run_job(jobs.dedup, "--config", p["config"], "--lake", p["lake"], "--input", p["input"], "--output", p["output"])

# COMMAND ----------

# MAGIC %md The largest duplicate clusters of the newest run, with one URL of each.

# COMMAND ----------

from pyspark.sql import functions as F  # noqa: E402

from jobs.common.lake import Lake  # noqa: E402

clusters = spark.read.format("delta").load(Lake(p["lake"]).path("dup_clusters"))
newest = clusters.agg(F.max("run_id")).first()[0]
docs = spark.read.format("delta").load(Lake(p["lake"]).path(p["input"])).select("doc_id", "url")
show(globals(), clusters.filter(F.col("run_id") == newest).join(docs, "doc_id")
     .groupBy("method", "cluster_id").agg(F.count("*").alias("size"), F.first("url").alias("example_url"))
     .orderBy(F.desc("size")))
