"""How the model runs on the ranks, apart from what it computes (``training.model``): activation
checkpointing and ``torch.compile`` per block, then FSDP2 (``fully_shard`` per block, then the root;
bf16 parameters with fp32 gradient reduction on GPU, fp32 on CPU). The seeded initialisation and the
checkpoints do not depend on them: activation checkpointing keeps parameter names, and the ``_orig_mod.``
that ``torch.compile`` adds is left out by ``training.model.init_parameters`` and by torch's state dicts.
"""

from __future__ import annotations

import torch
from torch import nn


class _Checkpointed:
    """Mixin put in front of a block's class: its whole call (FSDP's hooks and, when compiled, the
    compiled forward included) runs under non-reentrant activation checkpointing while training."""

    def __call__(self, *args, **kwargs):
        if self.training:
            from torch.utils.checkpoint import checkpoint

            return checkpoint(super().__call__, *args, use_reentrant=False, **kwargs)
        return super().__call__(*args, **kwargs)


def checkpoint_activations(module: nn.Module) -> None:
    """Recompute ``module``'s activations in the backward pass instead of keeping them. The module
    stays where it is (a class swap, as FSDP2 does), so parameter names do not change."""
    cls = type(module)
    if not issubclass(cls, _Checkpointed):
        module.__class__ = type(f"Checkpointed{cls.__name__}", (_Checkpointed, cls), {})


def mixed_precision(device: torch.device):
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if device.type == "cuda":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def parallelize(model: nn.Module, device: torch.device, *, compile: bool = False, act_ckpt: bool = False,
                frozen: bool = False) -> None:
    """Shard ``model`` (a ``training.model.Transformer``, on the meta device or not) in place over the
    default process group: each block (optionally compiled, then checkpointed) and then the root. The
    root keeps its parameters gathered from forward to backward, unless ``frozen`` (no backward)."""
    from torch.distributed.fsdp import fully_shard

    mp = mixed_precision(device)
    for i, block in enumerate(model.layers):
        if compile:  # parameter names gain ``_orig_mod.``, which init and checkpoints leave out
            model.layers[i] = block = torch.compile(block)
        if act_ckpt:
            checkpoint_activations(block)
        fully_shard(block, mp_policy=mp, reshard_after_forward=True)
    fully_shard(model, mp_policy=mp, reshard_after_forward=True if frozen else None)


def place_frozen(model: nn.Module, device: torch.device) -> nn.Module:
    """A module used without training (DPO's reference): sharded like the trained model (FSDP2 moves
    it to the device), no gradients, eval mode."""
    model.requires_grad_(False)
    parallelize(model, device, frozen=True)
    return model.eval()


def build_model(cfg, device: torch.device, seed: int, *, compile: bool = False, act_ckpt: bool = False) -> nn.Module:
    """A ``training.model.Transformer`` built on the meta device, parallelized, materialised on
    ``device`` with ``to_empty`` and initialised per parameter from ``seed`` (the same values for any
    number of ranks)."""
    from training.model import Transformer, init_parameters

    with torch.device("meta"):
        model = Transformer(cfg)
    parallelize(model, device, compile=compile, act_ckpt=act_ckpt)
    model.to_empty(device=device)
    init_parameters(model, seed)
    return model
