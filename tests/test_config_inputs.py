import gzip
import subprocess
import sys

import pytest

from lakesift.config import ConfigError, load_model
from lakesift.io import InputError, expand_inputs
from tests.conftest import REPO
from udfs.ingest import IngestConfig


def test_shipped_config_loads():
    cfg = load_model(IngestConfig, REPO / "conf" / "ingest.yaml")
    assert cfg.extractor == "resiliparse" and cfg.resiliparse.main_content is True


def test_unknown_key_names_key_and_file(tmp_path):
    bad = tmp_path / "ingest.yaml"
    bad.write_text("resiliparse:\n  main_contnet: true\n")
    with pytest.raises(ConfigError, match=r"ingest\.yaml: resiliparse\.main_contnet: unknown key"):
        load_model(IngestConfig, bad)


def test_wrong_type_and_wrong_choice(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("extractor: lynx\nlimits:\n  max_payload_bytes: lots\n")
    with pytest.raises(ConfigError) as err:
        load_model(IngestConfig, bad)
    assert "c.yaml: extractor:" in str(err.value) and "limits.max_payload_bytes" in str(err.value)


def test_cli_rejects_bad_config_before_spark_starts(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch_sise: 10\n")
    proc = subprocess.run([sys.executable, str(REPO / "jobs" / "ingest.py"), "--input", str(tmp_path),
                           "--config", str(bad), "--lake", str(tmp_path / "lake")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "bad.yaml: batch_sise: unknown key" in proc.stderr
    assert not (tmp_path / "lake").exists()


def test_cli_help():
    proc = subprocess.run([sys.executable, str(REPO / "jobs" / "ingest.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--extractor" in proc.stdout and "paths" in proc.stdout


def test_expand_folder_glob_and_listing(tmp_path, warc_dir):
    (tmp_path / "a").mkdir()
    for name in ("x.warc.gz", "y.wet", "notes.txt"):
        (tmp_path / "a" / name).write_bytes(b"")
    assert [p.rsplit("/", 1)[1] for p in expand_inputs([str(tmp_path / "a")], "")] == ["x.warc.gz", "y.wet"]
    assert len(expand_inputs([str(tmp_path / "a" / "*.warc.gz")], "")) == 1
    listing = tmp_path / "CC-MAIN-test.warc.paths.gz"
    listing.write_bytes(gzip.compress(b"crawl-data/seg/1.warc.gz\n\ncrawl-data/seg/2.warc.gz\n"))
    got = expand_inputs([str(listing)], "https://data.commoncrawl.org/")
    assert got == ["https://data.commoncrawl.org/crawl-data/seg/1.warc.gz",
                   "https://data.commoncrawl.org/crawl-data/seg/2.warc.gz"]
    # The real (truncated) Common Crawl listing shipped with the shared data.
    real = expand_inputs([str(warc_dir / "whirlwind-cc-2024-22" / "CC-MAIN-2024-22.warc.paths.gz")],
                         "s3://commoncrawl/")
    # (its 300 lines name parquet parts: the listing is read line by line, whatever the names)
    assert len(real) == 300 and all(u.startswith("s3://commoncrawl/part-") for u in real)


def test_inputs_matching_nothing_are_named(tmp_path):
    with pytest.raises(InputError, match="nope.warc.gz"):
        expand_inputs([str(tmp_path / "nope.warc.gz")], "")


def test_fetch_to_cache_cloud_file_and_folder(tmp_path, monkeypatch):
    """Tokenizers and eval folders on object stores are fetched once to a local cache (memory:// stands
    in for s3:// through the same fsspec route); local paths, file: and dbfs:/ stay paths."""
    import fsspec

    from lakesift.io import InputError, fetch_to_cache

    monkeypatch.setenv("LAKESIFT_CACHE", str(tmp_path / "cache"))
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/eval/arc/test.jsonl", b'{"q": 1}\n')
    fs.pipe("/bucket/tok.json", b'{"model": {}}')
    folder = fetch_to_cache("memory://bucket/eval", "eval folder")
    assert open(f"{folder}/arc/test.jsonl").read() == '{"q": 1}\n'
    assert fetch_to_cache("memory://bucket/eval") == folder  # cached
    assert open(fetch_to_cache("memory://bucket/tok.json")).read() == '{"model": {}}'
    assert fetch_to_cache((tmp_path / "x.json").as_uri()) == str(tmp_path / "x.json")
    assert fetch_to_cache("dbfs:/lake/x") == "/dbfs/lake/x"
    with pytest.raises(InputError, match="not found"):
        fetch_to_cache("memory://bucket/missing.json", "tokenizer")
