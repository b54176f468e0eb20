"""Post-training objectives: SFT (loss on the target tokens only, packed examples equal to the same examples
alone, the global-batch token normalisation independent of the micro-batching) and DPO (the formula by
hand, policy == reference gives log 2, a step raises the margin, precomputed reference log-probs, a full
run through training.train that resumes exactly and gives the same losses on two processes)."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from tests.training.conftest import world_env
from training import objectives
from training.config import load_scale
from training.model import Transformer, init_parameters
from training.objectives.base import RunInfo
from training.objectives.clm import IGNORE
from training.objectives.dpo import DPO, dpo_losses, precompute_reference, sequence_logps
from training.objectives.sft import SFT

SCALE = load_scale("debug-bytes")  # vocab 512, seq_len 64
L = SCALE.model.seq_len + 1
VOCAB = 512


def ours(seed: int = 1) -> Transformer:
    model = Transformer(SCALE.model)
    init_parameters(model, seed)
    return model.eval()


def tiny_llama(seed: int = 0):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from training.hf import HFCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return HFCausalLM(AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")).eval()


# -- SFT ------------------------------------------------------------------------------------------------


def example(rng, prompt: int, answer: int) -> tuple[np.ndarray, np.ndarray]:
    """A prompt + answer example: (tokens, loss mask: 1 on the answer tokens)."""
    toks = rng.integers(0, 256, prompt + answer)
    return toks, np.r_[np.zeros(prompt, np.uint8), np.ones(answer, np.uint8)]


def pack(examples, length: int = L) -> dict:
    """One SFT sample (the MDS layout) packing ``examples`` and padding to ``length``."""
    toks, mask, starts = [], [], []
    for t, m in examples:
        starts.append(len(toks))
        toks += list(t)
        mask += list(m)
    pad = length - len(toks)
    assert pad >= 0
    return {"tokens": np.array(toks + [0] * pad, np.uint32), "loss_mask": np.array(mask + [0] * pad, np.uint8),
            "starts": np.array(starts, np.int32), "pad": np.int32(pad), "n_examples": np.int32(len(examples))}


def fake_run(accumulation: int, size: int = 1) -> RunInfo:
    world = SimpleNamespace(size=size, device=torch.device("cpu"), rank=0, main=True)
    return RunInfo(out=None, world=world, model=None, accumulation=accumulation)


def test_sft_collate_and_loss_only_on_target_tokens():
    rng = np.random.default_rng(0)
    s1 = pack([example(rng, 5, 7), example(rng, 3, 9)])
    s2 = pack([example(rng, 10, 20)])
    sft = objectives.build("sft", SCALE)
    assert isinstance(sft, SFT) and sft.fields == ("tokens", "loss_mask", "starts")
    batch = sft.collate([s1, s2])
    assert batch["tokens"].shape == (2, L) and batch["targets"].shape == batch["doc_ids"].shape == (2, L - 1)
    assert batch["doc_ids"][0, :12].eq(1).all() and batch["doc_ids"][0, 12:].eq(2).all()
    assert (batch["targets"] != IGNORE).sum(1).tolist() == [16, 20]
    assert sft.count_tokens(batch) == (L - 1) * 2 - (int(s1["pad"]) - 1) - (int(s2["pad"]) - 1)
    # longer samples are cropped to seq_len + 1
    long = pack([example(rng, 30, 60)], length=100)
    assert sft.collate([long])["tokens"].shape == (1, L)

    model = ours()
    with torch.no_grad():
        loss, metrics = sft.loss(model, batch)
        total, n = 0.0, 0
        for s in (s1, s2):
            toks = torch.as_tensor(s["tokens"].astype(np.int64))
            for start, end in zip(s["starts"], [*s["starts"][1:], L - int(s["pad"])], strict=True):
                alone = toks[start:end]
                logp = torch.log_softmax(model(alone[None, :-1])[0].float(), -1)
                for t in range(1, len(alone)):
                    if s["loss_mask"][start + t]:
                        total -= float(logp[t - 1, alone[t]])
                        n += 1
    assert n == 36
    assert float(loss) == pytest.approx(total / n, rel=1e-5)
    assert float(metrics["loss"]) == float(loss)  # no z-loss by default
    zs = objectives.build("sft", SCALE, SimpleNamespace(sft_z_loss=True))
    with torch.no_grad():
        zl, zm = zs.loss(model, batch)
    assert float(zm["loss"]) == pytest.approx(float(loss), rel=1e-6) and float(zl) > float(loss)


@pytest.mark.parametrize("arch", ["ours", "hf-llama"])
def test_sft_packed_equals_examples_one_by_one(arch):
    rng = np.random.default_rng(1)
    exs = [example(rng, 4, 6), example(rng, 7, 3), example(rng, 2, 12), example(rng, 9, 9)]
    model = ours() if arch == "ours" else tiny_llama()
    sft = SFT(SCALE)
    with torch.no_grad():
        packed, _ = sft.loss(model, sft.collate([pack(exs[:2]), pack(exs[2:])]))
        alone, _ = sft.loss(model, sft.collate([pack([e]) for e in exs]))
        # without the document mask the packed loss differs: attention across examples is really cut
        b = sft.collate([pack(exs[:2]), pack(exs[2:])])
        b["doc_ids"] = torch.zeros_like(b["doc_ids"])
        crossed, _ = sft.loss(model, b)
    assert float(packed) == pytest.approx(float(alone), abs=1e-5)
    assert abs(float(crossed) - float(alone)) > 1e-4


def test_sft_normalisation_is_independent_of_micro_batching():
    rng = np.random.default_rng(2)
    samples = [pack([example(rng, 3, 4)]), pack([example(rng, 5, 30), example(rng, 2, 20)]),
               pack([example(rng, 10, 2)]), pack([example(rng, 1, 50)])]

    def step(micro: int):
        model = ours(3).train()
        sft = SFT(SCALE)
        accum = len(samples) // micro
        sft.bind(fake_run(accum))
        batches = [sft.collate(samples[i:i + micro]) for i in range(0, len(samples), micro)]
        sft.begin_step(batches)
        logged = 0.0
        for b in batches:
            loss, metrics = sft.loss(model, b)
            (loss / accum).backward()
            logged += float(metrics["loss"]) / accum
        sft.end_step()
        return logged, [p.grad.clone() for p in model.parameters()]

    one, g1 = step(4)
    four, g4 = step(1)
    assert four == pytest.approx(one, rel=1e-6)
    for a, b in zip(g1, g4, strict=True):
        assert torch.allclose(a, b, atol=1e-7, rtol=1e-5)
    # the mean of micro-batch means would differ (the micro-batches hold 4, 50, 2 and 50 targets)
    model, sft = ours(3), SFT(SCALE)
    with torch.no_grad():
        means = np.mean([float(sft.loss(model, sft.collate([s]))[0]) for s in samples])
    assert abs(means - one) > 1e-3


# -- DPO ------------------------------------------------------------------------------------------------


def pair(rng, prompt: int, chosen: int, rejected: int, i: int = 0) -> dict:
    """A preference pair: the chosen completion repeats the prompt's first tokens, the rejected one is noise."""
    p = rng.integers(1, 200, prompt)
    c = np.resize(p, chosen)
    r = rng.integers(200, 256, rejected)
    return {"chosen": np.r_[p, c].astype(np.uint32), "rejected": np.r_[p, r].astype(np.uint32),
            "prompt_len": np.int32(prompt), "pair_id": f"pair-{i}"}


