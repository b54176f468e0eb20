"""Packing, mixing, tokenizer resolution, decontamination and the MDS writer without Spark."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.dataset.config import DatasetConfig
from lakesift.config import ConfigError, load_model
from lakesift.resolve import ResolveError
from udfs import decontam as D
from udfs.tokenizing import frequencies, pack, repeats, resolve_tokenizer, tokenizer_info


def test_pack_drop_and_pad():
    docs = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    out = list(pack(docs, 4, "drop", 0))
    assert [s.tolist() for s, _, _ in out[:2]] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert out[2][0] is None and out[2][2] == 1  # the tail token 9 is dropped, and counted
    padded = list(pack(docs, 4, "pad", 0))
    assert padded[-1][0].tolist() == [9, 0, 0, 0] and padded[-1][1] == 3
    assert list(pack([[1, 2, 3, 4]], 4, "drop", 0))[-1][0].tolist() == [1, 2, 3, 4]  # exact fit: no tail row
    assert list(pack([], 4, "drop", 0)) == []


def test_a_packing_groups_batch_carries_its_counts_on_the_first_row():
    from jobs.dataset.pack import packed_batch

    b = packed_batch(("web", 2), [[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4, "drop", 0).to_pydict()
    assert b["tokens"] == [[1, 2, 3, 4], [5, 6, 7, 8], None] and b["dropped"] == [0, 0, 1]
    assert b["seq_index"] == [0, 1, 2] and b["source"] == ["web"] * 3 and b["grp"] == [2] * 3
    assert b["docs"] == [3, 0, 0] and b["group_tokens"] == [9, 0, 0]
    short = packed_batch(("web", 0), [[1]], 4, "drop", 0).to_pydict()  # shorter than one sequence: counted
    assert short["tokens"] == [None] and short["docs"] == [1] and short["group_tokens"] == [1]
    assert packed_batch(("web", 0), [[1]], 4, "pad", 9).to_pydict()["tokens"] == [[1, 9, 9, 9]]


def test_repeats_follow_dclm_semantics():
    assert [repeats(2.5, u) for u in (0.0, 0.49, 0.5, 0.99)] == [3, 3, 2, 2]
    assert repeats(0.0, 0.0) == 0 and repeats(1.0, 0.999) == 1
    rng = np.random.default_rng(0)
    assert np.mean([repeats(0.3, u) for u in rng.random(20000)]) == pytest.approx(0.3, abs=0.01)


def test_proportions_and_weights_file(tmp_path):
    cfg = load_model(DatasetConfig, None, {
        "sources": [{"name": "a", "table": "t1"}, {"name": "b", "table": "t2"}],
        "mixing": {"mode": "proportions", "proportions": {"a": 3, "b": 1}}})
    f = frequencies(cfg.sources, cfg.mixing, {"a": 100, "b": 300})
    assert f == pytest.approx({"a": 3.0, "b": 1 / 3})  # 300 of 400 tokens from a, 100 from b
    w = tmp_path / "doremi.json"
    w.write_text(json.dumps({"weights": {"a": 0.5, "b": 0.5}}))
    cfg2 = cfg.model_copy(update={"mixing": cfg.mixing.model_copy(update={"weights_file": str(w), "proportions": None})})
    assert frequencies(cfg2.sources, cfg2.mixing, {"a": 100, "b": 300}) == pytest.approx({"a": 2.0, "b": 2 / 3})
    w.write_text(json.dumps({"c": 1.0}))
    with pytest.raises(ValueError, match="unknown sources"):
        frequencies(cfg2.sources, cfg2.mixing, {"a": 1, "b": 1})
    with pytest.raises(ConfigError, match="duplicate source names"):
        load_model(DatasetConfig, None, {"sources": [{"name": "a", "table": "x"}, {"name": "a", "table": "y"}]})
    with pytest.raises(ConfigError, match="seq_lne"):
        load_model(DatasetConfig, None, {"sources": [{"name": "a", "table": "x"}], "packing": {"seq_lne": 5}})


def test_ngrams_ignore_case_and_punctuation_and_never_span_fields(tmp_path):
    a = D.ngram_hashes(D.words("The quick, brown fox -- jumps!"), 3)
    b = D.ngram_hashes(D.words("the QUICK brown fox jumps"), 3)
    assert a.tolist() == b.tolist() and len(a) == 3
    assert len(D.ngram_hashes(D.words("two words"), 3)) == 0
    task = tmp_path / "t.jsonl"
    task.write_text(json.dumps({"query": "alpha beta gamma", "choices": ["delta epsilon zeta eta", "no"]}) + "\n"
                    + json.dumps({"context": "short"}) + "\nnot json\n")
    idx = D.EvalIndex.build([("t", task)], n=3)
    assert idx.examples == [2] and idx.too_short == [1]
    assert idx.match("x Delta, epsilon ZETA y")[0] == 1
    assert idx.match("alpha beta gamma")[1] == [(0, 0)]
    assert idx.match("gamma delta epsilon")[0] == 0  # query + choice joined is not an eval n-gram
    path = str(tmp_path / "idx.npz")
    idx.save(path)
    again = D.EvalIndex.load(path)
    assert again.tasks == ["t"] and np.array_equal(again.hashes, idx.hashes)


def test_output_format_is_checked_against_the_writers():
    cfg = load_model(DatasetConfig, None, {"sources": [{"name": "a", "table": "x"}]})
    assert cfg.output.format == "mds"
    with pytest.raises(ConfigError, match=r"output\.format: .*unknown output format 'parquet' \(known: mds\)"):
        load_model(DatasetConfig, None, {"sources": [{"name": "a", "table": "x"}], "output": {"format": "parquet"}})


@pytest.fixture(scope="module")
def neox(shared):
    return shared / "data" / "tokenizers" / "gpt-neox-20b" / "20B_tokenizer.json"


def test_resolve_tokenizer_file_folder_uri_and_hub_id(tmp_path, neox, monkeypatch):
    text = neox.read_text(encoding="utf-8")
    assert resolve_tokenizer(str(neox)) == text
    assert resolve_tokenizer(neox.as_uri()) == text  # file:///…
    assert resolve_tokenizer(str(neox.parent)) == text  # a folder with only *tokenizer.json (20B_tokenizer.json)
    both = tmp_path / "both"
    both.mkdir()
    (both / "a_tokenizer.json").write_text("other")
    (both / "tokenizer.json").write_text("wanted")
    assert resolve_tokenizer(str(both)) == "wanted"  # tokenizer.json first
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResolveError, match="no tokenizer.json in"):
        resolve_tokenizer(str(tmp_path / "empty"))
    with pytest.raises(ResolveError, match="not found: .*missing.json"):
        resolve_tokenizer(str(tmp_path / "missing.json"))
    # a bare hub id still goes to the hub for the repository's tokenizer.json (no network here)
    import lakesift.resolve as R

    asked = []
    monkeypatch.setattr(R, "_hub", lambda spec, what, file: asked.append((spec, what, file)) or str(neox))
    assert resolve_tokenizer("EleutherAI/gpt-neox-20b") == text
    assert resolve_tokenizer("hf://EleutherAI/gpt-neox-20b") == text
    assert asked == [("EleutherAI/gpt-neox-20b", "tokenizer", "tokenizer.json"),
                     ("hf://EleutherAI/gpt-neox-20b", "tokenizer", "tokenizer.json")]


def test_tokenizer_info(neox):
    info = tokenizer_info(neox.read_text(encoding="utf-8"), "<|endoftext|>")
    assert info["eos_id"] == 0 and 50000 < info["vocab_size"] <= 65536 and len(info["sha1"]) == 12
    with pytest.raises(ValueError, match="tokenizer has no token '<eos>'"):
        tokenizer_info(neox.read_text(encoding="utf-8"), "<eos>")


def test_mds_writer_groups_merge_into_one_dataset(tmp_path):
    import pickle

    from streaming import StreamingDataset

    from jobs.dataset.writers import WRITERS

    cfg = load_model(DatasetConfig, None, {"sources": [{"name": "a", "table": "x"}], "output": {"size_limit": 1000}})
    cls = WRITERS[cfg.output.format]
    assert cls.columns("uint16", 5, True) == {"tokens": "ndarray:uint16:5", "seq_id": "int64", "source": "str"}
    assert cls.columns("uint32", 5, False) == {"tokens": "ndarray:uint32:5"}
    driver = cls(str(tmp_path / "out") + "/", cfg.output, "uint16", 5)
    w = pickle.loads(pickle.dumps(driver))  # what a write task gets
    seqs = {0: [[1, 2, 3, 4, 5]] * 30, 3: [[6, 7, 8, 9, 10]] * 20}
    for g, rows in seqs.items():
        w.open(g)
        for i, toks in enumerate(rows):
            w.write({"tokens": np.asarray(toks, dtype="uint16"), "seq_id": g * 100 + i, "source": "a"})
        assert w.close() == len(rows)
    facts = driver.finalize([3, 0])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["group-00000", "group-00003", "index.json"]
    ds = StreamingDataset(local=str(tmp_path / "out"), shuffle=False, batch_size=1)
    assert ds.num_samples == 50 and facts["shards"] == len(json.loads((tmp_path / "out" / "index.json").read_text())["shards"]) > 2
    assert ds[0]["tokens"].tolist() == [1, 2, 3, 4, 5] and ds[49]["seq_id"] == 319
