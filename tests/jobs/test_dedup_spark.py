"""jobs/dedup.py on real Spark + Delta: a corpus of real text with planted exact and near duplicates
at known edit rates, checked against brute-force Jaccard."""

from __future__ import annotations

import itertools
import random

import pytest

from jobs import dedup as dedup_job
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
    return set(D.shingles(D.normalize_words(text), 5))


@pytest.fixture(scope="module")
def corpus(spark, tmp_path_factory):
    from udfs.quality import split_units

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
    parent = {n: n for n in nodes}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members = {}
    for n in nodes:
        members.setdefault(find(n), []).append(n)
    expected = {n: min(members[find(n)]) for a, b in edges for n in (a, b) if a != b}
    df = spark.createDataFrame(edges, "u string, v string")
    comp, rounds = dedup_job.connected_components(spark, df, 40, str(tmp_path / "ckpt"))
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
