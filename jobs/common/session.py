"""The one place that builds or finds a Spark session (``get_spark``) and says what kind it is.

* Under ``spark-submit``, on Databricks or on EMR a session (or its JVM) already exists: we use it
  and only check that Delta Lake is available.
* Run as plain ``python jobs/x.py`` (or from tests), we start an embedded ``local[*]`` Spark with the
  Delta extension and catalog. The Delta JARs come from Maven Central through Spark's Ivy resolver
  (``spark.jars.packages``), cached in ``~/.ivy2.5.2`` after the first run.

This is also the room where a Spark Connect session (``SPARK_REMOTE=sc://…``, Databricks serverless and
shared clusters) will be chosen: code elsewhere asks :func:`is_connect` instead of touching
``spark.sparkContext``, and files / code / checkpoints reach executors through ``jobs.common.ship``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lakesift.log import get_logger

log = get_logger("spark")

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"

# Defaults for the embedded session; each can be overridden with LAKESIFT_SPARK_<KEY> env vars or
# the `extra` argument. Shuffle partitions: Spark's 200 default makes every small local shuffle
# pay 200 task launches; 2 x cores is plenty on one machine.
LOCAL_DEFAULTS = {
    "spark.sql.shuffle.partitions": str(2 * (os.cpu_count() or 2)),
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "4",
    "spark.ui.showConsoleProgress": "true",
    "spark.driver.memory": os.environ.get("LAKESIFT_DRIVER_MEMORY", "4g"),
    # Python workers stay alive between tasks, so models (lid.176, fastText quality) load once.
    "spark.python.worker.reuse": "true",
    # Embedded local runs are short and share few cores with busy Python workers: the C1-only JIT
    # and the parallel collector cut JVM warm-up. Measured on 2 cores (bench/ingest_speed.py corpus):
    # session start 12.2s -> 9.4s, a cold ingest of 5,157 pages 48s -> 37.5s. Set
    # LAKESIFT_SPARK_JAVA_OPTS="" to get the JVM defaults back (long runs on many cores).
    "spark.driver.extraJavaOptions": os.environ.get(
        "LAKESIFT_SPARK_JAVA_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseParallelGC"),
}


def delta_package() -> str:
    """Maven coordinate of the Delta JAR matching the installed pyspark and delta-spark."""
    from importlib.metadata import version

    import pyspark

    spark_mm = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_mm}_2.13:{version('delta-spark')}"


def _existing_session():
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # spark-submit (local or cluster), Databricks and EMR start the JVM before our code runs.
    if os.environ.get("PYSPARK_GATEWAY_PORT") or os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return SparkSession.builder.getOrCreate()
    return None


def get_spark(app_name: str = "lakesift", extra: dict[str, str] | None = None):
    """Return the session to use, creating an embedded local one when none exists."""
    from pyspark.sql import SparkSession

    spark = _existing_session()
    if spark is None:
        # Python workers must run the interpreter (and venv) of the driver, not whatever
        # `python3` is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        # Workers import `udfs`: put this checkout on their path even when it is not pip-installed.
        root = str(Path(__file__).resolve().parents[2])
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if root not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, paths)])
        master = os.environ.get("LAKESIFT_SPARK_MASTER", "local[*]")
        builder = SparkSession.builder.appName(app_name).master(master)
        conf = dict(LOCAL_DEFAULTS)
        conf.update(extra or {})
        conf["spark.sql.extensions"] = DELTA_EXTENSION
        conf["spark.sql.catalog.spark_catalog"] = DELTA_CATALOG
        conf["spark.jars.packages"] = delta_package()
        for key, value in conf.items():
            builder = builder.config(key, value)
        log.info("starting embedded Spark master=%s delta=%s", master, conf["spark.jars.packages"])
        spark = builder.getOrCreate()
    set_log_level(spark)
    _check_delta(spark)
    from jobs.common.ship import ship_code

    ship_code(spark)
    log.info("code from %s", code_origin())
    return spark


def is_connect(spark) -> bool:
    """True for a Spark Connect session (no ``SparkContext``, no RDDs, no ``addFile``).

    Decided from the session's class, without importing ``pyspark.sql.connect``: that import checks
    the Connect client's dependencies and, in a process whose main module has no file (``python -c``),
    exits the process when they are missing."""
    return type(spark).__module__.startswith("pyspark.sql.connect.")


def set_log_level(spark, level: str | None = None) -> None:
    """Spark's log level (``LAKESIFT_SPARK_LOG_LEVEL``, default WARN): spark-submit's default log4j
    configuration prints every Delta snapshot at INFO. A Connect client cannot set the server's."""
    if is_connect(spark):
        return
    spark.sparkContext.setLogLevel(level or os.environ.get("LAKESIFT_SPARK_LOG_LEVEL", "WARN"))


def master(spark) -> str:
    """The master URL (``local[*]``, ``yarn``, ``spark://…``), or ``connect`` for a Connect session."""
    return "connect" if is_connect(spark) else spark.sparkContext.master


def code_origin() -> str:
    """Where ``udfs`` was imported from: a checkout, a ``--py-files`` zip or site-packages."""
    import udfs

    return str(Path(udfs.__file__).parents[1])


def _check_delta(spark) -> None:
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return  # Delta is built into the Databricks runtime
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    if DELTA_EXTENSION not in extensions:
        raise RuntimeError(
            "Delta Lake is not enabled in this Spark session. Run `make setup` (which writes the local "
            "spark-defaults.conf), or pass to spark-submit:\n"
            f"  --packages {delta_package()} --conf spark.sql.extensions={DELTA_EXTENSION} "
            f"--conf spark.sql.catalog.spark_catalog={DELTA_CATALOG}"
        )