def hand_logp(model, seq: np.ndarray, prompt_len: int) -> float:
    toks = torch.as_tensor(seq.astype(np.int64))[:L]
    logp = torch.log_softmax(model(toks[None, :-1])[0].float(), -1)
    return sum(float(logp[t - 1, toks[t]]) for t in range(max(prompt_len, 1), len(toks)))


def dpo_objective(kind="sigmoid", beta=0.1, eps=0.0, precomputed=False) -> DPO:
    o = SimpleNamespace(beta=beta, dpo_loss=kind, label_smoothing=eps, dpo_precomputed_ref=precomputed,
                        reference="unused", init_from=None)
    return objectives.build("dpo", SCALE, o)


def test_dpo_loss_formulas():
    pc, pr, rc, rr = torch.tensor([-3.0, -9.0]), torch.tensor([-5.0, -4.0]), torch.tensor([-4.0, -8.0]), \
        torch.tensor([-4.5, -6.0])
    d = ((pc - rc) - (pr - rr)).tolist()  # [1.5, -3.0]
    sig = [math.log1p(math.exp(-0.1 * x)) for x in d]
    assert dpo_losses(pc, pr, rc, rr, 0.1).tolist() == pytest.approx(sig, rel=1e-6)
    cdpo = [0.8 * math.log1p(math.exp(-0.5 * x)) + 0.2 * math.log1p(math.exp(0.5 * x)) for x in d]
    assert dpo_losses(pc, pr, rc, rr, 0.5, "sigmoid", 0.2).tolist() == pytest.approx(cdpo, rel=1e-6)
    assert dpo_losses(pc, pr, rc, rr, 0.5, "hinge").tolist() == pytest.approx([max(0, 1 - 0.5 * x) for x in d])
    nc, nr = torch.tensor([2, 4]), torch.tensor([5, 1])
    ipo = [((1.0 / 2 - -0.5 / 5) - 1 / 0.2) ** 2, ((-1.0 / 4 - 2.0 / 1) - 1 / 0.2) ** 2]
    assert dpo_losses(pc, pr, rc, rr, 0.1, "ipo", n_c=nc, n_r=nr).tolist() == pytest.approx(ipo, rel=1e-6)


