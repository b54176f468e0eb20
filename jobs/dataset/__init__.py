"""The dataset job: decontaminate, tokenize, pack, mix and shuffle lake tables into shards for the trainer.

    python -m jobs.dataset --config conf/tokenize/dclm.yaml --lake LAKE --out OUT_URI \\
        [--tokenizer FILE_OR_HUB_ID] [--eval-dir DIR] [--seed S] [--set KEY=VALUE]
    spark-submit jobs/dataset/main.py …        (also: python jobs/dataset/main.py …; the old
                                                jobs/tokenize.py path still runs the same job)

Stages, one module each, all on the cluster (``main.py`` runs them in this order):

1. sources (``main.py``): each configured table (``filtered``, ``deduped`` … or a Delta path), read
   pinned to the version the run records, with its source name;
2. decontaminate (``decontam.py``): word 13-gram overlap with the evaluation task files
   (``udfs.decontam``); the index is built once on the driver and shipped to executors as a file;
   contaminated documents are dropped (or only annotated), and a per-task report says how many eval
   examples were found in the data and how many documents each touched;
3. tokenize + pack (``pack.py``): HF ``tokenizers`` in ``mapInArrow``, EOS after each document,
   sequences of ``seq_len + 1`` tokens per packing group (``udfs.tokenizing``);
4. mix (``mix.py``): each sequence written floor(f) or floor(f) + 1 times (seeded), f per source;
5. shuffle (``shuffle.py``): a seeded 64-bit key per written sequence, sequences spread over shard
   groups by key and sorted by key inside them;
6. write (``write.py``, ``writers/``): each group written by the executor that holds it through the
   configured writer (``output.format``; ``mds``: an MDS folder per group, ``tokens`` as
   ``ndarray:uint16`` when the vocabulary fits), then the driver joins the groups (MDS: merges the
   folders' indexes into ``OUT/index.json``).

``OUT/manifest.json`` and a row of the Delta ``datasets`` table (``manifest.py``) record the tokenizer,
sequence length, counts per source (documents, tokens, padding, dropped tail tokens, sequences
written), shards and the config. The same config, inputs and seed give byte-identical shards;
re-running replaces ``OUT``. The run log (``_runs``) names the job ``tokenize``.
"""

from lakesift.log import get_logger

NAME = "tokenize"  # the job's name in _runs (jobs/report.py looks runs up by it), logs and the Spark app
log = get_logger(NAME)
