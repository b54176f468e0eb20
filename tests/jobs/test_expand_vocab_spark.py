"""jobs/expand_vocab.py end to end on real Spark + Delta: a folder of JSONL with a SentencePiece base
trained in the test, a lake table with the GPT-NeoX base, and the requests it refuses."""

from __future__ import annotations

import csv
import gzip
import itertools
import json

import pytest

from jobs import expand_vocab
from tests.conftest import REPO

pytestmark = pytest.mark.spark
CONFIG = str(REPO / "conf" / "vocab" / "default.yaml")
OUT_FILES = {"tokenizer.json", "added_pieces.tsv", "dropped_pieces.tsv", "report.json", "base"}
REPORT_KEYS = {"base", "base_kind", "base_vocab_size", "vocab_size", "padded_vocab_size", "pad_multiple", "added",
               "dropped", "heldout", "sample", "seconds", "old_ids_unchanged", "reachability_rounds"}
HELDOUT_KEYS = {"docs", "chars", "bytes", "tokens_before", "tokens_after", "chars_per_token_before",
                "chars_per_token_after", "bytes_per_token_before", "bytes_per_token_after", "tokens_per_char_ratio"}


def zh_rows(shared, per_file: int = 150) -> list[dict]:
    rows = []
    for name in ("fortunes-zh", "libreoffice-help-zh-cn", "libreoffice-help-zh-tw"):
        with gzip.open(shared / "data" / "zh" / "text" / f"{name}.jsonl.gz", "rt", encoding="utf-8") as fh:
            rows += [json.loads(line) for line in itertools.islice(fh, per_file)]
    return [{"text": r["text"], "lang": r["lang"], "source": r["source"].split("=")[0]} for r in rows]


@pytest.fixture(scope="module")
def jsonl_folder(shared, tmp_path_factory):
    folder = tmp_path_factory.mktemp("zh")
    rows = zh_rows(shared)
    for i in range(3):
        with gzip.open(folder / f"part-{i}.jsonl.gz", "wt", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[i::3])
    (folder / "SOURCES.tsv").write_text("file\tdocs\nnot a document\t1\n", encoding="utf-8")  # not read
    return folder


@pytest.fixture(scope="module")
def spm_base(shared, tmp_path_factory):
    import sentencepiece as spm

    prefix = str(tmp_path_factory.mktemp("base") / "tokenizer")
    spm.SentencePieceTrainer.train(input=str(shared / "data/text/tinyshakespeare/input.txt"), model_prefix=prefix,
                                   vocab_size=1000, model_type="bpe", byte_fallback=True, minloglevel=2,
                                   num_threads=1, normalization_rule_name="identity", remove_extra_whitespaces=False)
    return prefix + ".model"


@pytest.fixture(scope="module")
def english(shared, tmp_path_factory):
    path = tmp_path_factory.mktemp("en") / "en.txt"
    path.write_text((shared / "data/text/wikitext2/valid.txt").read_text(encoding="utf-8")[:150_000], encoding="utf-8")
    return path


