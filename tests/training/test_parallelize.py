"""training.parallelize in a world of one: activation checkpointing and torch.compile change neither
the parameter names the seeded init and the checkpoints use, nor the initial values, and activation
checkpointing gives the same gradients, bit for bit."""

from __future__ import annotations

import torch

from training.config import load_scale
from training.objectives.clm import causal_lm_loss
from training.parallelize import build_model

CFG = load_scale("debug-bytes").model


def full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def test_checkpointing_and_compile_keep_names_values_and_gradients(world):
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    plain = build_model(CFG, world.device, 3)
    ckpt = build_model(CFG, world.device, 3, act_ckpt=True)
    compiled = build_model(CFG, world.device, 3, compile=True, act_ckpt=True)  # compiled lazily: never run here
    names = [n for n, _ in plain.named_parameters()]
    assert [n for n, _ in ckpt.named_parameters()] == names
    assert type(ckpt.layers[0]).__name__.startswith("FSDPCheckpointed")
    states = [get_model_state_dict(m) for m in (plain, ckpt, compiled)]
    assert sorted(states[0]) == sorted(states[1]) == sorted(states[2]) == sorted(names)
    for k in names:
        assert torch.equal(full(states[0][k]), full(states[1][k])) and torch.equal(full(states[0][k]), full(states[2][k]))

    tokens = torch.randint(0, CFG.vocab_size, (2, CFG.seq_len + 1), generator=torch.Generator().manual_seed(0))
    for m in (plain, ckpt):
        m.train()
        loss, _ = causal_lm_loss(m(tokens[:, :-1]), tokens[:, 1:], 1e-4)
        loss.backward()
    for (n, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters(), strict=True):
        assert torch.equal(full(a.grad), full(b.grad)), n