@pytest.mark.parametrize("kind", ["sigmoid", "ipo", "hinge"])
def test_dpo_objective_against_a_hand_computation(kind):
    rng = np.random.default_rng(3)
    samples = [pair(rng, 5, 8, 3), pair(rng, 12, 4, 20), pair(rng, 30, 40, 50)]  # the last one is cropped
    policy, reference = ours(1), ours(2)
    obj = dpo_objective(kind, beta=0.3)
    obj.reference = reference
    batch = obj.collate(samples)
    assert batch["tokens"].shape == (6, L) and obj.count_tokens(batch) == 13 + 8 + 16 + 32 + 65 + 65
    with torch.no_grad():
        loss, m = obj.loss(policy, batch)
        rows = []
        for s in samples:
            n = int(s["prompt_len"])
            pc, pr = hand_logp(policy, s["chosen"], n), hand_logp(policy, s["rejected"], n)
            rc, rr = hand_logp(reference, s["chosen"], n), hand_logp(reference, s["rejected"], n)
            nc, nr = min(len(s["chosen"]), L) - n, min(len(s["rejected"]), L) - n
            rows.append((pc, pr, rc, rr, nc, nr))
    beta = 0.3
    want = []
    for pc, pr, rc, rr, nc, nr in rows:
        d = (pc - rc) - (pr - rr)
        if kind == "sigmoid":
            want.append(math.log1p(math.exp(-beta * d)))
        elif kind == "hinge":
            want.append(max(0.0, 1 - beta * d))
        else:
            want.append(((pc - rc) / nc - (pr - rr) / nr - 1 / (2 * beta)) ** 2)
    assert float(loss) == pytest.approx(np.mean(want), rel=1e-4)
    rc_ = [beta * (r[0] - r[2]) for r in rows]
    rr_ = [beta * (r[1] - r[3]) for r in rows]
    assert float(m["rewards/chosen"]) == pytest.approx(np.mean(rc_), rel=1e-4)
    assert float(m["rewards/rejected"]) == pytest.approx(np.mean(rr_), rel=1e-4)
    assert float(m["rewards/margins"]) == pytest.approx(np.mean(rc_) - np.mean(rr_), rel=1e-4, abs=1e-6)
    assert float(m["rewards/accuracies"]) == pytest.approx(np.mean([a > b for a, b in zip(rc_, rr_, strict=True)]))
    assert float(m["logps/chosen"]) == pytest.approx(np.mean([r[0] for r in rows]), rel=1e-5)
    assert float(m["logps/rejected"]) == pytest.approx(np.mean([r[1] for r in rows]), rel=1e-5)


def test_dpo_policy_equal_to_reference_gives_log_2():
    rng = np.random.default_rng(4)
    samples = [pair(rng, 6, 9, 4), pair(rng, 3, 15, 12)]
    policy = ours(1)
    obj = dpo_objective()
    obj.reference = copy.deepcopy(policy)
    with torch.no_grad():
        loss, m = obj.loss(policy, obj.collate(samples))
    assert float(loss) == pytest.approx(math.log(2), abs=1e-7)
    for k in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert float(m[k]) == 0.0, k


def test_rpo_adds_alpha_times_the_chosen_per_token_nll():
    rng = np.random.default_rng(5)
    samples = [pair(rng, 6, 9, 4), pair(rng, 3, 15, 12)]
    policy, reference = ours(1), ours(2)
    plain = dpo_objective()
    rpo = objectives.build("dpo", SCALE, SimpleNamespace(beta=0.1, dpo_loss="sigmoid", label_smoothing=0.0,
                                                         dpo_precomputed_ref=False, reference="unused",
                                                         init_from=None, rpo_alpha=0.5))
    plain.reference = rpo.reference = reference
    with torch.no_grad():
        base, _ = plain.loss(policy, plain.collate(samples))
        loss, m = rpo.loss(policy, rpo.collate(samples))
    nll = np.mean([-hand_logp(policy, s["chosen"], int(s["prompt_len"])) / (len(s["chosen"]) - int(s["prompt_len"]))
                   for s in samples])
    assert float(m["nll/chosen"]) == pytest.approx(nll, rel=1e-5)
    assert float(loss) == pytest.approx(float(base) + 0.5 * nll, rel=1e-5)


