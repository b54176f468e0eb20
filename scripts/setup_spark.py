#!/usr/bin/env python
"""Make local Spark + Delta ready: resolve the Delta JARs once (Ivy cache) and write spark-defaults.

After this, both `python jobs/x.py` and `spark-submit jobs/x.py` (the spark-submit of the venv's
pyspark) run with Delta Lake enabled, with no extra flags. Idempotent; run by `make setup`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.common.session import DELTA_CATALOG, DELTA_EXTENSION, delta_package, get_spark  # noqa: E402


def write_spark_defaults() -> Path:
    import pyspark

    conf_dir = Path(pyspark.__file__).parent / "conf"
    conf_dir.mkdir(exist_ok=True)
    path = conf_dir / "spark-defaults.conf"
    path.write_text(
        "# Written by lakesift scripts/setup_spark.py: Delta Lake for local spark-submit.\n"
        f"spark.jars.packages              {delta_package()}\n"
        f"spark.sql.extensions             {DELTA_EXTENSION}\n"
        f"spark.sql.catalog.spark_catalog  {DELTA_CATALOG}\n"
        "spark.sql.session.timeZone       UTC\n"
        f"spark.pyspark.python             {sys.executable}\n"
        f"spark.pyspark.driver.python      {sys.executable}\n",
        encoding="utf-8",
    )
    return path


def main() -> int:
    path = write_spark_defaults()
    print(f"wrote {path}")
    t0 = time.time()
    spark = get_spark("lakesift-setup", {"spark.ui.showConsoleProgress": "false"})
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "check")
        spark.range(3).write.format("delta").save(target)
        n = spark.read.format("delta").load(target).count()
    spark.stop()
    if n != 3:
        print("Delta round trip failed", file=sys.stderr)
        return 1
    print(f"Spark {spark.version} + Delta ({delta_package()}) ready in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
