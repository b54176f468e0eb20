"""jobs/ingest.py on real Spark + Delta, over every shared crawl file (broken ones included)."""

import gzip
import shutil

import pytest
from pyspark.sql import functions as F

from jobs import ingest
from lakesift.io import expand_inputs
from udfs.ingest import FileReport, IngestConfig, iter_documents

pytestmark = pytest.mark.spark


def tables(spark, lake):
    docs = spark.read.format("delta").load(f"{lake}/documents")
    logs = spark.read.format("delta").load(f"{lake}/ingest_log")
    return docs, logs


@pytest.fixture(scope="module")
def shared_lake(spark, warc_dir, tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    assert ingest.main(["--input", str(warc_dir), "--lake", str(lake), "--source", "shared"]) == 0
    return lake


def test_every_file_logged_and_every_record_accounted(spark, shared_lake, warc_dir):
    docs, logs = tables(spark, shared_lake)
    files = expand_inputs([str(warc_dir)], "")
    rows = {r.warc_path: r for r in logs.collect()}
    assert sorted(rows) == files  # one row per input file
    for path, r in rows.items():
        assert r.records_read == r.documents_written + sum(r.skipped.values()), path
        assert sum(r.languages.values()) == r.documents_written, path
    per_file = {r.warc_path: r["count"] for r in docs.groupBy("warc_path").count().collect()}
    assert all(per_file.get(p, 0) == r.documents_written for p, r in rows.items())
    assert docs.count() == docs.select("doc_id").distinct().count() == sum(per_file.values())
    status = {p: r.status for p, r in rows.items()}
    assert status[str(warc_dir / "resiliparse" / "clipped.warc.gz")] == "partial"
    assert status[str(warc_dir / "warcio" / "example.arc")] == "done"
    assert status[str(warc_dir / "warcio" / "bad.arc")] == "failed"
    assert "filedesc" in rows[str(warc_dir / "warcio" / "bad.arc")].error


def test_spark_output_equals_the_python_reader(spark, shared_lake, warc_dir):
    docs, _ = tables(spark, shared_lake)
    path = str(warc_dir / "resiliparse" / "warcfile.warc.gz")
    expected = {d["doc_id"]: (d["text"], d["language"]) for d in
                iter_documents(path, IngestConfig(), FileReport(path), "shared")}
    got = {r.doc_id: (r.text, r.language) for r in docs.filter(F.col("warc_path") == path).collect()}
    assert got == expected and len(got) == 16


def test_one_task_per_file(spark, shared_lake):
    docs, _ = tables(spark, shared_lake)
    # Each input file's documents were written by a single task: exactly one data file per input.
    files_per_input = (docs.select("warc_path", F.input_file_name().alias("f")).distinct()
                       .groupBy("warc_path").count().agg(F.max("count")).first()[0])
    assert files_per_input == 1


def test_schema_and_run_provenance(spark, shared_lake):
    docs, _ = tables(spark, shared_lake)
    for col in ("doc_id", "url", "url_host", "crawl_date", "source", "warc_path", "warc_record_id",
                "text", "language", "language_score", "extractor"):
        assert col in docs.columns
    runs = spark.read.format("delta").load(f"{shared_lake}/_runs").collect()
    assert runs[0].job == "ingest" and '"extractor": "resiliparse"' in runs[0].config_json


def test_rerun_writes_nothing_new_and_new_files_alone(spark, shared_lake, tmp_path, warc_dir):
    docs, logs = tables(spark, shared_lake)
    n_docs, n_logs = docs.count(), logs.count()
    assert ingest.main(["--input", str(warc_dir), "--lake", str(shared_lake)]) == 0
    docs, logs = tables(spark, shared_lake)
    assert (docs.count(), logs.count()) == (n_docs, n_logs)
    # A new file next to the old ones: only it is processed.
    extra = tmp_path / "more"
    extra.mkdir()
    shutil.copy(warc_dir / "dolma" / "sample-0000.warc.gz", extra / "new.warc.gz")
    assert ingest.main(["--input", str(warc_dir), str(extra), "--lake", str(shared_lake)]) == 0
    docs, logs = tables(spark, shared_lake)
    assert logs.count() == n_logs + 1 and docs.count() == n_docs + 22


def test_killed_run_restarted_gives_the_rows_of_a_clean_run(spark, tmp_path, warc_dir):
    lake = tmp_path / "lake"
    inputs = [str(warc_dir / "dolma"), str(warc_dir / "whirlwind-cc-2024-22" / "whirlwind.warc.wet")]
    assert ingest.main(["--input", *inputs, "--lake", str(lake)]) == 0
    docs, _ = tables(spark, lake)
    clean = sorted(r.doc_id for r in docs.collect())
    # Simulate a run killed after committing `documents` but before `ingest_log`: drop the log rows.
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, f"{lake}/ingest_log").delete(F.col("warc_path").contains("dolma"))
    assert ingest.main(["--input", *inputs, "--lake", str(lake)]) == 0
    docs, logs = tables(spark, lake)
    assert sorted(r.doc_id for r in docs.collect()) == clean
    assert logs.filter(F.col("warc_path").contains("dolma")).count() == 2


def test_listing_input_with_prefix(spark, tmp_path, warc_dir):
    crawl = tmp_path / "crawl" / "crawl-data" / "seg"
    crawl.mkdir(parents=True)
    shutil.copy(warc_dir / "whirlwind-cc-2024-22" / "whirlwind.warc.gz", crawl / "a.warc.gz")
    shutil.copy(warc_dir / "whirlwind-cc-2024-22" / "whirlwind.warc.wet.gz", crawl / "a.warc.wet.gz")
    listing = tmp_path / "test.warc.paths.gz"
    listing.write_bytes(gzip.compress(b"crawl-data/seg/a.warc.gz\ncrawl-data/seg/a.warc.wet.gz\n"))
    lake = tmp_path / "lake"
    assert ingest.main(["--input", str(listing), "--listing-prefix", f"file://{tmp_path}/crawl/",
                        "--lake", str(lake), "--source", "cc"]) == 0
    docs, logs = tables(spark, lake)
    assert logs.count() == 2 and {r.status for r in logs.collect()} == {"done"}
    assert sorted(r.extractor for r in docs.collect()) == ["resiliparse", "wet"]


def test_trafilatura_extractor_on_the_bundled_sample(spark, tmp_path):
    from tests.conftest import REPO

    lake = tmp_path / "lake"
    sample = str(REPO / "sample" / "warc" / "sample-0001.warc.gz")
    assert ingest.main(["--input", sample, "--lake", str(lake), "--extractor", "trafilatura"]) == 0
    docs, logs = tables(spark, lake)
    log = logs.first()
    assert log.status == "done" and log.documents_written >= 40
    assert docs.filter(F.col("extractor") != "trafilatura").count() == 0
