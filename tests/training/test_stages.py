"""Staged continued pre-training on CPU: document attention (each packed document computed as if alone),
padding left out of the loss, the freeze modes (old rows bit for bit under ``new_rows``), a stage manifest
run end to end from a resized-style export (weights-only and optimizer-keeping hand-overs, a replay mix),
skipped when done, and resumed exactly when interrupted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lakesift.stages import Bucket, Stage, StageManifest
from tests.conftest import REPO
from tests.training.test_train import run
from training.config import ModelConfig
from training.model import Transformer, init_parameters

SEQ, BASE = 64, 257  # debug-bytes: bytes + EOS (256) are the "old" ids; rows 257..511 the "added" ones


def tiny(vocab: int = 64) -> Transformer:
    model = Transformer(ModelConfig(d_model=32, n_layers=2, n_heads=4, vocab_size=vocab, seq_len=32))
    init_parameters(model, seed=1)
    return model.eval()


def test_document_attention_computes_each_document_alone():
    model = tiny()
    docs = [torch.randint(0, 64, (n,)) for n in (7, 12, 5)]
    packed = torch.cat(docs)[None]
    doc_ids = torch.cat([torch.full((len(d),), i) for i, d in enumerate(docs)])[None]
    with torch.no_grad():
        together = model(packed, doc_ids)[0]
        plain = model(packed)[0]
        at = 0
        for d in docs:
            alone = model(d[None])[0]
            torch.testing.assert_close(together[at:at + len(d)], alone, rtol=1e-5, atol=1e-5)
            at += len(d)
    assert not torch.allclose(plain[7:], together[7:], atol=1e-3)  # without it, documents see each other


def test_collate_ignores_padding_and_numbers_documents():
    from training.config import load_scale
    from training.objectives.clm import IGNORE, CausalLM

    scale = load_scale("debug-bytes")
    obj = CausalLM(scale, type("A", (), {"doc_attention": True})())
    assert obj.fields == ("tokens", "starts")
    tok = np.arange(SEQ + 1, dtype=np.uint16)
    batch = obj.collate([{"tokens": tok, "starts": np.array([0, 10, 50], np.int32), "pad": 5},
                         {"tokens": tok, "starts": np.array([0], np.int32), "pad": 0}])
    t = batch["targets"]
    assert (t[0, -5:] == IGNORE).all() and (t[0, :-5] != IGNORE).all() and (t[1] != IGNORE).all()
    d = batch["doc_ids"]
    assert d.shape == (2, SEQ) and d[0, 9] == 1 and d[0, 10] == 2 and d[0, 50] == 3 and (d[1] == 1).all()


def write_bucket(folder: Path, docs: list[list[int]]) -> int:
    from streaming import MDSWriter

    from udfs.tokenizing import pack_bounded

    n = 0
    with MDSWriter(out=str(folder), columns={"tokens": f"ndarray:uint16:{SEQ + 1}", "starts": "ndarray:int32",
                                             "pad": "int32"}, size_limit="256kb") as w:
        for seq, pad, starts in pack_bounded(docs, SEQ + 1, 256):
            w.write({"tokens": seq.astype(np.uint16), "starts": starts, "pad": pad})
            n += 1
    return n


@pytest.fixture(scope="module")
def bucketed(tmp_path_factory):
    """Two buckets of byte-level documents (paragraphs + EOS 256) and an init export with vocab facts."""
    text = (REPO / "sample" / "text" / "hq" / "wikipedia.txt").read_text(encoding="utf-8")
    docs = [list(p.encode("utf-8")) + [256] for p in text.split("\n") if p.strip()]
    root = tmp_path_factory.mktemp("bucketed")
    counts = {b: write_bucket(root / f"buckets/bucket-00{b}", docs[b::2]) for b in (0, 1)}
    stages = [Stage(name="embed", buckets=[0], freeze="new_rows", steps=4),
              Stage(name="full", buckets=[1], optimizer="keep", steps=4, lr=1e-3,
                    replay=[{"path": "buckets/bucket-000", "weight": 0.3}])]
    sm = StageManifest(buckets={b: Bucket(folder=f"buckets/bucket-00{b}", sequences=n) for b, n in counts.items()},
                       stages=stages)
    import yaml

    (root / "stages.yaml").write_text(yaml.safe_dump(sm.model_dump(mode="json"), sort_keys=False))
    from training.config import load_scale
    from training.export import export

    scale = load_scale("debug-bytes")
    model = Transformer(scale.model)
    init_parameters(model, seed=5)
    export(model, scale, root / "init", {"base_vocab_size": BASE, "padded_vocab_size": 512})
    return root


def stage_run(root: Path, out: Path, *extra: str):
    return run(["--scale", "debug-bytes", "--stages", str(root / "stages.yaml"), "--init-from", str(root / "init"),
                "--out", str(out), "--doc-attention", "--log-every", "2", "--ckpt-every", "2", "--keep", "0", *extra])


def test_stages_run_in_order_with_freeze_and_hand_over(bucketed, tmp_path):
    out = tmp_path / "cpt"
    proc = stage_run(bucketed, out)
    assert "freeze: new_rows" in proc.stdout and "optimizer state kept" in proc.stdout
    init = load_file(str(bucketed / "init" / "model.safetensors"))
    s1 = load_file(str(out / "stage-1-embed" / "final" / "model.safetensors"))
    s2 = load_file(str(out / "stage-2-full" / "final" / "model.safetensors"))
    for k, v in init.items():
        if k in ("embed.weight", "head.weight"):
            assert torch.equal(s1[k][:BASE], v[:BASE]), k  # old rows bit for bit
            assert not torch.equal(s1[k][BASE:], v[BASE:]), k  # new rows trained
        else:
            assert torch.equal(s1[k], v), k  # everything else frozen
        assert not torch.equal(s2[k], s1[k]), k  # stage 2 trains everything
    conf = json.loads((out / "stage-2-full" / "final" / "config.json").read_text())
    assert conf["vocab"]["base_vocab_size"] == BASE  # the vocabulary facts travel
    records = json.loads((out / "stages.json").read_text())
    assert [r["name"] for r in records] == ["embed", "full"] and all(r["finished"] for r in records)
    assert records[1]["start"].endswith("stage-1-embed/step-4")
    assert records[1]["data"][1].endswith("buckets/bucket-000:0.300000000000")
    again = stage_run(bucketed, out)  # done: both skipped, nothing retrained
    assert again.stdout.count("skipped") == 2
    assert torch.equal(load_file(str(out / "stage-2-full" / "final" / "model.safetensors"))["head.weight"],
                       s2["head.weight"])


def test_an_interrupted_stage_resumes_exactly(bucketed, tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    stage_run(bucketed, whole)
    first = stage_run(bucketed, cut, "--stop-after", "2")  # stops inside stage 1; stage 2 waits
    assert "stopped after step 2" in first.stdout and not (cut / "stage-2-full").exists()
    second = stage_run(bucketed, cut)  # the same command: stage 1 resumes at step 4, then stage 2
    assert "resumed from" in second.stdout
    a = load_file(str(whole / "stage-2-full" / "final" / "model.safetensors"))
    b = load_file(str(cut / "stage-2-full" / "final" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_a_hugging_face_checkpoint_trains_in_stages_and_exports_back(bucketed, tmp_path):
    """A tiny LlamaForCausalLM (built from a config, tied embeddings) through the same stages: old rows kept
    under new_rows, every stage's final/ a folder transformers loads."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=True)
    base = tmp_path / "llama"
    LlamaForCausalLM(cfg).save_pretrained(base)
    (base / "lakesift_vocab.json").write_text(json.dumps({"base_vocab_size": BASE, "padded_vocab_size": 512}))
    out = tmp_path / "hf-cpt"
    proc = run(["--scale", "debug-bytes", "--stages", str(bucketed / "stages.yaml"), "--init-from", str(base),
                "--out", str(out), "--doc-attention", "--log-every", "2", "--ckpt-every", "2"])
    assert "weights: hf" in proc.stdout and "freeze: new_rows" in proc.stdout
    before = AutoModelForCausalLM.from_pretrained(base).get_input_embeddings().weight
    s1 = AutoModelForCausalLM.from_pretrained(out / "stage-1-embed" / "final")
    s2 = AutoModelForCausalLM.from_pretrained(out / "stage-2-full" / "final")
    e1, e2 = s1.get_input_embeddings().weight, s2.get_input_embeddings().weight
    assert torch.equal(e1[:BASE], before[:BASE]) and not torch.equal(e1[BASE:], before[BASE:])
    assert not torch.equal(e2[:BASE], before[:BASE])
    assert s2.get_output_embeddings().weight is e2  # still tied
    assert json.loads((out / "stage-2-full" / "final" / "lakesift_vocab.json").read_text())["base_vocab_size"] == BASE
