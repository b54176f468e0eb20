"""Supervised fine-tuning: next-token cross-entropy on the target tokens only (the answers), over packed
examples that do not see each other.

    python -m training.train --objective sft --init-from BASE --data SFT_MDS --scale debug-tiny --out RUN

The SFT MDS layout (one packed sequence of ``L = seq_len + 1`` tokens per sample): ``tokens``
(uint32, L), ``loss_mask`` (uint8, L; 1 where token t is a target, predicted from ``tokens[:t]``),
``starts`` (int32: where each packed example begins, the first 0), ``pad`` (int32: padding at the end,
mask 0) and ``n_examples``. ``collate`` crops to the scale's ``seq_len + 1``, makes the targets
``tokens[1:]`` with ``IGNORE`` where ``loss_mask[1:] == 0``, and ``doc_ids`` from ``starts``, so attention is
block-diagonal (no example attends to another packed beside it) with positions restarting at each
example (``training.model.document_attention``, ``training.hf.document_positions``).

Normalisation: the loss is ``sum(token CE over the target tokens of the global batch) / n``, ``n`` the
number of those target tokens, not a mean of micro-batch means (micro-batches hold different numbers of
targets). ``begin_step`` counts this rank's target tokens over the step's micro-batches and all-reduces
the count (SUM) into ``n``; ``loss`` returns ``sum(micro-batch token CE) * accumulation * world / n``, which
the trainer's ``/ accumulation`` and FSDP's mean over ranks turn into exactly ``sum / n``: the gradient
and the logged ``loss`` (the true global mean CE) do not depend on the micro-batching or the number of
ranks. z-loss is off by default for SFT; ``--sft-z-loss`` adds the scale's ``z_loss`` times the mean of
``logsumexp(logits)^2`` over the same target tokens (normalised the same way; the logged ``loss`` stays
the cross-entropy alone).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from training.objectives.base import Batch, Objective, RunInfo, register
from training.objectives.clm import IGNORE, doc_ids_from_starts


def all_reduce_sum(value: float, run: RunInfo | None) -> float:
    """SUM over ranks of one number (through the run's device, for NCCL); the number itself outside a
    process group."""
    if not dist.is_available() or not dist.is_initialized():
        return value
    device = run.world.device if run is not None else torch.device("cpu")
    x = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return float(x.item())


def scale_factor(run: RunInfo | None) -> float:
    """accumulation x world: what the trainer's ``/ accumulation`` and FSDP's rank mean divide by."""
    if run is None:
        return 1.0
    return float(run.accumulation * run.world.size)


@register
class SFT(Objective):
    name = "sft"
    fields = ("tokens", "loss_mask", "starts")

    @classmethod
    def add_arguments(cls, g) -> None:
        g.add_argument("--sft-z-loss", action="store_true",
                       help="add the scale's z-loss on the target tokens (default: no z-loss for SFT)")

    def __init__(self, scale, options=None):
        super().__init__(scale, options)
        self.z_loss = float(scale.z_loss) if getattr(options, "sft_z_loss", False) else 0.0
        self.run: RunInfo | None = None
        self._n = None  # the step's target tokens over the global batch (begin_step)

    def bind(self, run: RunInfo) -> None:
        self.run = run

    def collate(self, samples: list[dict]) -> Batch:
        n = self.scale.model.seq_len + 1
        length = len(samples[0]["tokens"])
        if any(len(s["tokens"]) != length or len(s["loss_mask"]) != length for s in samples):
            raise ValueError("SFT samples of one micro-batch must have tokens and loss_mask of one length")
        tokens = torch.from_numpy(np.stack([s["tokens"] for s in samples])[:, :n].astype(np.int64))
        mask = torch.from_numpy(np.stack([s["loss_mask"] for s in samples])[:, :n].astype(np.bool_))
        targets = tokens[:, 1:].masked_fill(~mask[:, 1:], IGNORE)
        seq = tokens.shape[1] - 1
        pads = [int(s.get("pad", 0) or 0) for s in samples]
        real = torch.tensor([min(seq, length - p) for p in pads], dtype=torch.int64)  # non-pad input positions
        return {"tokens": tokens, "targets": targets, "doc_ids": doc_ids_from_starts([s["starts"] for s in samples], seq),
                "real": real}

    def count_tokens(self, batch: Batch) -> int:
        return int(batch["real"].sum())

    def begin_step(self, batches: list[Batch]) -> None:
        local = sum(int((b["targets"] != IGNORE).sum()) for b in batches)
        self._n = all_reduce_sum(float(local), self.run)

    def loss(self, model, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tokens, targets = batch["tokens"], batch["targets"]
        # outside the trainer (no begin_step): this micro-batch is the global batch
        n = self._n if self._n is not None else float((targets != IGNORE).sum())
        logits = model(tokens[:, :-1], batch["doc_ids"]).float()
        v = logits.shape[-1]
        flat, t = logits.reshape(-1, v), targets.reshape(-1)
        ce_sum = F.cross_entropy(flat, t, ignore_index=IGNORE, reduction="sum")
        w = scale_factor(self.run) / max(n, 1.0)
        ce = ce_sum * w
        loss = ce
        if self.z_loss:
            keep = t != IGNORE
            loss = ce + self.z_loss * torch.logsumexp(flat[keep], dim=-1).pow(2).sum() * w
        return loss, {"loss": ce.detach()}

    def end_step(self) -> dict[str, float]:
        n, self._n = self._n, None
        return {"target_tokens": float(n or 0.0)}
