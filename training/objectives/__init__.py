"""Training objectives: what the trainer optimises on a micro-batch, selected by name with
``python -m training.train --objective NAME`` (default ``clm``; the name goes in each checkpoint's
``meta.json`` and a run does not resume under another objective).

An objective (:class:`~training.objectives.base.Objective`) says which MDS fields it needs from a
sample (``fields``), turns the loader's samples into a micro-batch (``collate``: the batch adapter),
returns ``(loss, metrics)`` for a micro-batch (``loss``), and may keep frozen modules
(``extra_models``), its own flags (``add_arguments``), what it needs from the run being built (``bind``:
the data's domains, the output folder, the model), per-step hooks (``begin_step`` / ``end_step``) and state that must go in the
checkpoint (``state_dict`` / ``load_state_dict``). Register one with ``@register`` in a module of this
package and import it below. Built in: ``clm`` (:mod:`training.objectives.clm`, next-token
cross-entropy plus z-loss).

Built in besides ``clm``: ``doremi`` (:mod:`training.objectives.doremi`, the DoReMi proxy: Group DRO
over domains against a frozen reference model, with its own flags ``--reference``, ``--doremi-eta`` …,
the domain list from ``RunInfo`` (``bind``), the weights checkpointed through ``state_dict``).

How the planned objectives fit (none of them needs a change in the trainer):

* **SFT** (``fields = ("tokens", "loss_mask")``; the tokenize job writes the mask beside the tokens):
  ``collate`` crops both to ``seq_len + 1``. The loss is the mean over the *target tokens of the whole
  global batch*, not a mean of micro-batch means (micro-batches hold different numbers of target
  tokens): ``begin_step`` counts the step's target tokens on this rank (``loss_mask[:, 1:].sum()`` over
  its micro-batches), all-reduces the count over ranks (SUM) into ``n``, and ``loss`` returns
  ``sum(masked token losses) * accumulation * world / n``; the trainer's ``/ accumulation`` and FSDP's
  average over ranks then leave exactly ``sum / n`` (the DoReMi proxy normalises per domain this way).
* **DPO** (``fields = ("chosen", "rejected", "chosen_mask", "rejected_mask")``): ``extra_models``
  returns ``{"reference": training.export.load(sft_folder)}``, which the builder shards like the policy
  and freezes; ``loss`` sums the response-token log-probabilities of chosen and rejected under the policy
  and (``torch.no_grad()``) the reference and returns ``-logsigmoid(beta * margin).mean()`` with the
  reward margin and accuracy as metrics. Every micro-batch holds the same number of pairs, so the
  trainer's averaging is the right one. Nothing to checkpoint: the reference is an input.
"""

from training.objectives import clm, doremi
from training.objectives.base import REGISTRY, Objective, RunInfo, build, register

__all__ = ["REGISTRY", "Objective", "RunInfo", "build", "clm", "doremi", "register"]
