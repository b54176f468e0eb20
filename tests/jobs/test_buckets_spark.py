"""Bucketed preparation in the dataset job (``buckets``: Colossal-LLaMA-2's buckets, lakesift/stages.py) on
real Spark + Delta + mosaicml-streaming, with a tokenizer of more than 65,536 ids (uint32 shards): every
bucket holds the same mix, no token is lost, document starts are right, the stage manifest is readable."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from jobs.dataset import main as dataset_job
from tests.conftest import REPO

pytestmark = pytest.mark.spark
SEQ, GROUPS, BUCKETS = 64, 2, 3


@pytest.fixture(scope="module")
def big_tokenizer(shared, tmp_path_factory) -> Path:
    """GPT-NeoX plus 16,000 CJK characters as added tokens: 66,277 ids, Chinese text above 65,535."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(shared / "data" / "tokenizers" / "gpt-neox-20b" / "20B_tokenizer.json"))
    tok.add_tokens([chr(c) for c in range(0x4E00, 0x4E00 + 16000)])
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory, shared, big_tokenizer):
    from udfs.quality_train import split_units

    lake = tmp_path_factory.mktemp("lake")
    en = split_units((REPO / "sample" / "text" / "hq" / "wikipedia.txt").read_text(encoding="utf-8"),
                     "chunk", 400, 100)[:45]
    with gzip.open(shared / "data" / "zh" / "text" / "fortunes-zh.jsonl.gz", "rt", encoding="utf-8") as f:
        zh = [json.loads(line)["text"] for _, line in zip(range(100), f, strict=False)]
    for name, texts in (("en", en), ("zh", zh)):
        rows = [(f"{name}-{i:04d}", t) for i, t in enumerate(texts)]
        spark.createDataFrame(rows, "doc_id string, text string").write.format("delta").save(str(lake / name))
    conf = lake / "buckets.yaml"
    conf.write_text(f"""name: buckets
sources:
  - {{name: en, table: en}}
  - {{name: zh, table: zh}}
decontamination: {{enabled: false}}
packing: {{seq_len: {SEQ}, groups: {GROUPS}}}
shuffle: {{seed: 3, sequences_per_group: 40}}
output: {{size_limit: 40kb}}
buckets:
  count: {BUCKETS}
  stages:
    - {{name: embed, buckets: [0], freeze: new_rows, steps: 4}}
    - {{name: full, buckets: [1, 2], optimizer: keep}}
    - {{name: replay, buckets: [2], replay: [{{path: ../other, weight: 0.25}}]}}
""")
    assert dataset_job.main(["--config", str(conf), "--lake", str(lake), "--out", str(lake / "ds"),
                             "--tokenizer", str(big_tokenizer)]) == 0
    return lake, {"en": en, "zh": zh}


def samples_of(folder: Path) -> list[dict]:
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(folder), shuffle=False, batch_size=1)
    return [ds[i] for i in range(ds.num_samples)]


def test_deal_gives_every_bucket_the_same_mix(spark):
    from jobs.dataset.pack import deal_buckets

    rows = [(f"d{i}", "a" if i % 3 else "b", "x" * (i * 7919 % 500)) for i in range(301)]
    schema = "doc_id string, domain string, text string"
    df = deal_buckets(spark.createDataFrame(rows, schema), 4, seed=1)
    counts = defaultdict(dict)
    for r in df.groupBy("domain", "bucket").count().collect():
        counts[r.domain][r.bucket] = r["count"]
    for dom, per in counts.items():
        assert sorted(per) == [0, 1, 2, 3] and max(per.values()) - min(per.values()) <= 1, (dom, per)
    chars = defaultdict(lambda: defaultdict(int))
    for r in df.collect():
        chars[r.domain][r.bucket] += len(r.text)
    for dom, per in chars.items():  # about the same text: to one document's length
        assert max(per.values()) - min(per.values()) <= 500, (dom, dict(per))
    again = {r.doc_id: r.bucket for r in deal_buckets(spark.createDataFrame(rows, schema), 4, seed=1).collect()}
    assert again == {r.doc_id: r.bucket for r in df.collect()}  # deterministic


