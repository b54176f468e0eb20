# Databricks notebook source
# MAGIC %md
# MAGIC # Lakesift 05 - Data report
# MAGIC
# MAGIC Writes the self-contained HTML report of a run (`python -m jobs.report`): funnel, drop reasons, length
# MAGIC and language distributions, quality scores, duplicate clusters, tokens per source and sampled documents.
# MAGIC On Databricks it is also shown below the cell.

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

if "spark" not in globals():  # plain Python: the %run cell above is a comment, so run the setup here
    globals().update(__import__("runpy").run_path(__file__.rsplit("/", 1)[0] + "/_setup.py"))

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
