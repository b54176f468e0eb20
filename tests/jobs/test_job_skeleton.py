"""The job skeleton (jobs/common/job.py) on real Spark + Delta: runs recorded as succeeded or failed,
reads pinned to the version the run id names while another writer appends, and the common flags."""

from __future__ import annotations

import json

import pytest
from pydantic import Field

from jobs.common import runs
from jobs.common.job import Job, parse_sets
from jobs.common.lake import Lake, schema
from lakesift.config import ConfigError, StrictModel, load_model

pytestmark = pytest.mark.spark


class CountConfig(StrictModel):
    name: str = "count"
    steps: list[dict] = []
    fail: str | None = None
    min_rows: int = Field(0, ge=0)


def make_table(spark, lake: Lake, table: str, n: int, start: int = 0) -> None:
    df = spark.createDataFrame([(f"d{i:03d}", f"text {i}") for i in range(start, start + n)], "doc_id string, text string")
    df.write.format("delta").mode("append").save(lake.path(table))


class CountJob(Job):
    """Counts a table's rows; `concurrent` appends to the input between the read and the count."""

    name, prog = "count", "tests/count.py"
    config_model = CountConfig
    config_required = False
    concurrent = 0

    def add_arguments(self, p):
        p.add_argument("--input", default="docs")

    def run(self, ctx):
        df, version = ctx.read(ctx.args.input)
        ctx.output("nothing", "memory")
        ctx.start(runs.run_id("count", ctx.cfg.name, runs.fingerprint(ctx.cfg), {ctx.args.input: version}))
        if self.concurrent:  # another writer commits while this run works
            make_table(ctx.spark, ctx.lake, ctx.args.input, self.concurrent, start=1000)
        if ctx.cfg.fail:
            raise RuntimeError(ctx.cfg.fail)
        ctx.extra["counted"] = df.count()
        ctx.done(rows=ctx.extra["counted"])


def last_run(spark, lake: Lake) -> dict:
    rows = spark.read.format("delta").load(lake.path("_runs")).orderBy("finished_at").collect()
    return rows[-1].asDict(recursive=True)


def test_failed_run_is_recorded_as_failed_with_its_error(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    make_table(spark, lake, "docs", 3)
    with pytest.raises(RuntimeError, match="disk on fire"):
        CountJob().main(["--lake", lake.root, "--set", "fail=disk on fire"])
    run = last_run(spark, lake)
    assert run["status"] == "failed" and run["job"] == "count"
    assert run["error"] == "RuntimeError: disk on fire"
    assert run["run_id"].startswith("count-count-") and run["run_id"].endswith("-docs-v0")
    assert run["inputs"] == [{"name": "docs", "uri": lake.path("docs"), "version": 0}]
    assert json.loads(run["config_json"])["resolved"]["fail"] == "disk on fire"
    # and a run that works is recorded as succeeded, with its summary
    assert CountJob().main(["--lake", lake.root]) == 0
    ok = last_run(spark, lake)
    assert ok["status"] == "succeeded" and ok["error"] is None and json.loads(ok["summary_json"]) == {"rows": 3}


def test_read_is_pinned_to_the_recorded_version_while_another_writer_appends(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    make_table(spark, lake, "docs", 5)
    make_table(spark, lake, "docs", 2, start=5)  # version 1: 7 rows
    job = CountJob()
    job.concurrent = 4  # version 2 is committed after the read, before the count
    counted = {}
    real_run = CountJob.run

    def run(self, ctx):
        real_run(self, ctx)
        counted.update(ctx.extra)

    job.run = run.__get__(job)
    assert job.main(["--lake", lake.root]) == 0
    assert counted["counted"] == 7  # the rows of version 1, not the 11 of version 2
    assert spark.read.format("delta").load(lake.path("docs")).count() == 11
    rec = last_run(spark, lake)
    assert rec["inputs"][0]["version"] == 1 and rec["run_id"].endswith("-docs-v1")


def test_missing_input_is_a_usage_error_and_not_recorded(spark, tmp_path, capsys):
    lake = Lake(str(tmp_path / "lake"))
    assert CountJob().main(["--lake", lake.root, "--input", "nope"]) == 2
    assert "no Delta table at" in capsys.readouterr().err
    assert not (tmp_path / "lake" / "_runs").exists()


def test_config_errors_exit_2_before_spark_naming_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\nmin_rowz: 3\n")
    assert CountJob().main(["--config", str(cfg)]) == 2
    assert f"{cfg}: min_rowz: unknown key" in capsys.readouterr().err
    assert CountJob().main(["--set", "min_rows=-1"]) == 2
    assert "min_rows" in capsys.readouterr().err
    assert CountJob().main(["--set", "novalue"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_set_reaches_list_items_and_null_removes_a_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\nmin_rows: 4\nsteps:\n  - {method: exact}\n  - {method: minhash, threshold: 0.8}\n")
    got = load_model(CountConfig, cfg, sets=parse_sets(["steps.1.threshold=0.7", "min_rows=null", "name=y"]))
    assert got.steps[1] == {"method": "minhash", "threshold": 0.7} and got.min_rows == 0 and got.name == "y"
    with pytest.raises(ConfigError, match="no list item 5"):
        load_model(CountConfig, cfg, sets=parse_sets(["steps.5.threshold=0.7"]))


def test_catalogue_schemas_and_run_ids():
    assert [f.name for f in schema("run_stats").fields][:3] == ["run_id", "pipeline", "step"]
    assert not schema("documents")["doc_id"].nullable
    assert runs.fingerprint({"a": 1, "b": 2}) == runs.fingerprint({"b": 2, "a": 1})
    assert runs.fingerprint(b"x") != runs.fingerprint(b"y")
    assert runs.run_id("filter", "p", "abc", {"documents": 3}) == "filter-p-abc-documents-v3"
    multi = runs.run_id("tokenize", "demo", "abc", {"a": 1, "b": 2})
    assert multi.startswith("tokenize-demo-") and multi != runs.run_id("tokenize", "demo", "abc", {"a": 1, "b": 3})
    one, two = runs.run_id("ingest", "ingest", "abc"), runs.run_id("ingest", "ingest", "abc")
    assert one != two and one.startswith("ingest-") and "-abc-" in one


def test_session_kind_without_importing_the_connect_client(spark):
    """`python -c` code (the benchmarks' preparation) must survive get_spark: importing
    pyspark.sql.connect there exits the process when the Connect client's packages are missing."""
    import subprocess
    import sys

    from jobs.common.session import is_connect

    assert not is_connect(spark)
    code = ("import jobs.common.session as s\n"
            "class F: pass\n"
            "F.__module__ = 'pyspark.sql.connect.session'\n"
            "print(s.is_connect(F()), 'pyspark.sql.connect.session' in __import__('sys').modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["True", "False"], r.stderr[-1000:]
