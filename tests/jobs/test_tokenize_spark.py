"""jobs/tokenize.py on real Spark + Delta + mosaicml-streaming: round trip, counts, mixing,
decontamination, determinism."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from jobs import tokenize as tokenize_job
from tests.conftest import REPO

pytestmark = pytest.mark.spark
SEQ = 128  # sequences of 129 tokens: many sequences from a small corpus


def _chunks(path: Path, size: int) -> list[str]:
    from udfs.quality import split_units

    return split_units(path.read_text(encoding="utf-8"), "chunk", size, 100)


@pytest.fixture(scope="module")
def planted(shared):
    row = json.loads((shared / "data" / "eval" / "commonsense_reasoning" / "piqa.jsonl").read_text().splitlines()[7])
    return row["choices"][row["gold"]]


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory, shared, planted):
    lake = tmp_path_factory.mktemp("lake")
    wiki = _chunks(REPO / "sample" / "text" / "hq" / "wikipedia.txt", 1500)[:80]
    speeches = _chunks(REPO / "sample" / "text" / "hq" / "state_union.txt", 1500)[:40]
    # one document carries an evaluation example, re-cased and re-punctuated
    wiki[5] = wiki[5] + "\n" + planted.upper().replace(",", " ,")
    for name, texts in (("wiki", wiki), ("speeches", speeches)):
        rows = [(f"{name}-{i:04d}", t) for i, t in enumerate(texts)]
        spark.createDataFrame(rows, "doc_id string, text string").write.format("delta").save(str(lake / name))
    conf = lake / "tok.yaml"
    conf.write_text(f"""name: test
sources:
  - {{name: wiki, table: wiki, frequency: 1.0}}
  - {{name: speeches, table: speeches, frequency: 2.5}}
decontamination:
  eval_dir: {shared / "data" / "eval"}
  tasks: ["commonsense_reasoning/piqa.jsonl", "commonsense_reasoning/copa.jsonl"]
packing: {{seq_len: {SEQ}, remainder: drop, groups: 3}}
shuffle: {{seed: 7, sequences_per_group: 150}}
output: {{size_limit: 40kb}}
""")
    tok = shared / "data" / "tokenizers" / "gpt-neox-20b" / "20B_tokenizer.json"
    for out in ("ds", "ds_again"):
        assert tokenize_job.main(["--config", str(conf), "--lake", str(lake), "--out", str(lake / out),
                                  "--tokenizer", str(tok)]) == 0
    return lake, {"wiki": wiki, "speeches": speeches}, tok


def read_shards(out: Path) -> list[dict]:
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(out), shuffle=False, batch_size=1)
    return [ds[i] for i in range(ds.num_samples)]


def test_streaming_reads_it_and_counts_match_the_manifest(lake):
    root, _, _ = lake
    samples = read_shards(root / "ds")
    manifest = json.loads((root / "ds" / "manifest.json").read_text())
    assert manifest["sequences"] == len(samples) > 100
    assert manifest["tokens"] == len(samples) * (SEQ + 1)
    assert manifest["shards"] == len(json.loads((root / "ds" / "index.json").read_text())["shards"]) > 1
    by_source = defaultdict(int)
    for s in samples:
        assert s["tokens"].dtype == np.uint16 and s["tokens"].shape == (SEQ + 1,)
        by_source[s["source"]] += 1
    assert {k: v["sequences_written"] for k, v in manifest["sources"].items()} == dict(by_source)


def test_round_trip_gives_back_every_documents_tokens(lake, spark):
    from pyspark.sql import functions as F

    from udfs.tokenizing import load_tokenizer

    root, texts, tok_path = lake
    manifest = json.loads((root / "ds" / "manifest.json").read_text())
    tok = load_tokenizer(tok_path.read_text())
    eos = manifest["tokenizer"]["eos_id"]
    # undo the shuffle: one copy of each sequence, by (source, group, index) from its seq_id
    seqs = {}
    for s in read_shards(root / "ds"):
        seqs[int(s["seq_id"])] = s["tokens"].astype(np.int64)
    got = defaultdict(list)
    for sid in sorted(seqs):
        got[(sid >> 48, (sid >> 32) & 0xFFFF)].append(seqs[sid])
    for src_i, (name, docs) in enumerate(texts.items()):
        ids = [f"{name}-{i:04d}" for i in range(len(docs))]
        groups = {r.doc_id: r.g for r in spark.createDataFrame([(i,) for i in ids], "doc_id string")
                  .select("doc_id", F.pmod(F.xxhash64("doc_id"), F.lit(3)).alias("g")).collect()}
        for g in range(3):
            members = sorted(i for i in ids if groups[i] == g and i != "wiki-0005")  # 0005: contaminated
            stream = [t for i in members for t in tok.encode(docs[int(i[-4:])], add_special_tokens=False).ids + [eos]]
            full = len(stream) // (SEQ + 1) * (SEQ + 1)  # the stated rule: the tail of a group is dropped
            have = np.concatenate(got[(src_i, g)]) if got[(src_i, g)] else np.zeros(0, np.int64)
            assert have.tolist() == stream[:full], (name, g)
            assert manifest["sources"][name]["dropped_tail_tokens"] >= len(stream) - full


def test_mixing_frequency_is_met(lake):
    root, _, _ = lake
    src = json.loads((root / "ds" / "manifest.json").read_text())["sources"]
    assert src["wiki"]["sequences_written"] == src["wiki"]["sequences"]
    ratio = src["speeches"]["sequences_written"] / src["speeches"]["sequences"]
    assert 2.0 <= ratio <= 3.0 and abs(ratio - 2.5) < 0.2, ratio


def test_planted_eval_example_is_caught(lake):
    root, texts, _ = lake
    d = json.loads((root / "ds" / "manifest.json").read_text())["decontamination"]
    assert d["enabled"] and d["documents_flagged"] == 1
    piqa = next(t for t in d["tasks"] if t["task"].endswith("piqa"))
    assert piqa["examples_found"] >= 1 and piqa["documents_touched"] == 1
    src = json.loads((root / "ds" / "manifest.json").read_text())["sources"]
    assert src["wiki"]["documents"] == len(texts["wiki"]) - 1


def test_same_config_gives_byte_identical_shards(lake):
    root, _, _ = lake
    a = sorted(p.relative_to(root / "ds") for p in (root / "ds").rglob("*") if p.is_file())
    b = sorted(p.relative_to(root / "ds_again") for p in (root / "ds_again").rglob("*") if p.is_file())
    assert a == b
    for rel in a:
        if rel.name != "manifest.json":  # the manifest records its creation time
            assert (root / "ds" / rel).read_bytes() == (root / "ds_again" / rel).read_bytes(), rel


def test_datasets_table_has_the_run(lake, spark):
    root, _, _ = lake
    rows = spark.read.format("delta").load(str(root / "datasets")).collect()
    assert len(rows) == 1 and rows[0].seq_len == SEQ and rows[0].dtype == "uint16"  # rerun replaced, not added


def test_refuses_to_clear_a_foreign_folder(lake, tmp_path, capsys):
    root, _, tok = lake
    (tmp_path / "precious.txt").write_text("keep me")
    rc = tokenize_job.main(["--config", str(root / "tok.yaml"), "--lake", str(root), "--out", str(tmp_path),
                            "--tokenizer", str(tok)])
    assert rc == 2 and "is not a Lakesift dataset" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").exists()
