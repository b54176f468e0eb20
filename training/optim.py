"""AdamW with weight decay on matrices only, and the learning-rate schedule: linear warmup, then cosine
decay to ``final_lr`` (DCLM's ``cd`` schedule)."""

from __future__ import annotations

import math


def lr_at(step: int, total: int, peak: float, warmup: int, final: float) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + 0.5 * (peak - final) * (1 + math.cos(math.pi * progress))


def build_optimizer(model, scale, device):
    """AdamW (the scale's betas, eps, lr); weight decay on parameters with two or more dimensions,
    none on gains; ``foreach`` kernels on GPU."""
    import torch

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": scale.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=scale.lr, betas=(scale.beta1, scale.beta2), eps=scale.eps,
                             foreach=device.type == "cuda")
