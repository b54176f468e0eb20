"""Causal language modelling: next-token cross-entropy plus z-loss, DCLM's pre-training objective.

Bucketed datasets (the dataset job's ``buckets``) carry per sequence its document starts (``starts``) and
the padding of a group's last sequence (``pad``): padding never counts in the loss (its targets are
ignored, and the mean runs over the other targets of the micro-batch), and with ``--doc-attention`` a
position attends only to its own document, positions restarting at each document
(``training.model.document_attention``): every document is then trained as if it were alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.objectives.base import Batch, Objective, register

IGNORE = -100


def causal_lm_loss(logits: torch.Tensor, targets: torch.Tensor, z_loss: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy (fp32) plus ``z_loss * mean(logsumexp(logits)^2)`` over the targets that are not
    ``IGNORE`` (-100); returns (total, ce)."""
    logits = logits.float().view(-1, logits.shape[-1])
    t = targets.reshape(-1)
    ce = F.cross_entropy(logits, t, ignore_index=IGNORE)
    if z_loss:
        lse = torch.logsumexp(logits, dim=-1)
        keep = t != IGNORE
        z = lse.pow(2).mean() if bool(keep.all()) else lse[keep].pow(2).mean()
        return ce + z_loss * z, ce
    return ce, ce


def doc_ids_from_starts(starts: list, length: int) -> torch.Tensor:
    """(batch, length) document numbers from each sequence's start positions (positions >= length ignored)."""
    import numpy as np

    flags = np.zeros((len(starts), length), dtype=np.int64)
    for i, st in enumerate(starts):
        st = np.asarray(st, dtype=np.int64)
        flags[i, st[st < length]] = 1
    flags[:, 0] = 1
    return torch.from_numpy(np.cumsum(flags, axis=1))


@register
class CausalLM(Objective):
    """Every position predicts the next token; the logged ``loss`` is the cross-entropy without z-loss.
    Samples' ``tokens`` are cropped to ``seq_len + 1`` (inputs and shifted targets)."""

    name = "clm"
    fields = ("tokens",)

    def __init__(self, scale, options=None):
        super().__init__(scale, options)
        self.doc_attention = bool(getattr(options, "doc_attention", False))
        if self.doc_attention:
            self.fields = ("tokens", "starts")

    @classmethod
    def add_arguments(cls, group) -> None:
        group.add_argument("--doc-attention", action="store_true",
                           help="limit attention to each document of a packed sequence (needs the `starts` "
                                "field of a bucketed dataset: the dataset job's buckets.boundaries)")

    def collate(self, samples: list[dict]) -> Batch:
        import numpy as np

        n = self.scale.model.seq_len + 1
        full = np.stack([s["tokens"] for s in samples])
        tokens = torch.from_numpy(full[:, :n].astype(np.int64))
        batch = {"tokens": tokens}
        if "pad" in samples[0]:  # padding at the end of the sequence: its targets are ignored
            cut = full.shape[1] - tokens.shape[1]
            pads = [max(0, int(s["pad"]) - cut) for s in samples]
            if any(pads):
                targets = tokens[:, 1:].clone()
                for i, p in enumerate(pads):
                    if p:
                        targets[i, targets.shape[1] - p:] = IGNORE
                batch["targets"] = targets
        if self.doc_attention:
            batch["doc_ids"] = doc_ids_from_starts([s["starts"] for s in samples], n - 1)
        return batch

    def loss(self, model, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tokens = batch["tokens"]
        targets = batch.get("targets", tokens[:, 1:])
        doc_ids = batch.get("doc_ids")
        logits = model(tokens[:, :-1]) if doc_ids is None else model(tokens[:, :-1], doc_ids)
        loss, ce = causal_lm_loss(logits, targets, self.scale.z_loss)
        return loss, {"loss": ce}
