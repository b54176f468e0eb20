"""Parity with TRL (a test-only oracle): on one tiny Llama and one batch, our DPO objective's loss and
metrics equal TRL DPOTrainer's (sigmoid, ipo, hinge; beta 0.1, a separate reference copy), and our SFT
objective's loss and gradients equal SFTTrainer's completion-only loss, packed or not. TRL runs offline:
a tokenizer built here, the model built from a config, report_to none, on the CPU, and in fp32 (bf16=False:
TRL's configs default to bf16, and the reference model it prepares then runs under bf16 autocast)."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

trl = pytest.importorskip("trl")

from training.config import load_scale  # noqa: E402
from training.hf import HFCausalLM  # noqa: E402
from training.objectives.dpo import DPO  # noqa: E402
from training.objectives.sft import SFT  # noqa: E402

SCALE = load_scale("debug-bytes")  # seq_len 64: our crop, longer than every sequence here
L = SCALE.model.seq_len + 1
VOCAB = 96  # t0 .. t93, <pad> 94, <eos> 95
PAD, EOS = 94, 95
TOL = 1e-5


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(VOCAB - 2)} | {"<pad>": PAD, "<eos>": EOS}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def llama(seed: int):
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=PAD, eos_token_id=EOS, bos_token_id=None)
    return AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")


@pytest.fixture(autouse=True)
def quiet():
    logging.getLogger("transformers").setLevel(logging.ERROR)
    yield


def text(ids) -> str:
    return " ".join("<eos>" if i == EOS else f"t{i}" for i in ids)


def pairs(n: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = rng.integers(0, VOCAB - 2, int(rng.integers(2, 8))).tolist()
        c = rng.integers(0, VOCAB - 2, int(rng.integers(1, 10))).tolist() + [EOS]
        r = rng.integers(0, VOCAB - 2, int(rng.integers(1, 10))).tolist() + [EOS]
        out.append((p, c, r))
    return out


@pytest.mark.parametrize("kind", ["sigmoid", "ipo", "hinge"])
def test_dpo_matches_trl(tokenizer, tmp_path, kind):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    ref = llama(0)
    policy = copy.deepcopy(ref)
    with torch.no_grad():  # a policy that has moved away from the reference
        g = torch.Generator().manual_seed(1)
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    data = pairs()
    ds = Dataset.from_dict({"prompt": [text(p) for p, _, _ in data], "chosen": [" " + text(c) for _, c, _ in data],
                            "rejected": [" " + text(r) for _, _, r in data]})
    args = DPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False, beta=0.1, loss_type=[kind],
                     max_length=None, disable_dropout=True, per_device_train_batch_size=len(data),
                     gradient_checkpointing=False, save_strategy="no", logging_strategy="no")
    trainer = DPOTrainer(model=copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=args, train_dataset=ds,
                         processing_class=tokenizer)
    # TRL's own tokenization of the text gives the ids we hand our objective
    first = trainer.train_dataset[0]
    assert (first["prompt_ids"], first["chosen_ids"]) == (data[0][0], data[0][1])
    batch = trainer.data_collator([{"prompt_ids": p, "chosen_ids": c, "rejected_ids": r} for p, c, r in data])
    trainer.model.train()
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
    trl_m = {k: v[-1] for k, v in trainer._metrics["train"].items()}

    o = DPO(SCALE)
    o.beta, o.kind = 0.1, kind
    o.reference = HFCausalLM(copy.deepcopy(ref)).eval()
    samples = [{"chosen": np.array(p + c, np.uint32), "rejected": np.array(p + r, np.uint32), "prompt_len": len(p)}
               for p, c, r in data]
    with torch.no_grad():
        loss, m = o.loss(HFCausalLM(copy.deepcopy(policy)).eval(), o.collate(samples))
    assert float(loss) == pytest.approx(trl_loss, abs=TOL, rel=TOL)
    for k in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
              "logps/rejected"):
        assert float(m[k]) == pytest.approx(trl_m[k], abs=TOL, rel=TOL), (k, float(m[k]), trl_m[k])
    assert trl_m["rewards/margins"] != 0.0  # the comparison is not a trivial one


def sft_examples(n: int = 5, seed: int = 2):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p, a = int(rng.integers(2, 9)), int(rng.integers(2, 12))
        out.append((rng.integers(0, VOCAB - 2, p + a).tolist() + [EOS], [0] * p + [1] * (a + 1)))
    return out


def our_sample(examples) -> dict:
    toks, mask, starts = [], [], []
    for t, m in examples:
        starts.append(len(toks))
        toks += t
        mask += m
    pad = L - len(toks)
    return {"tokens": np.array(toks + [PAD] * pad, np.uint32), "loss_mask": np.array(mask + [0] * pad, np.uint8),
            "starts": np.array(starts, np.int32), "pad": pad}


def test_sft_matches_trl_completion_only(tokenizer, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model = llama(3)
    exs = sft_examples()
    ds = Dataset.from_dict({"input_ids": [t for t, _ in exs], "completion_mask": [m for _, m in exs]})
    args = SFTConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False, max_length=None,
                     completion_only_loss=True, packing=False, gradient_checkpointing=False,
                     per_device_train_batch_size=len(exs), save_strategy="no", logging_strategy="no")
    trainer = SFTTrainer(model=copy.deepcopy(model), args=args, train_dataset=ds, processing_class=tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(exs))])
    assert int((batch["labels"] != -100).sum()) == sum(sum(m) for _, m in exs)
    trainer.model.train()
    trl_loss = trainer.compute_loss(trainer.model, batch)
    trl_loss.backward()
    trl_grads = {k: p.grad for k, p in trainer.model.named_parameters()}

    sft = SFT(SCALE)
    for name, sample_rows in (("one by one", [our_sample([e]) for e in exs]),
                              ("packed", [our_sample(exs[:2]), our_sample(exs[2:])])):
        ours = HFCausalLM(copy.deepcopy(model)).train()
        loss, _ = sft.loss(ours, sft.collate(sample_rows))
        assert float(loss.detach()) == pytest.approx(float(trl_loss.detach()), abs=TOL, rel=TOL), name
        loss.backward()
        for k, p in ours.hf.named_parameters():
            assert torch.allclose(p.grad, trl_grads[k], atol=1e-5, rtol=1e-4), (name, k)
