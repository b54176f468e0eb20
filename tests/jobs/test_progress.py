"""Progress of a Spark action followed from the driver (jobs.common.progress)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.spark


def test_spark_action_bar_counts_tasks_and_returns_the_result(spark, monkeypatch, capsys):
    from jobs.common.progress import spark_action

    monkeypatch.setenv("LAKESIFT_PROGRESS", "1")

    def slow(rows):
        import time

        for r in rows:
            time.sleep(0.05)
            yield r

    df = spark.range(0, 40, numPartitions=4).rdd.mapPartitions(slow)
    got = spark_action(spark, df.collect, "counting things", unit="task", poll=0.1)
    assert sorted(r[0] for r in got) == list(range(40))
    err = capsys.readouterr().err
    assert "counting things" in err and "4/4" in err


def test_spark_action_reraises_and_logs_without_a_terminal(spark, monkeypatch, capsys):
    from jobs.common.progress import spark_action

    monkeypatch.setenv("LAKESIFT_PROGRESS", "0")

    def boom(rows):
        raise ValueError("bad row")
        yield

    with pytest.raises(Exception, match="bad row"):
        spark_action(spark, spark.range(4, numPartitions=2).rdd.mapPartitions(boom).collect, "failing")
    assert "failing" not in capsys.readouterr().err  # no bar drawn
