"""What a training stage leaves frozen (``--freeze``, a stage's ``freeze`` in ``stages.yaml``):

* ``none``: everything trains;
* ``non_embedding``: only the input embedding and the output head train (Colossal-LLaMA-2's
  ``--freeze_non_embeds_params``); the other parameters stop requiring gradients, so their weight
  gradients are not computed;
* ``new_rows``: only the rows of the ids a vocabulary expansion added (``base_vocab_size`` onwards) of
  the embedding and the head train. The other rows' gradients are zeroed before clipping (the gradient
  norm is that of the trained rows), and after every optimizer step they are copied back from a snapshot,
  so neither Adam nor the decoupled weight decay moves them: old rows stay bit for bit.

Works on plain tensors and on FSDP2's DTensor shards (each rank masks and restores the rows of its own
shard). The model exposes ``embed`` (an ``nn.Embedding``) and ``head`` (an ``nn.Linear``; the same weight
when tied), as ``training.model.Transformer`` and ``training.hf.HFCausalLM`` do.
"""

from __future__ import annotations

import torch

MODES = ("none", "non_embedding", "new_rows")


def _local_rows(p: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(this rank's rows of ``p`` as a plain tensor, the global index of its first row)."""
    if hasattr(p, "device_mesh"):  # DTensor sharded on dim 0 by FSDP2
        from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

        _, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
        return p.to_local(), int(offset[0])
    return p, 0


class Freezer:
    """Applies ``mode`` to ``model`` (:meth:`apply`, before the optimizer is built), then per step
    :meth:`mask_grads` (after backward, before clipping) and :meth:`restore` (after the optimizer step)."""

    def __init__(self, model, mode: str, base_vocab: int | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown freeze mode {mode!r} (known: {', '.join(MODES)})")
        if mode == "new_rows" and not base_vocab:
            raise SystemExit("freeze new_rows needs the base vocabulary size: start from a checkpoint resized by "
                             "python -m training.resize (its config records vocab.base_vocab_size)")
        self.model, self.mode, self.base = model, mode, base_vocab
        self._snap: list[tuple[torch.Tensor, torch.Tensor, int]] = []  # (parameter, its kept rows, how many)

    def matrices(self) -> list[torch.Tensor]:
        """The embedding and head weights (once when tied)."""
        out = [self.model.embed.weight]
        if self.model.head.weight is not self.model.embed.weight:
            out.append(self.model.head.weight)
        return out

    @torch.no_grad()
    def apply(self) -> str:
        """Set ``requires_grad`` and snapshot the frozen rows; returns a line for the log."""
        if self.mode == "none":
            return "freeze: none (every parameter trains)"
        keep = {id(p) for p in self.matrices()}
        for p in self.model.parameters():
            p.requires_grad_(id(p) in keep)
        trained = sum(p.numel() for p in self.matrices())
        if self.mode == "non_embedding":
            return f"freeze: non_embedding ({trained:,} parameters of the embedding and head train)"
        for p in self.matrices():
            local, start = _local_rows(p)
            n_old = max(0, min(local.shape[0], self.base - start))
            self._snap.append((p, local[:n_old].clone(), n_old))
        rows = self.matrices()[0].shape[0] - self.base
        return (f"freeze: new_rows (rows {self.base:,}..{self.base + rows - 1:,} of the embedding and head train: "
                f"{rows * self.matrices()[0].shape[1] * len(self.matrices()):,} parameters; old rows restored "
                "after every step)")

    @torch.no_grad()
    def mask_grads(self) -> None:
        for p, _, n_old in self._snap:
            if p.grad is not None and n_old:
                _local_rows(p.grad)[0][:n_old].zero_()

    @torch.no_grad()
    def restore(self) -> None:
        for p, saved, n_old in self._snap:
            if n_old:
                _local_rows(p)[0][:n_old].copy_(saved)
