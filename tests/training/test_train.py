"""The trainer on CPU: parameter counts of every scale, loss going down on real text, a two-process
FSDP run under torchrun (gloo) against one process, stop / resume against an uninterrupted run, and
the proportions of a mix of two shard sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from tests.training.conftest import write_mds
from training.config import load_scale
from training.model import Transformer, n_params


def test_parameter_counts_match_dclm():
    published = {"400M-1x": 411_616_256, "1B-1x": 1_439_795_200, "1B-5x": 1_439_795_200,
                 "7B-1x": 6_889_410_560, "7B-2x": 6_889_410_560}
    for name, count in published.items():
        scale = load_scale(name)
        with torch.device("meta"):
            model = Transformer(scale.model)
        assert n_params(model) == count == scale.params, name
    assert load_scale("400M-1x").tokens(411_616_256) == 8_232_325_120  # DCLM's 411m_1x token budget
    assert load_scale("7B-2x").tokens(6_889_410_560) == 2 * 137_788_211_200
    assert load_scale("1B-1x").model.ffn_hidden == 5632


def run(args: list[str], nproc: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("RANK", None)
    if nproc == 1:
        cmd = [sys.executable, "-m", "training.train", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "training.train", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def losses(out) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


def test_loss_decreases_and_the_model_exports(shards, tmp_path):
    out = tmp_path / "run"
    proc = run(["--scale", "debug-bytes", "--data", str(shards), "--out", str(out), "--steps", "40",
                "--log-every", "10"])
    assert "196,928 parameters" in proc.stdout
    curve = losses(out)
    assert curve[1] > 5.5  # about ln(512) at init
    assert np.mean([curve[s] for s in range(36, 41)]) < curve[1] - 2.0, curve
    from training.export import load

    model = load(out / "final")
    assert n_params(model) == 196_928


def test_two_processes_match_one(shards, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--scale", "debug-bytes", "--data", str(shards), "--steps", "8", "--log-every", "1"]
    run([*common, "--out", str(one)])
    run([*common, "--out", str(two), "--micro-batch", "2"], nproc=2)  # 2 ranks x 2 x 2 accumulation = 8
    a, b = losses(one), losses(two)
    assert a.keys() == b.keys() == set(range(1, 9))
    for s in a:
        assert b[s] == pytest.approx(a[s], rel=1e-3, abs=1e-3), (s, a[s], b[s])


def test_resume_continues_exactly(shards, tmp_path):
    full, parts = tmp_path / "full", tmp_path / "parts"
    common = ["--scale", "debug-bytes", "--data", str(shards), "--steps", "8", "--log-every", "1"]
    run([*common, "--out", str(full)])
    run([*common, "--out", str(parts), "--stop-after", "4"])
    proc = run([*common, "--out", str(parts)])
    assert "resumed from" in proc.stdout and "at step 4" in proc.stdout
    a, b = losses(full), losses(parts)
    for s in range(5, 9):
        assert b[s] == pytest.approx(a[s], rel=1e-5, abs=1e-6), (s, a[s], b[s])


@pytest.fixture(scope="module")
def mirrored(shards, tmp_path_factory):
    """The same sequences with every token t written as 511 - t: text bytes and EOS (0..256) become
    255..511 without 256, so a sample whose largest token is above 256 comes from this set."""
    from streaming import StreamingDataset

    src = StreamingDataset(local=str(shards), shuffle=False, batch_size=1)
    out = tmp_path_factory.mktemp("mirrored")
    write_mds(out, [511 - src[i]["tokens"].astype(np.int64) for i in range(src.num_samples)])
    return out


def test_mixing_two_shard_sets_with_proportions(shards, mirrored, tmp_path):
    from training.config import load_scale
    from training.data import make_loader
    from training.objectives import build

    clm = build("clm", load_scale("debug-bytes"))
    for p in (0.25, 0.75):  # the two sets hold 600 samples each: ignoring the proportions gives 0.5
        loader = make_loader([f"{shards}:{1 - p}", f"{mirrored}:{p}"], 4, 42, None, clm.fields, clm.collate)
        drawn = torch.cat([b["tokens"] for b in loader])  # one epoch, in the order the trainer sees it
        assert len(drawn) == 1200
        share = float((drawn.max(dim=1).values > 256).float().mean())
        assert share == pytest.approx(p, abs=0.02), (p, share)
    out = tmp_path / "mix"
    proc = run(["--scale", "debug-bytes", "--data", f"{shards}:0.75", f"{mirrored}:0.25", "--out", str(out),
                "--steps", "3", "--log-every", "1"])
    assert "3 steps" in proc.stdout and sorted(losses(out)) == [1, 2, 3]
    assert f"{shards} (proportion 0.75, 600 samples); {mirrored} (proportion 0.25, 600 samples)" in proc.stdout
