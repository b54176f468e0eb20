#!/usr/bin/env python
"""The Data-Juicer side of bench/zh_filter.py; runs in its own venv (py-data-juicer's dependencies are
not the project's). Reads JSONL documents, runs Data-Juicer's closest Chinese ops with its Python API in
one run, prints one JSON line:
{"docs", "kept", "seconds", "wall_seconds", "num_proc", "ops": {op: seconds}, "keep": PATH}.

    python bench/datajuicer_peer.py DOCS.jsonl FLAGGED_WORDS_DIR [--num-proc 1] [--limit 0]
        [--keep-out PATH] [--flagged-max-ratio 0.0045]

Ops, in this order (Data-Juicer's own operators, their batched code paths, ``process`` of its
NestedDataset over a Hugging Face ``datasets.Dataset``: what its DefaultExecutor runs for each op):

* ``chinese_convert_mapper`` mode t2s (OpenCC);
* ``text_length_filter`` min_len 201 (our page_length_filter: > 200 characters);
* ``character_repetition_filter`` rep_len 10, max_ratio 0.5 (ROOTS; ours: char_repetition_filter);
* ``flagged_words_filter`` lang zh, tokenization with jieba, use_words_aug (word 2-grams joined
  with ""), max_ratio ``--flagged-max-ratio``; the word list: FLAGGED_WORDS_DIR/*flagged_words*.json
  (``{"zh": [...]}``, made by bench/zh_filter.py from our blacklist dictionary);
* ``special_characters_filter`` max_ratio 0.25.

Offline set-up (this machine reaches PyPI only): Data-Juicer's ``tokenization=True`` loads a SentencePiece
model (``zh.sp.model``) from its model host; jieba is plugged in as that tokenizer instead (the same
``encode_as_pieces`` call). ``free_models`` (run after each op: it frees GPU models through torch, which
a CPU text run does not need and this venv does not have) is a no-op here, and Data-Juicer's lazy
loader may not pip-install anything during a run (a missing package is an error).

``seconds``: op construction (OpenCC and the word list loaded) through the last op, jieba's dictionary
load included, JSONL reading and ``import data_juicer`` not; ``wall_seconds``: the whole process.
``keep``: a JSON file ``{"keep": [0/1 per input document, in input order], "dropped_by": [the op that
dropped it, or null]}`` (from the dataset left after each filter, read after the timing).
"""

import argparse
import json
import time

T_START = time.perf_counter()

import datasets  # noqa: E402
from data_juicer.core.data import NestedDataset  # noqa: E402
from data_juicer.ops import base_op  # noqa: E402
from data_juicer.ops.filter.character_repetition_filter import CharacterRepetitionFilter  # noqa: E402
from data_juicer.ops.filter.flagged_words_filter import FlaggedWordFilter  # noqa: E402
from data_juicer.ops.filter.special_characters_filter import SpecialCharactersFilter  # noqa: E402
from data_juicer.ops.filter.text_length_filter import TextLengthFilter  # noqa: E402
from data_juicer.ops.mapper.chinese_convert_mapper import ChineseConvertMapper  # noqa: E402
from data_juicer.utils.lazy_loader import LazyLoader  # noqa: E402


def _no_install(cls, package_spec, pip_args=None):
    raise ImportError(f"datajuicer_peer: {package_spec} is not installed in this venv (no installs during a run)")


LazyLoader._install_package = classmethod(_no_install)
base_op.free_models = lambda *a, **k: None


class JiebaPieces:
    """jieba behind SentencePiece's ``encode_as_pieces``: what flagged_words_filter calls to tokenize."""

    def __init__(self):
        import jieba

        jieba.setLogLevel(60)
        jieba.initialize()
        self._cut = jieba.lcut

    def encode_as_pieces(self, text):
        return self._cut(text)


def jieba_tokenizer(device="cpu"):
    """A model key for data_juicer.utils.model_utils.get_model (called with ``device``)."""
    return JiebaPieces()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jsonl")
    ap.add_argument("flagged_words_dir")
    ap.add_argument("--num-proc", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--keep-out", default=None)
    ap.add_argument("--flagged-max-ratio", type=float, default=0.0045)
    args = ap.parse_args()

    ids, texts = [], []
    with open(args.jsonl, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if args.limit and i >= args.limit:
                break
            d = json.loads(line)
            ids.append(d["doc_id"])
            texts.append(d["text"])
    datasets.disable_progress_bars()
    datasets.disable_caching()

    t0 = time.perf_counter()
    np_ = {"num_proc": args.num_proc}
    flagged = FlaggedWordFilter(lang="zh", tokenization=False, max_ratio=args.flagged_max_ratio,
                                flagged_words_dir=args.flagged_words_dir, use_words_aug=True,
                                words_aug_group_sizes=[2], words_aug_join_char="", **np_)
    flagged.model_key = jieba_tokenizer  # tokenization=True, with jieba as the tokenizer (module docstring)
    ops = [
        ChineseConvertMapper(mode="t2s", **np_),
        TextLengthFilter(min_len=201, **np_),
        CharacterRepetitionFilter(rep_len=10, max_ratio=0.5, **np_),
        flagged,
        SpecialCharactersFilter(max_ratio=0.25, **np_),
    ]
    ds = NestedDataset(datasets.Dataset.from_dict({"text": texts, "doc_id": ids}))
    op_seconds, left = {}, []
    for op in ops:
        t = time.perf_counter()
        ds = ds.process([op], open_monitor=False)
        op_seconds[op._name] = round(time.perf_counter() - t, 3)
        left.append(ds if isinstance(op, base_op.Filter) else None)
    seconds = time.perf_counter() - t0

    # which op dropped each document (outside the timing)
    dropped_by, alive = {}, set(ids)
    for op, ids_left in zip(ops, left, strict=True):
        if ids_left is not None:
            ids_left = set(ids_left["doc_id"])
            for d in alive - ids_left:
                dropped_by[d] = op._name
            alive = ids_left
    keep = [0 if d in dropped_by else 1 for d in ids]
    if args.keep_out:
        with open(args.keep_out, "w", encoding="utf-8") as f:
            json.dump({"keep": keep, "dropped_by": [dropped_by.get(d) for d in ids]}, f)
    print(json.dumps({"docs": len(ids), "kept": sum(keep), "seconds": seconds,
                      "wall_seconds": time.perf_counter() - T_START, "num_proc": args.num_proc,
                      "ops": op_seconds, "keep": args.keep_out}))


if __name__ == "__main__":
    main()
