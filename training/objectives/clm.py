"""Causal language modelling: next-token cross-entropy plus z-loss, DCLM's pre-training objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.objectives.base import Batch, Objective, register


def causal_lm_loss(logits: torch.Tensor, targets: torch.Tensor, z_loss: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy (fp32) plus ``z_loss * mean(logsumexp(logits)^2)``; returns (total, ce)."""
    logits = logits.float().view(-1, logits.shape[-1])
    t = targets.reshape(-1)
    ce = F.cross_entropy(logits, t)
    if z_loss:
        return ce + z_loss * torch.logsumexp(logits, dim=-1).pow(2).mean(), ce
    return ce, ce


@register
class CausalLM(Objective):
    """Every position predicts the next token; the logged ``loss`` is the cross-entropy without z-loss.
    Samples' ``tokens`` are cropped to ``seq_len + 1`` (inputs and shifted targets)."""

    name = "clm"
    fields = ("tokens",)

    def collate(self, samples: list[dict]) -> Batch:
        import numpy as np

        tokens = np.stack([s["tokens"] for s in samples])[:, : self.scale.model.seq_len + 1]
        return {"tokens": torch.from_numpy(tokens.astype(np.int64))}

    def loss(self, model, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tokens = batch["tokens"]
        loss, ce = causal_lm_loss(model(tokens[:, :-1]), tokens[:, 1:], self.scale.z_loss)
        return loss, {"loss": ce}
