"""The torch FSDP trainer that streams Lakesift's MDS shards (issue 7) and the evaluation harness
(issue 8). Nothing here imports Spark.

``train`` (the command: builds the pieces, runs the trainer), ``trainer`` (the loop, accumulation,
logging, checkpoint cadence), ``objectives`` (what is optimised: causal LM today; how SFT, DPO and
DoReMi plug in), ``data`` (the MDS loader and the objective's batch adapter), ``parallelize`` (FSDP2,
activation checkpointing, torch.compile), ``checkpoint`` (save / load / keep, the loader's state),
``distributed`` (the process group), ``optim`` (AdamW, the learning-rate schedule), ``model`` (the
open_lm-style transformer), ``config`` (scales), ``export`` (the final model folder), ``eval``
(CORE / EXTENDED)."""
