"""The interface between the trainer and what it optimises; see ``training.objectives`` for how SFT,
DPO and the DoReMi proxy plug in."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch
    from torch import nn

    from training.config import ScaleConfig

Batch = dict[str, "torch.Tensor"]


@dataclass(frozen=True)
class RunInfo:
    """What :meth:`Objective.bind` gets from the run being built."""

    out: Path  # the run's output folder (rank 0 writes in it)
    world: Any  # training.distributed.World
    model: Any  # the trained model, sharded
    accumulation: int  # micro-batches per rank per optimizer step
    domains: list[str] = field(default_factory=list)  # the data's domains, in a fixed order (empty: none)


class Objective:
    """What to compute on a micro-batch, and which sample fields it needs.

    The trainer, per optimizer step: draws the step's micro-batches (``collate`` made each one from
    the loader's samples), calls ``begin_step`` with all of them, then for each micro-batch
    ``loss(model, batch)`` and back-propagates ``loss / accumulation``; FSDP averages the gradients
    over ranks. So the gradient is that of the mean of the micro-batch losses over the global batch:
    an objective whose natural mean runs over something else (target tokens across the global batch)
    scales its micro-batch loss accordingly (see the package docstring). The metrics that ``loss``
    returns (scalar tensors, ``"loss"`` among them) are averaged the same way before they are logged.
    After the optimizer step the trainer calls ``end_step`` and logs the floats it returns.
    """

    name: ClassVar[str]
    fields: ClassVar[tuple[str, ...]] = ("tokens",)  # MDS columns each sample must have

    def __init__(self, scale: ScaleConfig, options: argparse.Namespace | None = None):
        """``options``: the parsed command line, holding the flags of :meth:`add_arguments`."""
        self.scale, self.options = scale, options

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """The objective's own flags, in a group of its own in ``python -m training.train --help``
        (every registered objective's group is listed; only the chosen one reads its flags)."""

    def bind(self, run: RunInfo) -> None:
        """Called once the model and the data are built, before a checkpoint is loaded: what the
        objective needs from the run (the domain list of the data, the output folder, the model)."""

    def collate(self, samples: list[dict]) -> Batch:
        """The batch adapter: one micro-batch of CPU tensors from the loader's decoded samples (the
        trainer moves every tensor to the device). Default: each of ``fields`` stacked.

        The batch's *first* entry must have one row per sample: mosaicml-streaming counts the samples a
        loader has handed out from it, and a resumed run continues the data order from that count (DPO's
        ``(2B, T)`` token tensor therefore comes after its per-pair ``prompt_len``)."""
        import numpy as np
        import torch

        return {f: torch.as_tensor(np.stack([s[f] for s in samples])) for f in self.fields}

    def count_tokens(self, batch: Batch) -> int:
        """The tokens the model reads in a micro-batch (this rank's, CPU), for ``tokens`` and tokens/s in the
        logs. Default: the input positions of ``tokens`` (all but the last of each row)."""
        t = batch.get("tokens")
        return 0 if t is None else int(t.shape[0] * max(t.shape[1] - 1, 0))

    def begin_step(self, batches: list[Batch]) -> None:
        """Called with the step's micro-batches (this rank's, CPU) before the first forward."""

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the loss to back-propagate, metrics to log) for one micro-batch on the device."""
        raise NotImplementedError

    def end_step(self) -> dict[str, float]:
        """Called after each optimizer step on every rank; extra per-step metrics (floats) to log."""
        return {}

    def extra_models(self) -> dict[str, nn.Module]:
        """Frozen modules used besides the trained model (DPO's reference), with their weights loaded.
        The builder shards them like the trained model, freezes them and puts them in eval mode; they
        are inputs, not checkpointed."""
        return {}

    def state_dict(self) -> dict:
        """State that must survive a restart (DoReMi's domain weights); saved in each checkpoint with
        torch distributed checkpointing, so tensors are fine. Empty: nothing is saved."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"objective {self.name!r} keeps no state, but the checkpoint has {sorted(state)}")


REGISTRY: dict[str, type[Objective]] = {}


def register(cls: type[Objective]) -> type[Objective]:
    """Class decorator: make ``cls`` selectable as ``--objective <cls.name>``."""
    REGISTRY[cls.name] = cls
    return cls


def build(name: str, scale: ScaleConfig, options: argparse.Namespace | None = None) -> Objective:
    """The objective registered as ``name`` (``training.objectives`` imports the built-in ones)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown objective {name!r} (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name](scale, options)
