"""MDS writers of the post-training datasets (``jobs/instruct.py build``): the same shard groups and index
merge as :class:`~jobs.dataset.writers.mds.MDSShardWriter`, with the columns the trainer's SFT and DPO
objectives read. Not in ``WRITERS``: the dataset job's samples do not have these fields.

* :class:`SFTMDSWriter` (``kind: sft``): ``tokens`` ``ndarray:uint32:L``, ``loss_mask`` ``ndarray:uint8:L``
  (1: token t is a loss target, predicted from ``tokens[:t]``), ``starts`` ``ndarray:int32`` (where each
  example begins; 0 first), ``pad`` ``int32`` (pad tokens at the end), ``n_examples`` ``int32``; L = seq_len + 1.
* :class:`DPOMDSWriter` (``kind: dpo``): ``chosen`` / ``rejected`` ``ndarray:uint32`` (prompt + completion,
  variable length), ``prompt_len`` ``int32`` (the shared prefix), ``pair_id`` ``str``.
"""

from __future__ import annotations

from jobs.dataset.writers.mds import MDSShardWriter


class SFTMDSWriter(MDSShardWriter):
    name, label = "mds-sft", "MDS (SFT)"

    @classmethod
    def columns(cls, dtype: str, length: int, write_ids: bool = False, with_domain: bool = False,
                boundaries: bool = False) -> dict[str, str]:
        return {"tokens": f"ndarray:{dtype}:{length}", "loss_mask": f"ndarray:uint8:{length}",
                "starts": "ndarray:int32", "pad": "int32", "n_examples": "int32"}


class DPOMDSWriter(MDSShardWriter):
    name, label = "mds-dpo", "MDS (DPO)"

    @classmethod
    def columns(cls, dtype: str, length: int, write_ids: bool = False, with_domain: bool = False,
                boundaries: bool = False) -> dict[str, str]:
        return {"chosen": f"ndarray:{dtype}", "rejected": f"ndarray:{dtype}", "prompt_len": "int32",
                "pair_id": "str"}
