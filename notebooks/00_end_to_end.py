# Databricks notebook source
# MAGIC %md
# MAGIC # Lakesift 00 - End to end: WARC to MDS shards, with a report
# MAGIC
# MAGIC The whole data pipeline on one lake, each stage the same job code as `spark-submit jobs/*.py` and the
# MAGIC scheduled workflow (`databricks.yml`): ingest, (optionally) train a quality classifier, filter, dedup,
# MAGIC decontaminate + tokenize, report. Defaults run the bundled sample on a laptop; point `lake` and
# MAGIC `input` at cloud URIs on a cluster.
# MAGIC
# MAGIC With `quality_positive` set, a fastText classifier is trained on those texts (positives) against the
# MAGIC ingested documents (negatives) and used by the pipeline's quality step, as `make demo` does; leave it
# MAGIC empty to use the model named in the pipeline file (DCLM's, from the Hugging Face hub).

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

if "spark" not in globals():  # plain Python: the %run cell above is a comment, so run the setup here
    globals().update(__import__("runpy").run_path(__file__.rsplit("/", 1)[0] + "/_setup.py"))

# COMMAND ----------

p = params(globals(), lake="./lake", input="sample/warc", source="sample",
           pipeline="conf/pipelines/dclm_baseline.yaml", quality_positive="sample/text/hq",
           quality_config="conf/quality/demo.yaml", skip="", dedup="conf/dedup/default.yaml",
           tokenize="conf/tokenize/demo.yaml", tokenizer="", eval_dir="", out="", report="")
lake = p["lake"].rstrip("/")
out = p["out"] or f"{lake}/datasets/{os.path.splitext(os.path.basename(p['tokenize']))[0]}"
report = p["report"] or f"{lake}/report.html"

# COMMAND ----------

import jobs.dedup  # noqa: E402
import jobs.filter  # noqa: E402
import jobs.ingest  # noqa: E402
import jobs.report  # noqa: E402
import jobs.dataset.main  # noqa: E402
import jobs.train_quality  # noqa: E402

run_job(jobs.ingest, "--lake", lake, "--source", p["source"], "--input", *split(p["input"]))

# COMMAND ----------

sets = []
if p["quality_positive"]:
    run_job(jobs.train_quality, "--lake", lake, "--positive", *split(p["quality_positive"]),
            "--negative", "documents", "--out", f"{lake}/models/quality", "--config", p["quality_config"])
    sets = ["--set", f"quality.model={lake}/models/quality"]
run_job(jobs.filter, "--config", p["pipeline"], "--lake", lake, *sets,
        *(["--skip", ",".join(split(p["skip"]))] if p["skip"] else []))

# COMMAND ----------

run_job(jobs.dedup, "--config", p["dedup"], "--lake", lake)

# COMMAND ----------

run_job(jobs.dataset.main, "--config", p["tokenize"], "--lake", lake, "--out", out,
        *(["--tokenizer", p["tokenizer"]] if p["tokenizer"] else []),
        *(["--eval-dir", p["eval_dir"]] if p["eval_dir"] else []))

# COMMAND ----------

run_job(jobs.report, "--lake", lake, "--out", report)
if "displayHTML" in globals():
    import fsspec

    with fsspec.open(report, "r", encoding="utf-8") as fh:
        displayHTML(fh.read())  # noqa: F821

# COMMAND ----------

# MAGIC %md Every job run of this lake, newest first (`LAKE/_runs`: config, arguments, versions, summary).

# COMMAND ----------

from jobs.common.lake import Lake  # noqa: E402

show(globals(), spark.read.format("delta").load(Lake(lake).path("_runs"))
     .select("run_id", "job", "status", "finished_at", "summary_json").orderBy("finished_at", ascending=False))
