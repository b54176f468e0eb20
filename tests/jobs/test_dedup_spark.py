"""jobs/dedup/ on real Spark + Delta: a corpus of real text with planted exact and near duplicates
at known edit rates, checked against brute-force Jaccard; the pinned read; the method registry; the
command paths (a file run as a script, spark-submit with only the code archive)."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import dedup as dedup_job
from jobs.dedup.components import connected_components
from tests.conftest import REPO
from udfs import dedup as D

pytestmark = pytest.mark.spark


def _edit(text: str, rate: float, rng: random.Random) -> str:
    words = text.split()
    for i in range(len(words)):
        if rng.random() < rate:
            words[i] = rng.choice(["alpha", "beta", "gamma", "delta", "omega"]) + str(rng.randint(0, 99))
    return " ".join(words)


def _shingles(text):
    return D.shingle_set(text, 5)


@pytest.fixture(scope="module")
def corpus(spark, tmp_path_factory):
    from udfs.quality_train import split_units

    rng = random.Random(11)
    base = split_units((REPO / "sample" / "text" / "hq" / "wikipedia.txt").read_text(), "chunk", 800, 300)[:150]
    docs = {f"b{i:04d}": t for i, t in enumerate(base)}
    planted = {}
    for j, rate in enumerate([0.0, 0.01, 0.02, 0.05, 0.10, 0.30] * 6):
        src = f"b{rng.randrange(len(base)):04d}"
        planted[f"n{j:04d}"] = (src, rate)
        docs[f"n{j:04d}"] = _edit(docs[src], rate, rng) if rate else docs[src]
    docs["s0001"], docs["s0002"], docs["s0003"] = "Hello world.", "hello, WORLD", "Another short one"
    docs["e0001"] = ""
    lake = tmp_path_factory.mktemp("lake")
    rows = [(k, f"https://example.com/{k}", t) for k, t in sorted(docs.items())]
    spark.createDataFrame(rows, "doc_id string, url string, text string").write.format("delta").save(str(lake / "filtered"))
    assert dedup_job.main(["--config", str(REPO / "conf" / "dedup" / "default.yaml"), "--lake", str(lake)]) == 0
    return lake, docs, planted


def read(spark, lake, name):
    return spark.read.format("delta").load(f"{lake}/{name}")


def test_every_document_kept_or_removed_once(spark, corpus):
    lake, docs, _ = corpus
    kept = [r.doc_id for r in read(spark, lake, "deduped").select("doc_id").collect()]
    removed = [r.doc_id for r in read(spark, lake, "dup_clusters").filter("NOT kept").collect()]
    assert len(kept) == len(set(kept)) and len(removed) == len(set(removed))
    assert set(kept) | set(removed) == set(docs) and not set(kept) & set(removed)


def test_against_brute_force_jaccard(spark, corpus):
    lake, docs, _ = corpus
    kept = {r.doc_id for r in read(spark, lake, "deduped").select("doc_id").collect()}
    sh = {k: _shingles(t) for k, t in docs.items()}
    ids = sorted(k for k in docs if sh[k])
    close = [(a, b) for a, b in itertools.combinations(ids, 2) if D.jaccard(sh[a], sh[b]) >= 0.8]
    assert len(close) >= 18  # the planted copies at 0-2% edits, plus any natural near-duplicates
    # recall: of every pair at Jaccard >= 0.8, at most one document survives
    missed = [(a, b) for a, b in close if a in kept and b in kept]
    assert len(missed) <= 0.05 * len(close), missed
    # precision: every removed document has a partner at Jaccard >= 0.8 (edges are verified)
    removed = set(docs) - kept
    partners = {x for pair in close for x in pair}
    assert removed <= partners | {"s0002"}, removed - partners
    # the exact step merged the short documents that normalise alike, and only those
    assert "s0001" in kept and "s0002" not in kept and "s0003" in kept and "e0001" in kept


def test_planted_rates(spark, corpus):
    lake, _, planted = corpus
    kept = {r.doc_id for r in read(spark, lake, "deduped").select("doc_id").collect()}
    for doc, (src, rate) in planted.items():
        if rate <= 0.02:
            assert doc not in kept or src not in kept, (doc, rate)
        if rate >= 0.30:
            assert doc in kept, (doc, rate)  # 30% of words changed: Jaccard far below 0.8


def test_clusters_and_stats(spark, corpus):
    lake, _, _ = corpus
    cl = read(spark, lake, "dup_clusters")
    assert {r.method for r in cl.select("method").distinct().collect()} == {"exact", "minhash"}
    for r in cl.groupBy("method", "cluster_id").agg({"kept": "collect_list"}).collect():
        assert sorted(r[2]).count(True) == 1  # one survivor per cluster
    survivors = cl.filter("kept").collect()
    assert all(r.doc_id == r.cluster_id for r in survivors)  # keep: first -> the smallest id
    stats = read(spark, lake, "run_stats").filter("step = '01_minhash'").collect()
    reasons = {r.reason for r in stats if r.reason}
    assert "bands=20" in reasons and "rows=6" in reasons


def test_rerun_is_idempotent(spark, corpus):
    lake, _, _ = corpus
    before = sorted((r.doc_id, r.kept) for r in read(spark, lake, "dup_clusters").collect())
    assert dedup_job.main(["--config", str(REPO / "conf" / "dedup" / "default.yaml"), "--lake", str(lake)]) == 0
    after = sorted((r.doc_id, r.kept) for r in read(spark, lake, "dup_clusters").collect())
    assert before == after


def test_connected_components_match_union_find(spark, tmp_path):
    rng = random.Random(5)
    nodes = [f"x{i:03d}" for i in range(200)]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(150)]
    edges += [(nodes[i], nodes[i + 1]) for i in range(100, 140)]  # a long chain
    smallest = D.components(edges)  # union-find on one machine
    expected = {n: smallest[n] for a, b in edges for n in (a, b) if a != b}
    df = spark.createDataFrame(edges, "u string, v string")
    comp, rounds = connected_components(spark, df, 40, str(tmp_path / "ckpt"))
    got = {r.node: r.component for r in comp.collect()}
    assert got == expected and rounds < 40


def test_paragraph_step_old_both(spark, tmp_path):
    paras = [f"paragraph {i} " + " ".join(f"word{i}x{j}" for j in range(20)) for i in range(6)]
    docs = [("a", "\n".join(paras[:3])),                       # first: nothing seen before
            ("b", "\n".join(paras[:3] + [paras[4]])),          # 3 of 4 paragraphs seen: those removed
            ("c", "\n".join(paras[:3])),                       # entirely seen: dropped
            ("d", paras[5])]
    lake = tmp_path / "lake"
    spark.createDataFrame(docs, "doc_id string, text string").write.format("delta").save(str(lake / "filtered"))
    assert dedup_job.main(["--config", str(REPO / "conf" / "dedup" / "dclm.yaml"), "--lake", str(lake)]) == 2  # no url
    conf = tmp_path / "p.yaml"
    conf.write_text("name: p\nsteps:\n  - method: paragraph\n")
    assert dedup_job.main(["--config", str(conf), "--lake", str(lake)]) == 0
    out = {r.doc_id: r.text for r in read(spark, lake, "deduped").collect()}
    assert out == {"a": "\n".join(paras[:3]), "b": paras[4], "d": paras[5]}


def test_signatures_are_datasketch_compatible():
    import numpy as np
    from datasketch import MinHash

    sh = D.shingles(D.normalize_words((REPO / "sample" / "text" / "hq" / "wikipedia.txt").read_text()[:5000]), 5)
    a, b = D.permutations(64, 3)
    m = MinHash(num_perm=64, seed=3, scheme="legacy")
    m.update_batch(sh)
    assert np.array_equal(D.signature(D.hash32(sh), a, b), m.hashvalues.astype(np.uint32))
    from datasketch.lsh import _optimal_param

    assert D.optimal_bands(0.8, 128) == _optimal_param(0.8, 128, 0.5, 0.5) == (9, 13)
    assert D.optimal_bands(0.7, 64) == _optimal_param(0.7, 64, 0.5, 0.5)


def test_bad_config_names_the_key(tmp_path, capsys):
    conf = tmp_path / "bad.yaml"
    conf.write_text("steps:\n  - method: minhash\n    num_prem: 64\n")
    assert dedup_job.main(["--config", str(conf), "--lake", str(tmp_path)]) == 2
    assert "num_prem" in capsys.readouterr().err


def test_pinned_read_ignores_appends_during_the_run(spark, tmp_path, monkeypatch):
    """Rows appended to the input between the version lookup and the read, and while the steps run,
    are not seen; the run id and the `_runs` row name the version that was read."""
    from jobs.common.lake import Lake
    from jobs.dedup.methods.exact import Exact

    lake = tmp_path / "lake"
    path = str(lake / "filtered")
    schema = "doc_id string, url string, text string"
    rows = [("a", "https://a", "one two three"), ("b", "https://b", "One, two THREE!"), ("c", "https://c", "four")]
    spark.createDataFrame(rows, schema).write.format("delta").save(path)

    def append(row):
        spark.createDataFrame([row], schema).write.format("delta").mode("append").save(path)

    real_version, real_run, looked_up = Lake.version, Exact.run, []

    def version_then_append(self, spark_, table):
        v = real_version(self, spark_, table)
        if table == "filtered" and not looked_up:
            looked_up.append(v)
            append(("a0", "https://a0", "one two three"))  # would join a's cluster and survive it
        return v

    def run_then_append(self, *args):
        append(("z", "https://z", "a late unique document"))
        return real_run(self, *args)

    monkeypatch.setattr(Lake, "version", version_then_append)
    monkeypatch.setattr(Exact, "run", run_then_append)
    conf = tmp_path / "exact.yaml"
    conf.write_text("name: pin\nsteps:\n  - method: exact\n")
    assert dedup_job.main(["--config", str(conf), "--lake", str(lake)]) == 0

    assert looked_up == [0]
    assert spark.read.format("delta").load(path).count() == 5  # both appends landed (versions 1, 2)
    assert sorted(r.doc_id for r in read(spark, lake, "deduped").collect()) == ["a", "c"]
    assert sorted((r.doc_id, r.kept) for r in read(spark, lake, "dup_clusters").collect()) == [("a", True), ("b", False)]
    (run,) = read(spark, lake, "_runs").collect()
    assert run.status == "succeeded" and run.run_id.endswith("-filtered-v0")
    assert [(t.name, t.version) for t in run.inputs] == [("filtered", 0)]
    assert sorted(t.name for t in run.outputs) == ["deduped", "dup_clusters", "run_stats"]
    assert json.loads(run.summary_json) == {"documents_in": 3, "kept": 2, "removed": 1}


def test_default_config_set_and_usage_errors(spark, tmp_path, capsys):
    lake = tmp_path / "lake"
    # before Spark work: a --set that breaks a step names the file and the step
    assert dedup_job.main(["--lake", str(lake), "--set", "steps.1.bands=30"]) == 2
    assert "conf/dedup/default.yaml: steps.1: bands * rows = 180 > num_perm 128" in capsys.readouterr().err
    assert dedup_job.main(["--lake", str(lake)]) == 2  # no input table: exit 2, nothing recorded
    assert "no Delta table at" in capsys.readouterr().err
    spark.createDataFrame([("a", "x")], "doc_id string, text string").write.format("delta").save(str(lake / "filtered"))
    assert dedup_job.main(["--lake", str(lake), "--set", "steps.0.keep=best", "--set", "steps.0.by=score"]) == 2
    assert "keep: best needs `by` naming an input column (have doc_id, text)" in capsys.readouterr().err
    assert not (lake / "_runs").exists() and not (lake / "deduped").exists()


def test_registry_builds_the_step_union():
    from typing import Literal

    from jobs.dedup.main import DedupConfig
    from jobs.dedup.methods import METHODS, Method, StepConfig, register
    from lakesift.config import ConfigError, load_model

    assert sorted(METHODS) == ["exact", "minhash", "paragraph", "url"]
    cfg = DedupConfig.model_validate({"steps": [{"method": m} for m in METHODS]})
    assert [type(s) for s in cfg.steps] == [m.config for m in METHODS.values()]
    with pytest.raises(ConfigError, match="does not match any of the expected tags: 'exact', 'minhash'"):
        load_model(DedupConfig, None, sets={"steps": [{"method": "simhash"}]})

    class Wrong(StepConfig):
        method: Literal["other"]

    with pytest.raises(TypeError, match="Literal"):
        register(type("SimHash", (Method,), {"name": "simhash", "config": Wrong}))
    assert "simhash" not in METHODS


def test_udf_helpers():
    assert D.exact_key("Hello, WORLD") == D.exact_key("hello world") != D.exact_key("hello there")
    assert D.exact_key("") is None and D.exact_key(None) is None and D.exact_key(" ,. ") is None
    assert D.drop_lines("a\nb\nc", [0, 2]) == "b" and D.drop_lines("a\nb", []) == "a\nb" and D.drop_lines(None, None) is None
    assert D.text_jaccard("a b c d e f", "a b c d e f g", 5) == 2 / 3
    assert D.components([("c", "b"), ("b", "a"), ("x", "x"), ("z", "y"), ("e", "d"), ("d", "y")]) == {
        "a": "a", "b": "a", "c": "a", "x": "x", "d": "d", "e": "d", "y": "d", "z": "d"}


def test_command_paths_outside_the_repository(tmp_path):
    """`python jobs/dedup/main.py` from anywhere without PYTHONPATH; `python -m jobs.dedup` from the
    root; the entry file copied away from the checkout with only the code zip (an EMR step's driver)."""
    from lakesift.packaging import build_code_zip

    far = tmp_path / "elsewhere"
    far.mkdir()
    shutil.copy2(REPO / "jobs" / "dedup" / "main.py", far / "main.py")
    code = build_code_zip(tmp_path / "dist")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for cmd, cwd, extra in [([str(REPO / "jobs" / "dedup" / "main.py")], tmp_path, {}),
                            ([str(REPO / "jobs" / "dedup.py")], tmp_path, {}),  # the old path
                            (["-m", "jobs.dedup"], REPO, {}),
                            ([str(far / "main.py")], far, {"PYTHONPATH": str(code)})]:
        r = subprocess.run([sys.executable, *cmd, "--help"], cwd=cwd, env={**env, **extra},
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        text = " ".join(r.stdout.split())
        assert text.startswith("usage: jobs/dedup/main.py") and "(default conf/dedup/default.yaml)" in text


@pytest.mark.slow
def test_spark_submit_main_file_with_only_the_code_archive(spark, tmp_path):
    """What an EMR step does: spark-submit of the entry file, copied away from the checkout, with the
    code zip as --py-files; the config comes out of the archive."""
    from lakesift.packaging import build_code_zip

    lake = tmp_path / "lake"
    rows = [("d1", "https://x/1", "the same page text"), ("d2", "https://x/1", "another page"),
            ("d3", "https://x/3", "The same page, text!"), ("d4", "https://x/4", "a page of its own")]
    spark.createDataFrame(rows, "doc_id string, url string, text string").write.format("delta").save(str(lake / "filtered"))
    far = tmp_path / "elsewhere"
    far.mkdir()
    shutil.copy2(REPO / "jobs" / "dedup" / "main.py", far / "main.py")
    code = build_code_zip(tmp_path / "dist")
    bindir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    r = subprocess.run([str(bindir / "spark-submit"), "--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=2",
                        "--conf", "spark.ui.enabled=false", "--py-files", str(code), str(far / "main.py"),
                        "--config", "conf/dedup/dclm.yaml", "--lake", f"file://{lake}"],
                       cwd=far, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    out = r.stdout + r.stderr
    assert f"code from {code}" in out
    assert re.search(r"kept 2 of 4 documents", out), out[-3000:]
    assert sorted(x.doc_id for x in read(spark, lake, "deduped").collect()) == ["d1", "d4"]
