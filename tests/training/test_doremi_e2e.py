"""``make doremi`` end to end on a real lake table (Spark + Delta dataset job, reference, proxy), then
``make doremi-compare``: the contract's files, the weights' format read back by the trainer's
``--mix`` and the dataset job's ``mixing.weights_file``. Slow (a few minutes): ``make test-slow``."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    from udfs.quality_train import split_units

    lake = tmp_path_factory.mktemp("lake")
    rows = []
    for name in ("wikipedia", "state_union"):
        text = (REPO / "sample" / "text" / "hq" / f"{name}.txt").read_text(encoding="utf-8")
        rows += [(f"{name}-{i:04d}", t, name) for i, t in enumerate(split_units(text, "chunk", 1500, 100)[:60])]
    spark.createDataFrame(rows, "doc_id string, text string, source string").write.format("delta").save(
        str(lake / "docs"))
    return lake


def make(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_make_doremi_then_compare(lake, shared, tmp_path):
    out = tmp_path / "doremi"
    proc = make("doremi", f"LAKE={lake}", "TABLE=docs", f"OUT={out}", "STEPS=12", f"SHARED={shared}")
    assert "2 domain(s): state_union, wikipedia" in proc.stdout
    w = json.loads((out / "domain_weights.json").read_text())
    assert set(w["train_domain_weights"]) == {"state_union", "wikipedia"} and w["steps"] == 12
    assert sum(w["train_domain_weights"].values()) == pytest.approx(1.0)
    traj = [json.loads(x) for x in (out / "doremi_trajectory.jsonl").read_text().splitlines()]
    assert [r["step"] for r in traj] == list(range(1, 13))
    ref = json.loads((out / "data" / "reference_weights.json").read_text())
    assert set(ref["train_domain_weights"]) == {"state_union", "wikipedia"}
    assert (out / "reference" / "final" / "model.safetensors").exists()
    proc = make("doremi-compare", f"OUT={out}", "STEPS=6", f"SHARED={shared}")
    assert "lowest average perplexity:" in proc.stdout
    c = json.loads((out / "comparison.json").read_text())
    assert set(c["runs"]) == {"baseline", "uniform", "doremi"}
    assert c["runs"]["doremi"]["weights"] == pytest.approx(w["train_domain_weights"])
    assert len({r["tokens_seen"] for r in c["runs"].values()}) == 1  # equal tokens
    for r in c["runs"].values():
        assert set(r["validation"]["domains"]) == {"state_union", "wikipedia"}
        assert r["validation"]["natural"]["tokens"] > 0
    # the dataset job mixes by the same file
    from udfs.tokenizing import read_weights

    assert read_weights(str(out / "domain_weights.json")) == pytest.approx(w["train_domain_weights"])
