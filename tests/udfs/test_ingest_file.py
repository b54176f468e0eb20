"""The per-file reader on real shared files and on WARCs built here with known contents."""

import gzip
from collections import Counter

import pytest

from lakesift.io import expand_inputs
from lakesift.warcwrite import write_warc
from udfs.ingest import FileReport, IngestConfig, doc_id_for, iter_documents

CFG = IngestConfig()
ARTICLE = ("<html><body><article><h1>On rivers</h1>"
           + "<p>The river runs through the valley and feeds the fields around the town. " * 6
           + "</p></article></body></html>")


def run(path, cfg=CFG):
    report = FileReport(str(path))
    docs = list(iter_documents(str(path), cfg, report, "test"))
    assert report.records_read == report.documents + sum(report.skipped.values()) == \
        len(docs) + sum(report.skipped.values())
    return docs, report


def test_every_record_of_every_shared_file_is_accounted_for(warc_dir):
    files = expand_inputs([str(warc_dir)], CFG.listing_prefix)
    assert len(files) >= 50
    statuses = Counter()
    for f in files:
        docs, report = run(f)
        statuses[report.status] += 1
        assert report.status in ("done", "partial", "failed")
        assert (report.error is None) == (report.status == "done"), f
        assert len({d["doc_id"] for d in docs}) == len(docs)
    assert statuses["failed"] >= 1 and statuses["partial"] >= 1 and statuses["done"] >= 30


def test_truncated_gzip_record_is_partial(warc_dir):
    docs, report = run(warc_dir / "resiliparse" / "clipped.warc.gz")
    assert report.status == "partial" and report.skipped["truncated_record"] == 1
    assert "74970 of 88038" in report.error


def test_garbage_after_records_keeps_what_was_read(warc_dir):
    docs, report = run(warc_dir / "warcio" / "example-trunc.warc")
    assert report.status == "partial" and report.records_read == 3 and len(docs) == 1
    assert "Invalid WARC header" in report.error


def test_arc_files_read_like_their_warc_twin(warc_dir):
    base = warc_dir / "ukwa" / "small-arcs-and-warcs" / "IAH-20080430204825-00000-blackbook-truncated"
    texts = {}
    for ext in (".arc", ".arc.gz", ".warc.gz"):
        docs, report = run(f"{base}{ext}")
        assert report.status == "done"
        texts[ext] = sorted((d["url"], d["text"]) for d in docs)
    assert texts[".arc"] == texts[".arc.gz"] == texts[".warc.gz"] and len(texts[".arc"]) == 3


def test_arc_with_spaces_in_url_and_a_short_record(warc_dir):
    docs, report = run(warc_dir / "warcio" / "example-space-in-url.arc")
    # The header line declares 1591 bytes; the file holds 1579 after it.
    assert report.status == "partial" and report.skipped["truncated_record"] == 1


def test_malformed_arc_fails_with_a_clear_message(warc_dir):
    docs, report = run(warc_dir / "warcio" / "bad.arc")
    assert report.status == "failed" and "bad filedesc length -1" in report.error


def test_not_a_warc_at_all_fails(tmp_path):
    bad = tmp_path / "x.warc.gz"
    bad.write_bytes(gzip.compress(b"hello, I am not a WARC file\n" * 10))
    docs, report = run(bad)
    assert report.status == "failed" and report.records_read == 0


def test_missing_file_fails(tmp_path):
    docs, report = run(tmp_path / "nope.warc.gz")
    assert report.status == "failed" and "No such file" in report.error


def test_clueweb_shift_jis_quirks(warc_dir):
    # WARC/0.18, malformed WARC-Date, HTTP headers ending in bare LF, EUC-JP pages.
    docs, report = run(warc_dir / "resiliparse" / "clueweb-quirk.warc.gz")
    assert report.status == "done" and len(docs) == 29
    assert {d["language"] for d in docs} == {"ja"} and {d["charset"] for d in docs} == {"euc_jp"}
    assert all(d["crawl_date"] is None for d in docs)


def test_wet_conversion_record_is_taken_as_text(warc_dir):
    docs, report = run(warc_dir / "whirlwind-cc-2024-22" / "whirlwind.warc.wet.gz")
    assert len(docs) == 1 and docs[0]["extractor"] == "wet"
    assert docs[0]["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert docs[0]["url_host"] == "an.wikipedia.org"
    assert "Escopete" in docs[0]["text"]


def test_same_records_in_three_compressions_give_same_texts(warc_dir):
    texts = []
    for name in ("warcfile.warc", "warcfile.warc.gz", "warcfile.warc.lz4"):
        docs, _ = run(warc_dir / "resiliparse" / name)
        texts.append([d["text"] for d in docs])
    assert texts[0] == texts[1] == texts[2] and len(texts[0]) == 16


def test_skip_reasons_on_built_file(tmp_path):
    path = tmp_path / "mixed.warc.gz"
    big = b"<html><body><p>" + b"x " * (3 * 1024 * 1024) + b"</p></body></html>"
    write_warc(str(path), [
        ("http://a.example/ok", ARTICLE.encode()),
        ("http://a.example/img.png", b"\x89PNG....", "image/png"),
        ("http://a.example/big", big),
        ("http://a.example/empty", b"   "),
        ("http://a.example/nothing", b"<html><body><script>x()</script></body></html>"),
        ("http://a.example/sjis", ('<meta charset="shift_jis"><p>' + "日本語の文章です。" * 30 + "</p>")
         .encode("shift_jis")),
    ])
    cfg = IngestConfig(limits={"max_payload_bytes": 4 * 1024 * 1024})
    docs, report = run(path, cfg)
    assert [d["url"] for d in docs] == ["http://a.example/ok", "http://a.example/sjis"]
    assert report.skipped == Counter({"record_type:warcinfo": 1, "non_html": 1, "too_large": 1,
                                      "empty_payload": 1, "empty_text": 1})
    assert docs[1]["language"] == "ja" and docs[1]["charset"] == "shift_jis"
    assert docs[0]["doc_id"] == doc_id_for(str(path), 1, docs[0]["warc_record_id"])


def test_doc_ids_are_stable_across_runs(warc_dir):
    a, _ = run(warc_dir / "dolma" / "sample-0000.warc.gz")
    b, _ = run(warc_dir / "dolma" / "sample-0000.warc.gz")
    assert [d["doc_id"] for d in a] == [d["doc_id"] for d in b]


@pytest.mark.parametrize("extractor", ["resiliparse", "trafilatura"])
def test_both_extractors_on_real_pages(warc_dir, extractor):
    docs, report = run(warc_dir / "dolma" / "sample-0001.warc.gz", IngestConfig(extractor=extractor))
    assert report.status == "done" and len(docs) >= 10
    assert {d["extractor"] for d in docs} == {extractor}
    assert sum(len(d["text"]) for d in docs) > 5000
