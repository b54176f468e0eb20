"""What the driver hands to executors: our code, files (models, indexes), and a checkpoint directory.

Each has one function here, so the classic route (``SparkContext.addPyFile`` / ``addFile`` /
``SparkFiles`` / ``setCheckpointDir``) and the Spark Connect route (``spark.addArtifacts(…, pyfile=True
| file=True)``, the ``spark.checkpoint.dir`` setting) are chosen in one place (``session.is_connect``).

    name = ship_file(spark, "/tmp/model.bin", "quality-ab12-model.bin")   # driver
    path = local_file(name)                                                # inside a task
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from jobs.common.session import code_origin, is_connect, master
from lakesift.log import get_logger

log = get_logger("spark")

_SHIPPED: set[str] = set()


def code_source() -> Path | None:
    """The checkout this code runs from, or None when it comes from a zip or an installed wheel."""
    root = Path(code_origin()).resolve()
    if not (root / "udfs" / "__init__.py").is_file() or not (root / "conf").is_dir():
        return None  # inside --py-files lakesift-code.zip, or site-packages
    return root


def ship_code(spark) -> str | None:
    """On a cluster, make this checkout's packages importable on the executors.

    Executors unpickle our ``mapInArrow`` functions by importing ``udfs`` / ``jobs``; a local master
    shares this machine's files (PYTHONPATH), a cluster does not. When the driver runs from a checkout
    (Databricks ``spark_python_task`` from a Git folder, ``spark-submit jobs/x.py`` on an EMR master) the
    code zip (``lakesift.packaging``) is built and added as a Python file; when it came as
    ``--py-files`` or a wheel, nothing is done. ``LAKESIFT_SHIP_CODE=0`` turns this off, ``=1`` forces it."""
    force = os.environ.get("LAKESIFT_SHIP_CODE", "")
    if force == "0":
        return None
    if force != "1" and master(spark).startswith("local"):
        return None
    root = code_source()
    if root is None:
        return None
    from lakesift.packaging import build_code_zip

    path = build_code_zip(Path(tempfile.gettempdir()) / "lakesift-ship", root)
    if str(path) not in _SHIPPED:
        if is_connect(spark):
            spark.addArtifacts(str(path), pyfile=True)
        else:
            spark.sparkContext.addPyFile(str(path))
        _SHIPPED.add(str(path))
        log.info("shipped code to executors: %s", path.name)
    return str(path)


def ship_file(spark, local: str, name: str | None = None) -> str:
    """Make the local file ``local`` available to every task under ``name`` (default its base name);
    returns the name to pass to :func:`local_file` inside the task. Names must be unique per session:
    put a content digest in them."""
    name = name or os.path.basename(local)
    if os.path.basename(local) != name:
        # the executor's copy keeps the file's base name: link it under the wanted one first
        stage = tempfile.mkdtemp(prefix="lakesift-ship-")
        link = os.path.join(stage, name)
        try:
            os.link(local, link)
        except OSError:
            os.symlink(os.path.abspath(local), link)
        local = link
    if is_connect(spark):
        spark.addArtifacts(local, file=True)
    else:
        spark.sparkContext.addFile(local)
    return name


def local_file(name: str) -> str:
    """Inside a task: the path of a file shipped with :func:`ship_file`."""
    from pyspark import SparkFiles

    return SparkFiles.get(name)


def set_checkpoint_dir(spark, path: str) -> None:
    """Where ``DataFrame.checkpoint()`` writes (dedup's connected components)."""
    if is_connect(spark):
        spark.conf.set("spark.checkpoint.dir", path)
    else:
        spark.sparkContext.setCheckpointDir(path)
