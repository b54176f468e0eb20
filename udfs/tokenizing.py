"""Tokenize, pack and mix: the per-document and per-group logic of the dataset job (``jobs/dataset/``).
No Spark; the config models are in ``jobs/dataset/config.py``.

Packing (DCLM's): each document's tokens plus EOS, documents concatenated in a fixed order, the stream
cut into sequences of ``seq_len + 1`` tokens (2049 for a 2048 context: inputs and shifted targets).
Documents are packed in *groups*: a document's group is a hash of its id, and within a group documents
follow their id, so the packing does not depend on how Spark partitions the data. Only the last
sequence of a group can be partial: ``remainder: drop`` drops it (its tokens are counted as dropped),
``pad`` fills it with ``pad_token_id`` (counted as padding).

Mixing (DCLM's frequency semantics): a sequence of a source with frequency ``f`` is written
``floor(f)`` times plus once more with probability ``frac(f)``, the draw being a seeded hash of the
sequence, so the same seed gives the same mix. ``proportions`` (or a weights file, as DoReMi writes)
are turned into frequencies from the token counts of the mixing units (sources, or domains).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# ------------------------------------------------------------------------------------- tokenizer

def resolve_tokenizer(name: str) -> str:
    """The tokenizer's JSON text, from a file, a folder (``tokenizer.json``, else the first
    ``*tokenizer.json``), a cloud URI (fetched once into the local cache) or a Hugging Face hub id
    (``hf://owner/repo`` or a bare ``owner/repo``: its ``tokenizer.json``); see ``lakesift.resolve``."""
    from lakesift.io import local_path
    from lakesift.resolve import ResolveError, resolve

    # a local folder is taken whole (the rule below picks its file); anything else asks for tokenizer.json
    local_folder = Path(local_path(name)).is_dir()
    p = Path(resolve(name, "tokenizer", file=None if local_folder else "tokenizer.json", bare_hub_ids=True))
    if p.is_dir():  # a local folder, or a cloud folder fetched whole
        cands = sorted(p.glob("tokenizer.json")) or sorted(p.glob("*tokenizer.json"))
        if not cands:
            raise ResolveError(f"no tokenizer.json in {p}")
        p = cands[0]
    return p.read_text(encoding="utf-8")


@lru_cache(maxsize=4)
def load_tokenizer(json_text: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json_text)


def tokenizer_info(json_text: str, eos_token: str) -> dict:
    """Vocabulary size (added tokens included), the id of ``eos_token`` and a short hash of the JSON."""
    tok = load_tokenizer(json_text)
    eos = tok.token_to_id(eos_token)
    if eos is None:
        raise ValueError(f"tokenizer has no token {eos_token!r} (tokenizer.eos_token)")
    vocab = tok.get_vocab_size(with_added_tokens=True)
    return {"vocab_size": vocab, "eos_id": eos, "sha1": hashlib.sha1(json_text.encode()).hexdigest()[:12]}


def encode(tok, texts: list[str], eos_id: int | None, batch_size: int = 256) -> list[list[int]]:
    out: list[list[int]] = []
    for i in range(0, len(texts), batch_size):
        for enc in tok.encode_batch(texts[i:i + batch_size], add_special_tokens=False):
            ids = enc.ids
            if eos_id is not None:
                ids = [*ids, eos_id]
            out.append(ids)
    return out


# ------------------------------------------------------------------------------------- packing

def pack(token_lists: Iterable[list[int]], length: int, remainder: str, pad_id: int
         ) -> Iterator[tuple[np.ndarray | None, int, int]]:
    """Cut the concatenation of ``token_lists`` into sequences of ``length`` tokens.

    Yields (sequence, padding, dropped): full sequences with 0, 0; then for a partial tail either the
    padded sequence with its pad count (``pad``) or ``None`` with the dropped count (``drop``)."""
    buf: list[int] = []
    for ids in token_lists:
        buf.extend(ids)
        while len(buf) >= length:
            yield np.asarray(buf[:length], dtype=np.int64), 0, 0
            del buf[:length]
    if buf:
        if remainder == "pad":
            n = length - len(buf)
            yield np.asarray(buf + [pad_id] * n, dtype=np.int64), n, 0
        else:
            yield None, 0, len(buf)


def pack_bounded(token_lists: Iterable[list[int]], length: int, pad_id: int
                 ) -> Iterator[tuple[np.ndarray, int, np.ndarray]]:
    """:func:`pack` for bucketed datasets, which lose no token and keep document boundaries: the
    documents concatenated and cut into sequences of ``length``, the last one padded with ``pad_id``.

    Yields (sequence, padding, starts): ``starts`` the positions in the sequence where a document (or
    the padding) begins, always with 0 first (a document continued from the previous sequence begins
    a segment there too), so ``cumsum`` of the start flags numbers the segments the trainer keeps apart
    (``--doc-attention``); the trainer also leaves the padding's positions out of the loss."""
    lists = [np.asarray(t, dtype=np.int64) for t in token_lists]
    if not lists or not sum(len(t) for t in lists):
        return
    flat = np.concatenate(lists)
    doc_starts = np.cumsum([0] + [len(t) for t in lists[:-1]])
    n = -(-len(flat) // length)
    pad = n * length - len(flat)
    if pad:
        flat = np.concatenate([flat, np.full(pad, pad_id, dtype=np.int64)])
        doc_starts = np.append(doc_starts, n * length - pad)
    for i in range(n):
        lo = i * length
        inside = doc_starts[(doc_starts > lo) & (doc_starts < lo + length)] - lo
        yield flat[lo:lo + length], pad if i == n - 1 else 0, np.unique(np.concatenate([[0], inside])).astype(np.int32)


def chunks(token_lists: Iterable[list[int]], seq_len: int) -> int:
    """DoReMi's "nopack" count: the sequences of ``seq_len`` tokens the documents would fill if each
    were cut on its own, sum of ceil(len / seq_len)."""
    return sum(-(-len(ids) // seq_len) for ids in token_lists)


# ------------------------------------------------------------------------------------- mixing

def read_weights(path: str) -> dict[str, float]:
    """``{name: weight}`` from a JSON / YAML file: a flat mapping, ``{"weights": {…}}``, DoReMi's config
    ``{"train_domain_weights": {…}, "eval_domain_weights": {…}}`` (the train weights) or a file that
    has ``train_domain_weights`` beside other keys (the trainer's ``domain_weights.json``)."""
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    for key in ("train_domain_weights", "weights"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not data or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of name to weight >= 0 (flat, under weights: or "
                         "train_domain_weights:)")
    return {str(k): float(v) for k, v in data.items()}


def target_shares(mixing: Any) -> dict[str, float]:
    """The proportions mode's ``{name: share}`` (summing to 1), from ``proportions`` or ``weights_file``."""
    props = read_weights(mixing.weights_file) if mixing.weights_file else dict(mixing.proportions or {})
    total = sum(props.values())
    if total <= 0:
        raise ValueError("mixing: proportions must sum to more than 0")
    return {k: v / total for k, v in props.items()}


def share_frequencies(shares: dict[str, float], tokens: dict[str, float], total_tokens: int | None,
                      unit: str = "sources") -> dict[str, float]:
    """Per mixing unit (source or domain, the keys of ``tokens``: its tokens), the frequency that writes
    ``share x budget`` tokens of it; the budget is ``total_tokens`` or all of ``tokens``. A name of
    ``shares`` that is not a unit is a :class:`ValueError` naming it and the known ones."""
    unknown = set(shares) - set(tokens)
    if unknown:
        raise ValueError(f"mixing: proportions name unknown {unit} {sorted(unknown)} (known: {sorted(tokens)})")
    budget = total_tokens or sum(tokens.values())
    return {k: 0.0 if have == 0 else shares.get(k, 0.0) * budget / have for k, have in tokens.items()}


def frequencies(sources: Iterable[Any], mixing: Any, tokens: dict[str, float]) -> dict[str, float]:
    """Per-source frequency: as configured (frequency mode), or from target token proportions.

    ``sources``: the config's sources (``name``, ``frequency``); ``mixing``: its mixing section
    (``mode``, ``proportions``, ``weights_file``, ``total_tokens``); ``tokens``: input tokens per source."""
    sources = list(sources)
    if mixing.mode == "frequency":
        return {s.name: s.frequency for s in sources}
    return share_frequencies(target_shares(mixing), {s.name: tokens.get(s.name, 0) for s in sources},
                             mixing.total_tokens)


def repeats(frequency: float, u: float) -> int:
    """DCLM: floor(f) copies, plus one with probability frac(f); ``u`` a uniform draw in [0, 1)."""
    whole = math.floor(frequency)
    return whole + (1 if u < frequency - whole else 0)
