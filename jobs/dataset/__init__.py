"""The dataset job: decontaminate, tokenize, pack, mix and shuffle lake tables into shards for the trainer.

    python -m jobs.dataset --config conf/tokenize/dclm.yaml --lake LAKE --out OUT_URI \\
        [--tokenizer FILE_OR_HUB_ID] [--eval-dir DIR] [--seed S] [--set KEY=VALUE]
    spark-submit jobs/dataset/main.py …        (also: python jobs/dataset/main.py …; the old
                                                jobs/tokenize.py path still runs the same job)

Stages, one module each, all on the cluster (``main.py`` runs them in this order):

1. sources (``main.py``): each configured table (``filtered``, ``deduped`` … or a Delta path), read
   pinned to the version the run records, with its source name and each document's domain
   (``domains.py``: the source, a column, the URL's host or TLD, renamed by rules);
2. decontaminate (``decontam.py``): word 13-gram overlap with the evaluation task files
   (``udfs.decontam``); the index is built once on the driver and shipped to executors as a file;
   contaminated documents are dropped (or only annotated), and a per-task report says how many eval
   examples were found in the data and how many documents each touched;
3. tokenize + pack (``pack.py``): HF ``tokenizers`` in ``mapInArrow``, EOS after each document,
   sequences of ``seq_len + 1`` tokens per (source, domain, packing group) (``udfs.tokenizing``);
   the driver then plans the domains (``domains.py``: names, folders, their place in ``seq_id``);
4. ids, hold-out, mix (``mix.py``): a ``seq_id`` per sequence; a seeded share held out for validation
   (``domains.validation``); each remaining sequence written floor(f) or floor(f) + 1 times (seeded),
   f per source, or per domain when proportions name domains;
5. shuffle (``shuffle.py``): a seeded 64-bit key per written sequence, sequences spread over shard
   groups by key and sorted by key inside them;
6. write (``write.py``, ``writers/``): each group written by the executor that holds it through the
   configured writer (``output.format``; ``mds``: an MDS folder per group, ``tokens`` as
   ``ndarray:uint16`` when the vocabulary fits; ``domains.layout: streams``: a folder per domain and
   group), then the driver joins the groups (MDS: merges the folders' indexes into ``OUT/index.json``);
   the held-out sequences are written the same way under ``OUT/validation``.

``OUT/manifest.json`` and a row of the Delta ``datasets`` table (``manifest.py``) record the tokenizer,
sequence length, counts per source (documents, tokens, padding, dropped tail tokens, sequences
written), shards and the config; with a ``domains`` section also the counts per domain,
``OUT/reference_weights.json`` and rows of ``domain_stats`` (``docs/domains.md``). The same config,
inputs and seed give byte-identical shards; re-running replaces ``OUT``. The run log (``_runs``)
names the job ``tokenize``.
"""

from lakesift.log import get_logger

NAME = "tokenize"  # the job's name in _runs (jobs/report.py looks runs up by it), logs and the Spark app
log = get_logger(NAME)
