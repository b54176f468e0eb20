"""``make continue-pretrain`` end to end on the bundled samples (ingest, base pre-training, vocabulary
expansion, resize, buckets, three stages, bits per character): every step's outputs, as the contract
names them. Slow (several minutes): ``make test-slow``."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.spark]


def test_make_continue_pretrain(shared, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["make", "--no-print-directory", "continue-pretrain", f"LAKE={tmp_path}",
                           f"SHARED={shared}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cpt = tmp_path / "cpt"
    vocab = json.loads((cpt / "vocab" / "report.json").read_text())
    assert vocab["vocab_size"] > vocab["base_vocab_size"] and vocab["padded_vocab_size"] % 64 == 0
    resized = json.loads((cpt / "resized" / "config.json").read_text())
    assert resized["model"]["vocab_size"] == vocab["padded_vocab_size"]
    stages = json.loads((cpt / "runs" / "stages" / "stages.json").read_text())
    assert [s["name"] for s in stages] == ["embed", "full", "replay"] and all(s["finished"] for s in stages)
    report = json.loads((cpt / "report.json").read_text())
    assert set(report) == {"before", "resized", "after"}
    before, after = report["before"], report["after"]
    assert after["zh"]["tokens_per_char"] < before["zh"]["tokens_per_char"]  # the expansion compresses Chinese
    assert after["en"]["tokens_per_char"] <= before["en"]["tokens_per_char"]  # and leaves English no worse
    assert after["zh"]["bits_per_char"] < before["zh"]["bits_per_char"]  # continued pre-training on Chinese