def test_dpo_one_step_raises_the_margin_and_precomputed_reference_agrees():
    rng = np.random.default_rng(5)
    samples = [pair(rng, 6, 10, 10, i) for i in range(4)]
    policy = ours(1).train()
    obj = dpo_objective(beta=0.1)
    obj.reference = copy.deepcopy(policy).eval().requires_grad_(False)
    batch = obj.collate(samples)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    loss, m0 = obj.loss(policy, batch)
    loss.backward()
    opt.step()
    with torch.no_grad():
        after, m1 = obj.loss(policy, batch)
    assert float(m0["rewards/margins"]) == 0.0
    assert float(m1["rewards/margins"]) > 0.0 and float(after) < math.log(2)
    # the same batch with the reference's log-probs precomputed into the samples
    refs = precompute_reference(obj.reference, samples, L, batch_size=3)
    pre = dpo_objective(beta=0.1, precomputed=True)
    assert pre.fields[-2:] == ("ref_chosen_logp", "ref_rejected_logp") and pre.extra_models() == {}
    with_ref = [{**s, "ref_chosen_logp": np.float32(c), "ref_rejected_logp": np.float32(r)}
                for s, (c, r) in zip(samples, refs, strict=True)]
    with torch.no_grad():
        got, mp = pre.loss(policy, pre.collate(with_ref))
    assert float(got) == pytest.approx(float(after), abs=1e-6)
    assert float(mp["rewards/margins"]) == pytest.approx(float(m1["rewards/margins"]), abs=1e-6)


def test_sequence_logps_masks_prompt_and_padding():
    logits = torch.randn(2, 4, 7)
    tokens = torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    lp = torch.log_softmax(logits, -1).gather(-1, tokens[:, 1:, None])[..., 0]
    assert torch.allclose(sequence_logps(logits, tokens, mask), (lp * mask).sum(1), atol=1e-6)


# -- DPO through training.train: a run, resume, two processes --------------------------------------------


def write_pairs(out, n: int, seed: int = 0) -> None:
    from streaming import MDSWriter

    rng = np.random.default_rng(seed)
    cols = {"chosen": "ndarray:uint32", "rejected": "ndarray:uint32", "prompt_len": "int32", "pair_id": "str"}
    with MDSWriter(out=str(out), columns=cols, size_limit="256kb") as w:
        for i in range(n):
            w.write(pair(rng, int(rng.integers(3, 20)), int(rng.integers(4, 40)), int(rng.integers(4, 40)), i))


