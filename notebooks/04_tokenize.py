# Databricks notebook source
# MAGIC %md
# MAGIC # Lakesift 04 - Decontaminate, mix and tokenize into MDS shards
# MAGIC
# MAGIC Runs the dataset job (`jobs/dataset/main.py`): 13-gram decontamination against the evaluation sets, tokenization, packing,
# MAGIC mixing by source weights and a seeded shuffle into MDS shards (mosaicml-streaming) at `out`, which the
# MAGIC trainer streams (`make train SCALE=... DATA=out`). The dataset is recorded in `LAKE/datasets`.

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

if "spark" not in globals():  # plain Python: the %run cell above is a comment, so run the setup here
    globals().update(__import__("runpy").run_path(__file__.rsplit("/", 1)[0] + "/_setup.py"))

# COMMAND ----------

p = params(globals(), lake="./lake", config="conf/tokenize/demo.yaml", out="./lake/datasets/demo",
           tokenizer="", eval_dir="")

# COMMAND ----------

import jobs.dataset.main  # noqa: E402

run_job(jobs.dataset.main, "--config", p["config"], "--lake", p["lake"], "--out", p["out"],
        *(["--tokenizer", p["tokenizer"]] if p["tokenizer"] else []),
        *(["--eval-dir", p["eval_dir"]] if p["eval_dir"] else []))

# COMMAND ----------

# MAGIC %md The dataset row, and the first sequence read back through mosaicml-streaming.

# COMMAND ----------

from pyspark.sql import functions as F  # noqa: E402

from jobs.common.lake import Lake  # noqa: E402

ds = spark.read.format("delta").load(Lake(p["lake"]).path("datasets"))
show(globals(), ds.orderBy(F.desc("created_at")).select("name", "out", "tokenizer", "seq_len", "sequences", "tokens",
                                                         "shards"), 5)
from lakesift.io import is_local, local_path  # noqa: E402

if is_local(p["out"]):
    from streaming import LocalDataset

    sample = LocalDataset(local_path(p["out"]))[0]
    print(f"{len(sample['tokens'])} tokens, first ten: {list(sample['tokens'][:10])}")