def test_no_token_lost_and_starts_mark_the_documents(lake, big_tokenizer):
    from tokenizers import Tokenizer

    root, texts = lake
    tok = Tokenizer.from_file(str(big_tokenizer))
    eos = tok.token_to_id("<|endoftext|>")
    samples = samples_of(root / "ds")
    assert samples and all(s["tokens"].dtype == np.uint32 for s in samples)
    # every document's tokens + EOS, in each (source, group)'s doc-id order, come back from the sequences
    # of that group in seq_index order once the padding is cut, and the starts are the documents' starts
    groups: dict[tuple[int, int], list] = defaultdict(list)
    for s in samples:
        sid = int(s["seq_id"])
        groups[(sid >> 48, (sid >> 32) & 0xFFFF)].append((sid & 0xFFFFFFFF, s))
    n_tokens = sum(len(s["tokens"]) - int(s["pad"]) for s in samples)
    expected = sum(len(tok.encode(t, add_special_tokens=False).ids) + 1 for ts in texts.values() for t in ts)
    assert n_tokens == expected  # nothing dropped
    assert sum(1 for s in samples if s["pad"]) <= len(groups)  # at most one padded tail per packing group
    for seqs in groups.values():
        seqs.sort(key=lambda x: x[0])
        assert [i for i, _ in seqs] == list(range(len(seqs)))
        stream = np.concatenate([s["tokens"][:len(s["tokens"]) - int(s["pad"])] for _, s in seqs])
        bounds = sorted({i * (SEQ + 1) + int(p) for i, (_, s) in enumerate(seqs) for p in s["starts"]})
        doc_starts = [0] + [i + 1 for i in np.flatnonzero(stream == eos)[:-1]]
        seq_starts = [i * (SEQ + 1) for i in range(len(seqs))]
        tail = [len(stream)] if seqs[-1][1]["pad"] else []
        assert bounds == sorted(set(doc_starts) | set(seq_starts) | set(tail))
        assert stream[-1] == eos
    assert max(int(s["tokens"].max()) for s in samples) > 65535  # the expanded ids survive


def test_each_bucket_has_its_dataset_and_the_same_mix(lake, big_tokenizer):
    from tokenizers import Tokenizer

    root, texts = lake
    tok = Tokenizer.from_file(str(big_tokenizer))
    m = json.loads((root / "ds" / "manifest.json").read_text())
    b = m["buckets"]
    assert b["count"] == BUCKETS and m["remainder"] == "pad"
    total = 0
    for i in range(BUCKETS):
        info = b["buckets"][str(i)]
        assert info["folder"] == f"buckets/bucket-{i:03d}"
        got = samples_of(root / "ds" / info["folder"])
        assert len(got) == info["sequences"] > 0
        assert {s["source"] for s in got} == {"en", "zh"} == set(info["domains"])
        total += len(got)
    assert total == m["sequences"]
    for dom in ("en", "zh"):  # a domain's text spreads evenly: to one document's length, plus the tails
        per = [b["buckets"][str(i)]["domains"][dom] for i in range(BUCKETS)]
        longest = max(len(tok.encode(t).ids) + 1 for t in texts[dom])
        assert max(per) - min(per) <= longest / (SEQ + 1) + 2 * GROUPS, (dom, per)


def test_stage_manifest_reads_back(lake):
    from lakesift.stages import load

    root, _ = lake
    sm = load(root / "ds" / "stages.yaml")
    assert [s.name for s in sm.stages] == ["embed", "full", "replay"]
    assert sm.stages[0].freeze == "new_rows" and sm.stages[1].optimizer == "keep"
    specs = sm.specs(sm.stages[2], str(root / "ds"))
    assert specs[0].startswith(str(root / "ds" / "buckets" / "bucket-002") + ":")
    assert specs[1] == f"{root / 'ds'}/../other:0.250000000000"
    assert sm.samples(sm.stages[1]) == sm.buckets[1].sequences + sm.buckets[2].sequences


@pytest.mark.parametrize("extra, message", [
    ("packing: {seq_len: 64, remainder: drop}\nbuckets: {count: 2}", "lose no token"),
    ("buckets: {count: 2, stages: [{name: a, buckets: [5]}]}", "names buckets [5]"),
    ("buckets: {stages: [{name: a}]}", "needs buckets.count"),
])
def test_bucket_config_errors(tmp_path, capsys, shared, extra, message):
    conf = tmp_path / "c.yaml"
    conf.write_text("name: x\nsources: [{name: a, table: a}]\n" + extra + "\n")
    assert dataset_job.main(["--config", str(conf), "--lake", str(tmp_path), "--out", str(tmp_path / "o"),
                             "--tokenizer", str(shared / "data/tokenizers/gpt-neox-20b/20B_tokenizer.json")]) == 2
    assert message in capsys.readouterr().err