def write_export(folder, seed: int = 11) -> None:
    """An export folder (our format) of the debug-bytes shape: the policy's start and the reference."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    model = ours(seed)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"format": "lakesift-open_lm", "scale": SCALE.name,
                                                    "model": SCALE.model.model_dump()}))


@pytest.fixture(scope="module")
def dpo_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo")
    write_pairs(root / "pairs", 48)
    write_export(root / "sft")
    return root


COMMON = ["--scale", "debug-bytes", "--objective", "dpo", "--steps", "4", "--global-batch", "4", "--micro-batch", "2",
          "--lr", "1e-3", "--log-every", "1", "--beta", "0.1"]


def records(out) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(dpo_inputs):
    from training import train

    out = dpo_inputs / "full"
    with pytest.MonkeyPatch.context() as mp:
        world_env(mp)
        assert train.main([*COMMON, "--data", str(dpo_inputs / "pairs"), "--init-from", str(dpo_inputs / "sft"),
                           "--out", str(out)]) == 0
    return records(out)


def test_dpo_run_through_the_trainer(uninterrupted, dpo_inputs):
    recs = uninterrupted
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    assert recs[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)  # the policy starts as the reference
    assert recs[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    assert recs[-1]["rewards/margins"] > 0 and recs[-1]["loss"] < math.log(2)
    for k in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "logps/chosen", "logps/rejected"):
        assert k in recs[-1]
    assert all(r["tokens"] > 0 for r in recs) and recs[1]["tokens"] > recs[0]["tokens"]
    assert json.loads((dpo_inputs / "full" / "step-4" / "meta.json").read_text())["objective"] == "dpo"
    assert (dpo_inputs / "full" / "final" / "model.safetensors").exists()


def test_dpo_resume_gives_the_identical_next_losses(uninterrupted, dpo_inputs, monkeypatch, capsys):
    from training import train

    out = dpo_inputs / "parts"
    args = [*COMMON, "--data", str(dpo_inputs / "pairs"), "--init-from", str(dpo_inputs / "sft"), "--out", str(out)]
    world_env(monkeypatch)
    assert train.main([*args, "--stop-after", "2"]) == 0
    world_env(monkeypatch)
    assert train.main(args) == 0
    assert "resumed from" in capsys.readouterr().out
    a, b = {r["step"]: r["loss"] for r in uninterrupted}, {r["step"]: r["loss"] for r in records(out)}
    assert sorted(b) == [1, 2, 3, 4]
    for s in (3, 4):
        assert b[s] == a[s], (s, a[s], b[s])


def test_dpo_two_processes_match_one(uninterrupted, dpo_inputs):
    out = dpo_inputs / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("RANK", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "training.train",
           *COMMON, "--micro-batch", "1", "--data", str(dpo_inputs / "pairs"), "--init-from", str(dpo_inputs / "sft"),
           "--out", str(out)]  # 2 ranks x 1 pair x 2 accumulation = 4 pairs, as 1 rank x 2 pairs x 2
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = uninterrupted, records(out)
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for x, y in zip(a, b, strict=True):
        for k in ("loss", "rewards/margins", "logps/chosen"):
            assert y[k] == pytest.approx(x[k], rel=1e-5, abs=1e-6), (x["step"], k, x[k], y[k])
        assert y["tokens"] == x["tokens"]


def test_dpo_precompute_cli_and_a_run_on_it(dpo_inputs, uninterrupted, monkeypatch):
    from streaming import StreamingDataset

    from training import train
    from training.objectives.dpo import precompute_main

    out = dpo_inputs / "pairs-ref"
    assert precompute_main(["--reference", str(dpo_inputs / "sft"), "--data", str(dpo_inputs / "pairs"),
                            "--out", str(out), "--scale", "debug-bytes"]) == 0
    ds = StreamingDataset(local=str(out), shuffle=False, batch_size=1)
    src = StreamingDataset(local=str(dpo_inputs / "pairs"), shuffle=False, batch_size=1)
    assert ds.num_samples == 48
    s, t = ds[5], src[5]
    assert s["pair_id"] == t["pair_id"] and np.array_equal(s["chosen"], t["chosen"])
    from training.export import load

    want = precompute_reference(load(dpo_inputs / "sft"), [t], L)[0]
    assert (float(s["ref_chosen_logp"]), float(s["ref_rejected_logp"])) == pytest.approx(want, abs=1e-5)
    run = dpo_inputs / "pre"
    world_env(monkeypatch)
    assert train.main([*COMMON, "--steps", "2", "--data", str(out), "--init-from", str(dpo_inputs / "sft"),
                       "--dpo-precomputed-ref", "--out", str(run)]) == 0
    for x, y in zip(uninterrupted[:2], records(run), strict=True):
        assert y["loss"] == pytest.approx(x["loss"], abs=1e-5)


def test_sft_run_through_the_trainer(tmp_path, monkeypatch):
    from streaming import MDSWriter

    from training import train

    rng = np.random.default_rng(6)
    cols = {"tokens": f"ndarray:uint32:{L}", "loss_mask": f"ndarray:uint8:{L}", "starts": "ndarray:int32",
            "pad": "int32", "n_examples": "int32"}
    with MDSWriter(out=str(tmp_path / "sft"), columns=cols) as w:
        for _ in range(32):
            w.write(pack([example(rng, int(rng.integers(2, 10)), int(rng.integers(3, 20))) for _ in range(2)]))
    world_env(monkeypatch)
    assert train.main(["--scale", "debug-bytes", "--objective", "sft", "--data", str(tmp_path / "sft"), "--out",
                       str(tmp_path / "run"), "--steps", "3", "--log-every", "1"]) == 0
    recs = records(tmp_path / "run")
    assert [r["step"] for r in recs] == [1, 2, 3]
    assert recs[0]["loss"] == pytest.approx(math.log(VOCAB), abs=0.5)
    assert all(0 < r["target_tokens"] < 8 * (L - 1) for r in recs)
