"""jobs/filter.py on real Spark + Delta: the bundled sample, ingested, then the DCLM-Baseline pipeline."""


import pytest
from pyspark.sql import functions as F

from jobs import filter as filter_job
from jobs import ingest
from tests.conftest import REPO
from udfs.pipeline import load

pytestmark = pytest.mark.spark
CONFIG = str(REPO / "conf" / "pipelines" / "dclm_baseline.yaml")


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    assert ingest.main(["--input", str(REPO / "sample" / "warc"), "--lake", str(lake), "--source", "sample"]) == 0
    assert filter_job.main(["--config", CONFIG, "--lake", str(lake)]) == 0
    return lake


def read(spark, lake, name):
    return spark.read.format("delta").load(f"{lake}/{name}")


def test_every_document_kept_or_rejected_once(spark, lake):
    docs, kept, rej = (read(spark, lake, t) for t in ("documents", "filtered", "filtered_rejected"))
    n, k, r = docs.count(), kept.count(), rej.count()
    assert n == k + r and k > 0 and r > 0
    ids = kept.select("doc_id").union(rej.select("doc_id"))
    assert ids.distinct().count() == n


def test_spark_decisions_equal_the_python_pipeline(spark, lake):
    pipe = load(CONFIG)
    expected = {}
    for row in read(spark, lake, "documents").collect():
        o = pipe.run(row.text, row.url, {"language": row.language, "language_score": row.language_score})
        expected[row.doc_id] = (o.kept, o.step, o.reason, o.text if o.kept else None)
    got = {r.doc_id: (True, None, None, r.text) for r in read(spark, lake, "filtered").collect()}
    got.update({r.doc_id: (False, r.step, r.reason, None) for r in read(spark, lake, "filtered_rejected").collect()})
    assert got == expected


def test_funnel_statistics_add_up(spark, lake):
    stats = read(spark, lake, "run_stats")
    steps = stats.filter(F.col("reason").isNull()).orderBy("step_index").collect()
    n = read(spark, lake, "documents").count()
    assert steps[0].docs_in == n
    for a, b in zip(steps, steps[1:], strict=False):
        assert b.docs_in == a.docs_out  # each step receives what the previous one let through
    assert steps[-1].docs_out == read(spark, lake, "filtered").count()
    dropped = {r.step: r.docs_dropped for r in steps}
    by_reason = stats.filter(F.col("reason").isNotNull()).groupBy("step").agg(F.sum("docs_dropped").alias("n"))
    for r in by_reason.collect():
        assert r.n == dropped[r.step]


def test_rerun_replaces_and_new_config_adds_a_run(spark, lake, tmp_path):
    before = read(spark, lake, "run_stats").count()
    assert filter_job.main(["--config", CONFIG, "--lake", str(lake)]) == 0
    assert read(spark, lake, "run_stats").count() == before
    other = tmp_path / "short.yaml"
    other.write_text("name: short\nsteps:\n  - func: page_length_filter\n    min_length: 100\n")
    assert filter_job.main(["--config", str(other), "--lake", str(lake), "--output", "filtered_short"]) == 0
    runs = read(spark, lake, "run_stats").select("run_id").distinct().count()
    assert runs == 2


def test_bad_pipeline_fails_before_spark_work(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - func: page_length_filter\n    min_lenght: 3\n")
    assert filter_job.main(["--config", str(bad), "--lake", str(tmp_path / "lake")]) == 2
    assert "min_lenght: unknown parameter" in capsys.readouterr().err
    assert not (tmp_path / "lake").exists()
