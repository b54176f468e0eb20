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

Built for post-training (no change in the trainer was needed):

* ``sft`` (:mod:`training.objectives.sft`; ``fields = ("tokens", "loss_mask", "starts")``, the SFT MDS
  layout the tokenize job writes): cross-entropy on the target tokens only (``loss_mask``), packed
  examples kept apart by block-diagonal attention (``doc_ids`` from ``starts``). The loss is the mean over
  the *target tokens of the whole global batch*, not a mean of micro-batch means: ``begin_step`` counts
  the step's target tokens on this rank, all-reduces the count (SUM) into ``n``, and ``loss`` returns
  ``sum(masked token losses) * accumulation * world / n``; the trainer's ``/ accumulation`` and FSDP's
  average over ranks then leave exactly ``sum / n``, independent of micro-batching (the DoReMi proxy
  normalises per domain this way). No z-loss unless ``--sft-z-loss``.
* ``dpo`` (:mod:`training.objectives.dpo`; ``fields = ("chosen", "rejected", "prompt_len")``, one pair
  per sample): ``collate`` stacks ``[chosen; rejected]`` right-padded into one forward; sequence
  log-probabilities are sums over the completion tokens; the reference (``--reference``, default the
  run's ``--init-from``) comes from ``training.start.load_full`` through ``extra_models``, which the
  builder shards like the policy and freezes, or its log-probs are precomputed into the data
  (``--dpo-precomputed-ref``; ``python -m training.objectives.dpo precompute``). Losses sigmoid (cDPO
  label smoothing), ipo and hinge (``--dpo-loss``, ``--beta``), with TRL's metric names
  (``rewards/chosen`` … ``logps/rejected``). Every micro-batch holds the same number of pairs, so the
  trainer's averaging is the mean over the global batch's pairs. Nothing to checkpoint: the reference
  is an input.
"""

from training.objectives import clm, doremi, dpo, sft
from training.objectives.base import REGISTRY, Objective, RunInfo, build, register

__all__ = ["REGISTRY", "Objective", "RunInfo", "build", "clm", "doremi", "dpo", "register", "sft"]
