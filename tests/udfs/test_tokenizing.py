"""Packing, mixing and decontamination logic without Spark."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lakesift.config import ConfigError, load_model
from udfs import decontam as D
from udfs.tokenizing import TokenizeConfig, frequencies, pack, repeats


def test_pack_drop_and_pad():
    docs = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    out = list(pack(docs, 4, "drop", 0))
    assert [s.tolist() for s, _, _ in out[:2]] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert out[2][0] is None and out[2][2] == 1  # the tail token 9 is dropped, and counted
    padded = list(pack(docs, 4, "pad", 0))
    assert padded[-1][0].tolist() == [9, 0, 0, 0] and padded[-1][1] == 3
    assert list(pack([[1, 2, 3, 4]], 4, "drop", 0))[-1][0].tolist() == [1, 2, 3, 4]  # exact fit: no tail row
    assert list(pack([], 4, "drop", 0)) == []


def test_repeats_follow_dclm_semantics():
    assert [repeats(2.5, u) for u in (0.0, 0.49, 0.5, 0.99)] == [3, 3, 2, 2]
    assert repeats(0.0, 0.0) == 0 and repeats(1.0, 0.999) == 1
    rng = np.random.default_rng(0)
    assert np.mean([repeats(0.3, u) for u in rng.random(20000)]) == pytest.approx(0.3, abs=0.01)


def test_proportions_and_weights_file(tmp_path):
    cfg = load_model(TokenizeConfig, None, {
        "sources": [{"name": "a", "table": "t1"}, {"name": "b", "table": "t2"}],
        "mixing": {"mode": "proportions", "proportions": {"a": 3, "b": 1}}})
    f = frequencies(cfg, {"a": 100, "b": 300})
    assert f == pytest.approx({"a": 3.0, "b": 1 / 3})  # 300 of 400 tokens from a, 100 from b
    w = tmp_path / "doremi.json"
    w.write_text(json.dumps({"weights": {"a": 0.5, "b": 0.5}}))
    cfg2 = cfg.model_copy(update={"mixing": cfg.mixing.model_copy(update={"weights_file": str(w), "proportions": None})})
    assert frequencies(cfg2, {"a": 100, "b": 300}) == pytest.approx({"a": 2.0, "b": 2 / 3})
    w.write_text(json.dumps({"c": 1.0}))
    with pytest.raises(ValueError, match="unknown sources"):
        frequencies(cfg2, {"a": 1, "b": 1})
    with pytest.raises(ConfigError, match="duplicate source names"):
        load_model(TokenizeConfig, None, {"sources": [{"name": "a", "table": "x"}, {"name": "a", "table": "y"}]})
    with pytest.raises(ConfigError, match="seq_lne"):
        load_model(TokenizeConfig, None, {"sources": [{"name": "a", "table": "x"}], "packing": {"seq_lne": 5}})


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