def read_tsv(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def last_run(spark, lake) -> dict:
    rows = spark.read.format("delta").load(f"{lake}/_runs").orderBy("finished_at").collect()
    return rows[-1].asDict(recursive=True)


def test_sentencepiece_base_on_a_jsonl_folder(spark, jsonl_folder, spm_base, english, tmp_path, capsys):
    from tokenizers import Tokenizer

    from udfs.tokenizing import resolve_tokenizer

    out, lake = tmp_path / "out", tmp_path / "lake"
    code = expand_vocab.main(["--base", spm_base, "--text", str(jsonl_folder), "--out", str(out), "--lake", str(lake),
                              "--config", CONFIG, "--set", "candidates.vocab_size=6000",
                              "--set", "sample.heldout_fraction=0.2", "--eval-text", f"en={english}"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "=== vocabulary expansion default" in printed and "slow / fast parity: 0 of" in printed
    assert OUT_FILES | {"tokenizer.model"} == {p.name for p in out.iterdir()}
    assert {p.name for p in (out / "base").iterdir()} == {"tokenizer.model", "tokenizer.json"}
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert REPORT_KEYS <= set(report) and report["base_kind"] == "sentencepiece" and report["old_ids_unchanged"]
    assert report["base_vocab_size"] == 1000 and report["vocab_size"] == 1000 + report["added"]
    assert report["padded_vocab_size"] % 64 == 0 and 0 <= report["padded_vocab_size"] - report["vocab_size"] < 64
    assert report["sample"]["docs"] > 200 and report["sample"]["seed"] == 42
    assert {"en", "zh-Hans", "zh-Hant"} <= set(report["heldout"])  # the lang field, and --eval-text
    assert all(HELDOUT_KEYS <= set(s) for s in report["heldout"].values())
    assert report["heldout"]["zh-Hans"]["tokens_per_char_ratio"] < 0.5
    assert report["english_not_worse"] is True and report["heldout"]["en"]["docs_with_more_tokens"] == 0
    assert report["parity"]["mismatched_docs"] == 0 and report["parity"]["docs"] > 100

    added = read_tsv(out / "added_pieces.tsv")
    assert len(added) == report["added"] > 1000
    assert [int(r["id"]) for r in added] == list(range(1000, report["vocab_size"]))
    assert all(r["origin"] == "trained" and int(r["formed"]) >= 1 for r in added)
    dropped = read_tsv(out / "dropped_pieces.tsv")
    assert sum(report["dropped"].values()) == len(dropped)

    # what the dataset job does with it
    tok = Tokenizer.from_str(resolve_tokenizer(str(out)))
    assert tok.get_vocab_size() == report["vocab_size"]
    assert tok.decode(tok.encode("人人有权享受教育。").ids) == "人人有权享受教育。"
    run = last_run(spark, lake)
    assert run["job"] == "expand_vocab" and run["status"] == "succeeded"


def test_neox_base_on_a_lake_table(spark, shared, tmp_path, capsys):
    lake, out = tmp_path / "lake", tmp_path / "out"
    rows = [{"text": r["text"], "language": "zh", "source": r["source"]} for r in zh_rows(shared, 100)]
    wiki = (shared / "data/text/wikitext2/valid.txt").read_text(encoding="utf-8").split("\n \n")[:60]
    rows += [{"text": t, "language": "en", "source": "wikitext"} for t in wiki if t.strip()]
    spark.createDataFrame(rows, "text string, language string, source string").write.format("delta").save(
        str(lake / "docs"))
    given = tmp_path / "pieces.jsonl"
    given.write_text('{"piece": "人工智能"}\n{"piece": "hello world"}\n', encoding="utf-8")
    code = expand_vocab.main(["--base", str(shared / "data/tokenizers/gpt-neox-20b/20B_tokenizer.json"),
                              "--text", "docs", "--lake", str(lake), "--out", str(out), "--add", str(given),
                              "--set", "add_mode=with_trained", "--set", "sample.languages=[zh]",
                              "--set", "candidates.vocab_size=3000", "--set", "sample.heldout_fraction=0.2"])
    assert code == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["base_kind"] == "hf-bpe" and report["base_vocab_size"] == 50281 and report["old_ids_unchanged"]
    assert set(report["heldout"]) == {"zh"}  # the English rows are not sampled
    assert report["heldout"]["zh"]["tokens_per_char_ratio"] < 0.9
    assert report["sample"]["languages"] == ["zh"]
    assert {p.name for p in (out / "base").iterdir()} == {"tokenizer.json"}
    assert (out / "base" / "tokenizer.json").read_bytes() == \
        (shared / "data/tokenizers/gpt-neox-20b/20B_tokenizer.json").read_bytes()
    dropped = {(r["text"], r["reason"]) for r in read_tsv(out / "dropped_pieces.tsv")}
    assert ("hello world", "splits") in dropped
    added = read_tsv(out / "added_pieces.tsv")
    assert [int(r["id"]) for r in added] == list(range(50281, report["vocab_size"]))
    run = last_run(spark, lake)
    assert run["status"] == "succeeded" and run["run_id"].endswith("-docs-v0")  # the table version it read
    assert [(t["name"], t["version"]) for t in run["inputs"] if t["name"] == "docs"] == [("docs", 0)]


def test_refused_requests(spark, shared, spm_base, jsonl_folder, tmp_path, capsys):
    lake = tmp_path / "lake"
    common = ["--out", str(tmp_path / "out"), "--lake", str(lake)]

    def refused(*argv: str) -> str:
        assert expand_vocab.main([*argv, *common]) == 2
        return capsys.readouterr().err

    text = ["--text", str(jsonl_folder)]
    err = refused("--base", str(tmp_path / "missing.model"), *text)
    assert err.startswith("error: base") and "no such file" in err
    err = refused("--base", spm_base, *text, "--set", "candidates.vocab_sise=10")
    assert "candidates.vocab_sise: unknown key" in err
    assert "no such file" in refused("--base", spm_base, "--text", str(tmp_path / "nothing"))
    assert "LANG=PATH" in refused("--base", spm_base, *text, "--eval-text", "wikitext")
    # found only once Spark reads it
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "data.bin.gz").write_bytes(b"\x00\x01")
    assert "no JSONL, JSON, parquet or text files" in refused("--base", spm_base, "--text", str(bad))
    (tmp_path / "notext.jsonl").write_text('{"body": "x"}\n', encoding="utf-8")
    assert "no column 'text'" in refused("--base", spm_base, "--text", str(tmp_path / "notext.jsonl"))
    (tmp_path / "broken.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    assert "cannot read it" in refused("--base", spm_base, "--text", str(tmp_path / "broken.jsonl.gz"))
    err = refused("--base", spm_base, *text, "--set", "sample.languages=[ko]")
    assert "empty sample" in err and "sample.languages ['ko']" in err
    assert "no Delta table" in refused("--base", spm_base, "--text", "documents")
    # a request refused is not a run: nothing recorded
    assert not (lake / "_runs").exists()
