"""jobs/filter.py on real Spark + Delta: the bundled sample, ingested, a quality classifier trained on it
(jobs/train_quality.py, the demo's recipe), then the full DCLM-Baseline pipeline with that classifier."""


import pytest
from pyspark.sql import functions as F

from jobs import filter as filter_job
from jobs import ingest, train_quality
from tests.conftest import REPO
from udfs.pipeline import load

pytestmark = pytest.mark.spark
CONFIG = str(REPO / "conf" / "pipelines" / "dclm_baseline.yaml")


SETS: list[str] = []


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    assert ingest.main(["--input", str(REPO / "sample" / "warc"), "--lake", str(lake), "--source", "sample"]) == 0
    model = lake / "models" / "quality"
    assert train_quality.main(["--lake", str(lake), "--positive", str(REPO / "sample" / "text" / "hq"),
                               "--negative", "documents", "--out", str(model),
                               "--config", str(REPO / "conf" / "quality" / "demo.yaml")]) == 0
    SETS[:] = [f"quality.model={model}"]
    assert filter_job.main(["--config", CONFIG, "--lake", str(lake), "--set", SETS[0]]) == 0
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
    pipe = load(CONFIG, sets=SETS)  # the same pipeline and model, scored in this process
    expected = {}
    for row in read(spark, lake, "documents").collect():
        o = pipe.run(row.text, row.url, {"language": row.language, "language_score": row.language_score})
        expected[row.doc_id] = (o.kept, o.step, o.reason, o.text if o.kept else None)
    assert {s for _, s, _, _ in expected.values()} >= {"quality_threshold", None}  # the classifier decides some
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
    assert filter_job.main(["--config", CONFIG, "--lake", str(lake), "--set", SETS[0]]) == 0
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


def test_quality_scores_are_a_column_and_match_the_python_scorer(spark, lake):
    from udfs import quality

    path = quality.resolve_model(SETS[0].split("=", 1)[1])
    model, norm = quality.load_model(path), quality.model_normalization(path)
    rows = read(spark, lake, "filtered").select("text", "fasttext_hq_prob").collect()
    assert rows and all(r.fasttext_hq_prob >= 0.018112 for r in rows)
    # the quality step runs last, so the stored text is the text it scored
    expected = quality.score(model, [r.text for r in rows], norm)
    assert [r.fasttext_hq_prob for r in rows] == pytest.approx(list(expected), abs=1e-7)
    rejected = read(spark, lake, "filtered_rejected").filter("step = 'quality_threshold'").collect()
    assert rejected and all(r.fasttext_hq_prob < 0.018112 for r in rejected)


def test_top_fraction_is_computed_over_the_whole_table(spark, lake, tmp_path):
    # several small input partitions: a per-partition quantile would not give the global fraction
    conf = tmp_path / "top.yaml"
    conf.write_text(f"""name: top
steps:
  - func: fasttext_quality_enricher
    id: quality
    model: {SETS[0].split("=", 1)[1]}
  - func: quality_filter
    top_fraction: 0.3
""")
    assert filter_job.main(["--config", str(conf), "--lake", str(lake), "--output", "top",
                            "--partition-mb", "1"]) == 0
    n = read(spark, lake, "documents").count()
    kept = read(spark, lake, "top").select("fasttext_hq_prob").collect()
    assert abs(len(kept) / n - 0.3) <= 0.02, (len(kept), n)
    scores = sorted((r.fasttext_hq_prob for r in read(spark, lake, "top_rejected").collect()), reverse=True)
    assert max(scores) < min(r.fasttext_hq_prob for r in kept)  # the kept ones are the best-scored ones


def test_unreachable_model_fails_before_any_task(spark, lake, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # this machine has no hub; fail fast
    rc = filter_job.main(["--config", CONFIG, "--lake", str(lake), "--output", "never",
                          "--set", "quality.model=hf://no-such-owner/no-such-model/model.bin"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "step quality (fasttext_quality_enricher): cannot fetch hf://no-such-owner" in err
    assert not (lake / "never").exists()
