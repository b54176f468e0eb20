"""The dataset job (jobs/dataset/, old path jobs/tokenize.py) on real Spark + Delta + mosaicml-streaming:
round trip, counts, mixing, decontamination, determinism, the run log; its entry points as commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from jobs import tokenize as tokenize_job  # the old path, kept for users and notebooks
from jobs.dataset import main as dataset_job
from tests.conftest import REPO

pytestmark = pytest.mark.spark
SEQ = 128  # sequences of 129 tokens: many sequences from a small corpus


def _chunks(path: Path, size: int) -> list[str]:
    from udfs.quality_train import split_units

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
    # the new entry point, then the old one: the same job, the same bytes
    for job, out in ((dataset_job, "ds"), (tokenize_job, "ds_again")):
        assert job.main(["--config", str(conf), "--lake", str(lake), "--out", str(lake / out),
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


def test_run_log_names_the_job_tokenize_and_the_pinned_inputs(lake, spark):
    root, _, _ = lake
    manifest = json.loads((root / "ds" / "manifest.json").read_text())
    runs = [r for r in spark.read.format("delta").load(str(root / "_runs")).collect() if r.job == "tokenize"]
    assert len(runs) == 2 and {r.run_id for r in runs} == {manifest["run_id"]}  # jobs/report.py finds it so
    # several input tables: their versions are folded into the fingerprint (jobs.common.runs.run_id)
    assert re.fullmatch(r"tokenize-test-[0-9a-f]{10}", manifest["run_id"]), manifest["run_id"]
    r = runs[0]
    assert r.status == "succeeded" and r.argv[0] == "jobs/dataset/main.py"
    assert [(t.name, t.uri, t.version) for t in r.inputs] == [("wiki", str(root / "wiki"), 0),
                                                               ("speeches", str(root / "speeches"), 0)]
    assert {t.name for t in r.outputs} == {"mds", "datasets"}
    assert json.loads(r.summary_json)["sequences"] == manifest["sequences"]
    assert json.loads(r.config_json)["resolved"]["output"]["format"] == "mds"


def test_refuses_to_clear_a_foreign_folder(lake, tmp_path, capsys):
    root, _, tok = lake
    (tmp_path / "precious.txt").write_text("keep me")
    rc = dataset_job.main(["--config", str(root / "tok.yaml"), "--lake", str(root), "--out", str(tmp_path),
                           "--tokenizer", str(tok)])
    assert rc == 2 and "is not a Lakesift dataset" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").exists()


def test_a_missing_source_table_is_a_usage_error(lake, tmp_path, capsys):
    root, _, tok = lake
    conf = tmp_path / "missing.yaml"
    conf.write_text((root / "tok.yaml").read_text().replace("table: speeches", "table: nosuch"))
    rc = dataset_job.main(["--config", str(conf), "--lake", str(root), "--out", str(tmp_path / "out"),
                           "--tokenizer", str(tok)])
    assert rc == 2 and f"no Delta table at {root / 'nosuch'} (source speeches)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- checked before Spark starts: exit 2, the key named

@pytest.mark.parametrize("extra, message", [
    (["--set", "output.format=parquet"], "output.format: Value error, unknown output format 'parquet'"),
    (["--set", "packing.seq_lne=5"], "packing.seq_lne: unknown key"),
    (["--tokenizer", "/nonexistent/tok.json"], "not found: /nonexistent/tok.json"),
    (["--eval-dir", "/nonexistent/eval"], "decontamination: no task files matching"),
    (["--set", "mixing={mode: proportions, proportions: {nosuch: 1}}"], "proportions name unknown sources"),
    (["--set", "output.dtype=uint8"], "output.dtype: Input should be 'auto', 'uint16' or 'uint32'"),
])
def test_config_errors_exit_2_before_spark(tmp_path, capsys, shared, extra, message):
    conf = tmp_path / "c.yaml"
    conf.write_text("sources: [{name: a, table: a}]\n")
    tok = shared / "data" / "tokenizers" / "gpt-neox-20b" / "20B_tokenizer.json"
    rc = dataset_job.main(["--config", str(conf), "--lake", str(tmp_path), "--out", str(tmp_path / "out"),
                           "--tokenizer", str(tok), *extra])
    assert rc == 2 and message in capsys.readouterr().err


# -- the commands: the old path, the new ones, and no job file shadowing the standard library

def _run(*cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    for k in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET"):
        env.pop(k, None)
    return subprocess.run(list(cmd), cwd=REPO, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("cmd", [["jobs/tokenize.py"], ["-m", "jobs.dataset"], ["jobs/dataset/main.py"]])
def test_old_and_new_commands_run_the_job(cmd):
    proc = _run(sys.executable, *cmd, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: jobs/dataset/main.py") and "--eval-dir" in proc.stdout
    bad = _run(sys.executable, *cmd, "--out", "x", "--set", "output.format=nosuch")  # the job's own check
    assert bad.returncode == 2 and "unknown output format 'nosuch'" in bad.stderr, bad.stderr[-2000:]


def test_spark_submit_runs_the_old_path():
    submit = Path(sys.executable).parent / "spark-submit"
    proc = _run(str(submit), "jobs/tokenize.py", "--help",
                env={"PATH": f"{submit.parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert proc.returncode == 0 and proc.stdout.startswith("usage: jobs/dataset/main.py"), proc.stderr[-2000:]


def test_no_file_under_jobs_shadows_the_standard_library():
    # another job run as a file: jobs/ is sys.path[0] and its imports reach the stdlib's tokenize
    proc = _run(sys.executable, "jobs/filter.py", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: jobs/filter.py"), proc.stderr[-2000:]
    # what `python jobs/<any>.py` does to imports, checked directly: jobs/ ahead of the standard library
    code = ("import inspect, linecache, sys, tokenize, traceback; import jobs.tokenize as old; "
            "print(tokenize.__file__); print(sys.modules['tokenize'] is tokenize, hasattr(tokenize, 'generate_tokens'), "
            "callable(old.main), bool(traceback.format_stack()), bool(inspect.getsource(inspect.getsource)))")
    proc = _run(sys.executable, "-c", code, env={"PYTHONPATH": os.pathsep.join([str(REPO / "jobs"), str(REPO)])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    path, flags = proc.stdout.splitlines()
    assert Path(path) == Path(sysconfig.get_path("stdlib")) / "tokenize.py" and flags == "True True True True True"
