# Databricks notebook source
# MAGIC %md
# MAGIC # Lakesift 02 - Filter: heuristics and the quality classifier
# MAGIC
# MAGIC Applies a YAML pipeline (`conf/pipelines/*.yaml`: DCLM-Baseline, RefinedWeb, Gopher, C4, FineWeb) to a
# MAGIC Delta table with `jobs/filter.py`. Kept documents go to `LAKE/<output>`, dropped ones with their step and
# MAGIC reason to `LAKE/<output>_rejected`, and the funnel to `LAKE/run_stats`.
# MAGIC
# MAGIC The second half tries the same pipeline on a few documents in plain Python (`udfs.pipeline`), which is
# MAGIC how to see why one page was dropped.

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

if "spark" not in globals():  # plain Python: the %run cell above is a comment, so run the setup here
    globals().update(__import__("runpy").run_path(__file__.rsplit("/", 1)[0] + "/_setup.py"))

# COMMAND ----------

p = params(globals(), lake="./lake", config="conf/pipelines/dclm_baseline.yaml", input="documents",
           output="filtered", set="", skip="")

# COMMAND ----------

import jobs.filter  # noqa: E402

run_job(jobs.filter, "--config", p["config"], "--lake", p["lake"], "--input", p["input"], "--output", p["output"],
        *flag_list("--set", p["set"]), *(["--skip", ",".join(split(p["skip"]))] if p["skip"] else []))

# COMMAND ----------

# MAGIC %md The funnel of the newest filter run, and the most frequent drop reasons.

# COMMAND ----------

from pyspark.sql import functions as F  # noqa: E402

from jobs.common.lake import Lake  # noqa: E402

run_id = (spark.read.format("delta").load(Lake(p["lake"]).path(p["output"]))
          .select("filter_run_id").first() or [None])[0]
stats = spark.read.format("delta").load(Lake(p["lake"]).path("run_stats")).filter(F.col("run_id") == run_id)
show(globals(), stats.filter("reason IS NULL").select("step", "docs_in", "docs_out", "chars_in", "chars_out")
     .orderBy("step_index"), 50)
show(globals(), stats.filter("reason IS NOT NULL").select("step", "reason", "docs_dropped")
     .orderBy(F.desc("docs_dropped")))

# COMMAND ----------

# MAGIC %md Why was this page dropped? The same pipeline, one document at a time, in Python.

# COMMAND ----------

from udfs.pipeline import load  # noqa: E402

pipe = load(p["config"], split(p["set"]), split(p["skip"]))
for _, step in pipe.steps:
    step.prepare()  # fetches model files (the quality classifier) as the job's driver does
rejected = spark.read.format("delta").load(Lake(p["lake"]).path(f"{p['output']}_rejected"))
ids = [r.doc_id for r in rejected.filter(F.col("run_id") == run_id).orderBy(F.xxhash64("doc_id")).limit(3).collect()]
docs = spark.read.format("delta").load(Lake(p["lake"]).path(p["input"]))
for row in docs.filter(F.col("doc_id").isin(ids)).select("doc_id", "url", "text", "language", "language_score").collect():
    out = pipe.run(row.text, row.url, {"language": row.language, "language_score": row.language_score})
    print(f"{row.url}\n  kept={out.kept} step={out.step} reason={out.reason}")
