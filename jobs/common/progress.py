"""A Spark action followed task by task from the driver.

``spark_action`` runs an action (``df.collect`` ...) in a background thread under its own job group
and, in the main thread, follows that group's stages through ``SparkContext.statusTracker()`` (works on
a laptop and on a cluster: the driver knows every task that finished), drawing ``lakesift.progress``'s
bar or, without a terminal, logging one line per ``log_every`` seconds. A Spark Connect session has no
status tracker: the action runs as it is, with a start and an end log line.
"""

from __future__ import annotations

import threading
import time
import uuid

from jobs.common.session import is_connect
from lakesift.log import get_logger, kv
from lakesift.progress import bar

log = get_logger("progress")


def _tasks(sc, group: str) -> tuple[int, int]:
    tracker = sc.statusTracker()
    done = total = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        for stage_id in (job.stageIds if job else []):
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                done += stage.numCompletedTasks
                total += stage.numTasks
    return done, total


def spark_action(spark, action, desc: str, unit: str = "task", poll: float = 0.5, log_every: float = 30.0):
    """Run ``action()`` (a Spark action), showing how many of its tasks are done; return its result."""
    if is_connect(spark):
        t0 = time.perf_counter()
        log.info(kv(progress=desc, event="start"))
        value = action()
        log.info(kv(progress=desc, event="done", seconds=round(time.perf_counter() - t0, 1)))
        return value
    sc = spark.sparkContext
    group = f"lakesift-{uuid.uuid4().hex[:8]}"
    result: dict = {}

    def run():
        sc.setJobGroup(group, desc, interruptOnCancel=False)
        try:
            result["value"] = action()
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    t = threading.Thread(target=run, name=f"spark-action-{group}", daemon=True)
    t.start()
    b = bar(0, desc, unit)
    last_log = time.perf_counter()
    try:
        while t.is_alive():
            t.join(poll)
            done, total = _tasks(sc, group)
            if b is not None:
                if total != b.total:
                    b.total = total
                b.n = done
                b.refresh()
            elif time.perf_counter() - last_log >= log_every and total:
                log.info(kv(progress=desc, done=done, total=total, unit=unit))
                last_log = time.perf_counter()
        if b is not None:
            done, total = _tasks(sc, group)
            b.total, b.n = total, done
            b.refresh()
    finally:
        if b is not None:
            b.close()
    if "error" in result:
        raise result["error"]
    return result.get("value")
