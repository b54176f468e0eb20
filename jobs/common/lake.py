"""The lake: a root URI under which every Delta table of a pipeline lives (``LAKE/<table>``).

Tables are addressed by path, so the same code works on a laptop folder, ``s3://``, ``abfss://`` or
``dbfs:/`` without a metastore. Each job run gets a run id and a row in ``LAKE/_runs`` with its
resolved config, arguments and versions.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import UTC, datetime

from lakesift import __version__
from lakesift.io import is_local, local_path

DEFAULT_LAKE = "./lake"


def lake_root(lake: str) -> str:
    """Normalise ``--lake``: local folders become absolute paths, URIs stay as given."""
    return local_path(lake) if is_local(lake) else lake.rstrip("/")


def table_path(lake: str, table: str) -> str:
    return f"{lake_root(lake)}/{table}"


def resolve_table(lake: str, table: str) -> str:
    """A table given by name (``filtered``: ``LAKE/filtered``) or as a Delta path / URI."""
    return table if ("/" in table or ":" in table) else table_path(lake, table)


def table_exists(spark, path: str) -> bool:
    from delta.tables import DeltaTable

    try:
        return DeltaTable.isDeltaTable(spark, path)
    except Exception:
        return False


# Shared by every stage's per-step statistics (filter, dedup, ...).
RUN_STATS_SCHEMA = ("run_id string, pipeline string, step string, step_index int, reason string, "
                    "docs_in long, docs_out long, docs_dropped long, chars_in long, chars_out long")


def replace_run_rows(spark, df, path: str, run_id: str) -> None:
    """Write ``df`` (rows of one run) into the Delta table at ``path``, replacing that run's earlier
    rows and leaving other runs' rows alone; creates the table on first use."""
    if table_exists(spark, path):
        df.write.format("delta").mode("overwrite").option("replaceWhere", f"run_id = '{run_id}'").save(path)
    else:
        df.write.format("delta").mode("append").save(path)


def write_run_stats(spark, lake: str, rows: list, run_id: str) -> None:
    replace_run_rows(spark, spark.createDataFrame(rows, RUN_STATS_SCHEMA), table_path(lake, "run_stats"), run_id)


def new_run_id(job: str, fingerprint: str) -> str:
    """``<job>-<UTC time>-<config hash>-<random>``: sortable, and says which config it ran."""
    now = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{job}-{now}-{fingerprint}-{uuid.uuid4().hex[:6]}"


def record_run(spark, lake: str, run_id: str, job: str, config: dict, argv: list[str],
               started_at: datetime, status: str, summary: dict) -> None:
    """Append this run's provenance row to ``LAKE/_runs`` (resolved config as JSON)."""
    import pyspark
    from pyspark.sql import types as T

    schema = T.StructType([
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("finished_at", T.TimestampType(), False),
        T.StructField("config_json", T.StringType(), False),
        T.StructField("argv", T.ArrayType(T.StringType()), False),
        T.StructField("summary_json", T.StringType(), False),
        T.StructField("versions_json", T.StringType(), False),
    ])
    from jobs.common.spark import code_origin

    versions = {"lakesift": __version__, "python": sys.version.split()[0], "pyspark": pyspark.__version__,
                "host": os.uname().nodename, "code": code_origin()}
    row = (run_id, job, status, started_at, datetime.now(UTC), json.dumps(config, sort_keys=True),
           list(argv), json.dumps(summary, sort_keys=True, default=str), json.dumps(versions, sort_keys=True))
    (spark.createDataFrame([row], schema).write.format("delta").mode("append")
     .save(table_path(lake, "_runs")))
