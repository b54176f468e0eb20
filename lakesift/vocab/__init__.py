"""Tokenizer (vocabulary) expansion, Colossal-LLaMA-2 style: add pieces for a new language to a base
tokenizer so its text takes fewer tokens, without changing what the base's ids mean.

The job is ``jobs/expand_vocab.py`` (Spark samples the text); this package is the method, without Spark:

**Bases.** A SentencePiece BPE ``tokenizer.model`` with byte fallback (LLaMA-style, :mod:`.spm`) or a
Hugging Face byte-level BPE ``tokenizer.json`` (GPT-2 / GPT-NeoX / Llama-3 style, :mod:`.bpe`);
:func:`load_base` tells them apart.

**Candidates.** Trained on a sample of the new text with the base's own text handling (a
SentencePiece BPE with ``character_coverage`` 0.9995 and byte fallback; a ``tokenizers`` BPE with the
base's normaliser and pre-tokenizer), the pieces the base lacks taken in the trained model's merge
order; and / or a given list (``{"piece": ...}`` JSONL or one piece per line, :func:`read_given`),
taken shortest first after the trained ones (:func:`select`).

**Merge rule** (each base's module has the argument). Old ids never change: new ids follow the largest
existing id. New pieces rank below every base merge (SentencePiece: scores below the base's lowest;
byte-level: merges appended after the base's), so the expanded tokenizer first does exactly what the
base does and only then merges further: **no text gets more tokens than before**, English included.
The model's embedding needs ``padded_size(vocab_size, pad_multiple)`` rows; no filler tokens are
added to the tokenizer.

**Reachability** (:func:`expand`). Appending a piece does not make BPE produce it: a whole word whose
intermediate pieces are not in the vocabulary is never built (人工智能 without 人工 and 智能), and a
piece the base's merges cut differently is dead. Every kept piece is *reachable alone* (encoding its
text gives that piece) and *formed* at least ``min_freq`` times when the training sample is encoded
with the final tokenizer (as a token, or inside a longer new piece it leads to); the others are
dropped with their reason, to a fixpoint, because dropping one can strand others.

**Checks and outputs** (:mod:`.report`). The first ``vocab_size`` id → piece mappings are compared
with the base's (:func:`old_ids_unchanged`); compression per language on held-out text (tokens per
character before and after); for a SentencePiece base the fast ``tokenizer.json`` converted from the
expanded model (:func:`.spm.to_hf`) is compared with SentencePiece itself on the held-out text
(:func:`.report.parity`).
"""

from lakesift.vocab.common import REASONS, Candidate, Dropped, VocabError, padded_size
from lakesift.vocab.expand import (
    Added,
    Expansion,
    expand,
    find_base,
    given_candidates,
    load_base,
    old_ids_unchanged,
    read_given,
    select,
)

__all__ = ["REASONS", "Added", "Candidate", "Dropped", "Expansion", "VocabError", "expand", "find_base",
           "given_candidates", "load_base", "old_ids_unchanged", "padded_size", "read_given", "select"]
