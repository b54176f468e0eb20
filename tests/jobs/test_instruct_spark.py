"""jobs/instruct.py end to end on real Spark + Delta: the fixture files of tests/data/instruct (every
shape, broken rows, a corrupt .gz) imported with exact counts and reasons, then built as SFT (bfd and
pad) and DPO MDS and read back with streaming; one example carrying an evaluation question is dropped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jobs import instruct
from lakesift.chat import ChatTokenizer
from tests.conftest import REPO

pytestmark = pytest.mark.spark
DATA = REPO / "tests" / "data" / "instruct"
SEQ = 96
SFT_FILES = ["sft_openai.jsonl", "sft_sharegpt.jsonl", "sft_alpaca.parquet", "sft_misc.jsonl", "broken.jsonl.gz"]
SFT_REASONS = {"bad_json": 1, "empty_content": 1, "bad_role": 1, "last_turn_not_assistant": 1, "duplicate_id": 1,
               "unknown_shape": 1, "no_assistant_turn": 1, "bad_encoding": 1, "unreadable_file": 1}
PREF_REASONS = {"identical_pair": 1, "missing_rejected": 1, "bad_role": 1, "unknown_shape": 1, "empty_content": 1}


@pytest.fixture(scope="module")
def tok_dir(shared):
    return str(shared / "data" / "tokenizers" / "gpt-neox-20b")


@pytest.fixture(scope="module")
def eval_dir(shared):
    return shared / "data" / "eval" / "tests_small"


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory, eval_dir):
    root = tmp_path_factory.mktemp("lake")
    question = json.loads((eval_dir / "mmlu_small.jsonl").read_text().splitlines()[0])["query"]
    planted = root / "planted.jsonl"
    planted.write_text(json.dumps({"id": "planted-1", "messages": [
        {"role": "user", "content": "Help me with my homework."},
        {"role": "assistant", "content": "Sure: " + question.upper()}]}) + "\n")
    assert instruct.main(["import", "--kind", "sft", "--lake", str(root), "--input",
                          *[str(DATA / f) for f in SFT_FILES]]) == 0
    assert instruct.main(["import", "--kind", "sft", "--lake", str(root), "--input", str(planted),
                          "--source", "planted"]) == 0
    assert instruct.main(["import", "--kind", "preferences", "--lake", str(root), "--input", str(DATA / "prefs.jsonl"),
                          "--mode", "overwrite"]) == 0
    return root


def rejects(spark, lake, kind):
    df = spark.read.format("delta").load(str(lake / "instruct_rejects")).filter(f"kind = '{kind}'")
    return [r.asDict() for r in df.collect()]


def last_summary(spark, lake, job):
    rows = spark.read.format("delta").load(str(lake / "_runs")).filter(f"job = '{job}'").orderBy("finished_at").collect()
    return json.loads(rows[-1].summary_json)


def test_import_sft_counts_and_reasons(spark, lake):
    sft = spark.read.format("delta").load(str(lake / "sft_examples"))
    assert sft.count() == 10  # 9 of the fixtures + the planted one
    rej = rejects(spark, lake, "sft")
    got = {}
    for r in rej:
        got[r["reason"]] = got.get(r["reason"], 0) + 1
    assert got == SFT_REASONS
    summary = last_summary(spark, lake, "instruct_import")  # the last import: preferences
    assert summary["rows_read"] == summary["accepted"] + summary["rejected"] == 8 and summary["accepted"] == 3
    by = {(Path(r["file"]).name, r["row"]): r["reason"] for r in rej}
    assert by[("sft_openai.jsonl", 3)] == "bad_json" and by[("sft_openai.jsonl", 7)] == "duplicate_id"
    assert by[("sft_openai.jsonl", 9)] == "unknown_shape" and by[("broken.jsonl.gz", 1)] == "unreadable_file"
    assert by[("sft_misc.jsonl", 4)] == "bad_encoding"
    unknown = next(r for r in rej if r["reason"] == "unknown_shape")
    assert "foo" in unknown["raw"]
    rows = {r.id: r for r in sft.collect()}
    oa1 = rows["oa-1"]
    assert [m.role for m in oa1.messages] == ["system", "user", "assistant"] and oa1.round == 1
    assert json.loads(oa1.meta) == {"answer": "4"} and oa1.source == "sft_openai"
    alpaca = [r for r in rows.values() if r.source == "sft_alpaca"]
    assert sorted(r.messages[-2].content for r in alpaca) == ["Add the numbers.\n\n3 and 5", "Say something nice."]
    share = [r for r in rows.values() if r.source == "sft_sharegpt"]
    assert {m.role for r in share for m in r.messages} == {"system", "user", "assistant"}
    assert {r.source for r in rows.values()} == {"sft_openai", "sft_sharegpt", "sft_alpaca", "sft_misc",
                                                 "completions", "planted"}


def test_import_preferences(spark, lake):
    prefs = {r.id: r for r in spark.read.format("delta").load(str(lake / "preferences")).collect()}
    assert len(prefs) == 3
    got = {}
    for r in rejects(spark, lake, "preferences"):
        got[r["reason"]] = got.get(r["reason"], 0) + 1
    assert got == PREF_REASONS
    x = prefs["x-1"]  # the `reject` alias, strings
    assert x.source == "xubuvd" and [m.role for m in x.prompt] == ["user"] and x.rejected[0].content == "Go away."
    trl = next(r for r in prefs.values() if r.scorer)
    assert (trl.chosen_score, trl.rejected_score, trl.scorer, trl.round) == (9.0, 3.0, "rm-x", 1)
    implicit = next(r for r in prefs.values() if r.round == 2)
    assert [m.content for m in implicit.prompt] == ["2+3?"] and implicit.chosen[0].content == "5"


def read_mds(out):
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(out), shuffle=False, batch_size=1)
    return [ds[i] for i in range(ds.num_samples)]


def expected_targets(spark, lake, tok, ids):
    total = 0
    for r in spark.read.format("delta").load(str(lake / "sft_examples")).collect():
        if r.id in ids:
            _, m = tok.encode_sft([{"role": x.role, "content": x.content} for x in r.messages])
            m = m[:SEQ + 1]
            total += sum(m)
    return total


@pytest.mark.parametrize("packing", ["bfd", "pad"])
def test_build_sft(spark, lake, tok_dir, eval_dir, packing, tmp_path):
    out = tmp_path / f"sft-{packing}"
    assert instruct.main(["build", "--kind", "sft", "--lake", str(lake), "--out", str(out), "--tokenizer", tok_dir,
                          "--seq-len", str(SEQ), "--packing", packing, "--eval-dir", str(eval_dir)]) == 0
    man = json.loads((out / "manifest.json").read_text())
    c = man["counts"]
    assert man["kind"] == "sft" and man["template_source"] == "default" and man["packing"] == packing
    assert man["chat_template"] == ChatTokenizer.load(tok_dir).template and man["seq_len"] == SEQ
    assert c["examples_read"] == 10 and c["examples_written"] == 8 and c["truncated"] == 1
    assert c["rejected"] == {"contaminated": 1, "no_target_tokens": 1}
    rej = {r["id"]: r["reason"] for r in rejects(spark, lake, "build-sft") if r["run_id"] == man["run_id"]}
    assert rej == {"planted-1": "contaminated", "long-prompt": "no_target_tokens"}
    samples = read_mds(out)
    assert len(samples) == c["sequences"] and sum(int(s["n_examples"]) for s in samples) == 8
    if packing == "pad":
        assert c["sequences"] == 8
    else:
        assert c["sequences"] < 8
    tok = ChatTokenizer.load(tok_dir)
    written = {r.id for r in spark.read.format("delta").load(str(lake / "sft_examples")).collect()} - set(rej)
    assert sum(int(s["loss_mask"].sum()) for s in samples) == c["target_tokens"] == \
        expected_targets(spark, lake, tok, written)
    pads = 0
    for s in samples:
        t, m, st, pad = s["tokens"], s["loss_mask"], s["starts"], int(s["pad"])
        assert t.dtype == np.uint32 and m.dtype == np.uint8 and len(t) == len(m) == SEQ + 1
        assert st[0] == 0 and len(st) == int(s["n_examples"]) and np.all(np.diff(st) > 0)
        assert not m[st].any()
        if pad:
            assert np.all(t[-pad:] == tok.pad_id) and not m[-pad:].any()
        pads += pad
    assert pads == c["pad_tokens"] and c["tokens"] + c["pad_tokens"] == len(samples) * (SEQ + 1)


def test_build_dpo(spark, lake, tok_dir, eval_dir, tmp_path):
    out = tmp_path / "dpo"
    assert instruct.main(["build", "--kind", "dpo", "--lake", str(lake), "--out", str(out), "--tokenizer", tok_dir,
                          "--seq-len", str(SEQ), "--eval-dir", str(eval_dir), "--where", "round IS NULL OR round <= 2"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["kind"] == "dpo" and man["counts"]["examples_written"] == 3 and man["counts"]["rejected"] == {}
    tok = ChatTokenizer.load(tok_dir)
    prefs = {r.id: r for r in spark.read.format("delta").load(str(lake / "preferences")).collect()}
    samples = read_mds(out)
    assert sorted(s["pair_id"] for s in samples) == sorted(prefs)
    for s in samples:
        n, c, r = int(s["prompt_len"]), s["chosen"], s["rejected"]
        p = prefs[s["pair_id"]]
        prompt = [{"role": m.role, "content": m.content} for m in p.prompt]
        assert list(c[:n]) == list(r[:n]) == tok.encode_prompt(prompt)
        assert tok.decode(c[n:]).startswith(p.chosen[0].content) and tok.decode(r[n:]).startswith(p.rejected[0].content)
        assert c.dtype == np.uint32 and len(c) <= SEQ + 1


def test_refused_requests(lake, tok_dir, tmp_path, capsys):
    assert instruct.main(["import", "--kind", "sft", "--lake", str(lake), "--input", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert instruct.main(["build", "--kind", "sft", "--lake", str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                          "--tokenizer", tok_dir, "--eval-dir", str(tmp_path)]) == 2
    assert "no Delta table" in capsys.readouterr().err
    assert instruct.main(["frobnicate"]) == 2
