"""Tokenize, pack and mix: the per-document and per-group logic of jobs/tokenize.py. No Spark.

Packing (DCLM's): each document's tokens plus EOS, documents concatenated in a fixed order, the stream
cut into sequences of ``seq_len + 1`` tokens (2049 for a 2048 context: inputs and shifted targets).
Documents are packed in *groups*: a document's group is a hash of its id, and within a group documents
follow their id, so the packing does not depend on how Spark partitions the data. Only the last
sequence of a group can be partial: ``remainder: drop`` drops it (its tokens are counted as dropped),
``pad`` fills it with ``pad_token_id`` (counted as padding).

Mixing (DCLM's frequency semantics): a sequence of a source with frequency ``f`` is written
``floor(f)`` times plus once more with probability ``frac(f)``, the draw being a seeded hash of the
sequence, so the same seed gives the same mix. ``proportions`` (or a weights file, as DoReMi writes)
are turned into frequencies from the sources' token counts.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from lakesift.config import StrictModel


class Source(StrictModel):
    name: str
    table: str  # a table of the lake by name, or a Delta path / URI
    frequency: float = Field(1.0, ge=0)  # mixing: times each sequence is written (frequency mode)
    text_column: str = "text"
    id_column: str = "doc_id"


class Mixing(StrictModel):
    mode: Literal["frequency", "proportions"] = "frequency"
    proportions: dict[str, float] | None = None  # source -> share of written tokens
    weights_file: str | None = None  # YAML / JSON {source: weight} (e.g. DoReMi's), normalised
    total_tokens: int | None = Field(None, gt=0)  # proportions: token budget (default: all input tokens)


class Decontamination(StrictModel):
    enabled: bool = True
    eval_dir: str | None = None  # default: $LAKESIFT_SHARED/data/eval
    tasks: list[str] = ["**/*.jsonl"]  # globs under eval_dir
    ngram: int = Field(13, ge=3)
    lowercase: bool = True
    min_matches: int = Field(1, ge=1)  # contaminated: at least this many of the document's n-grams in the evals
    action: Literal["drop", "annotate"] = "drop"
    if_missing: Literal["error", "skip"] = "error"  # eval_dir absent


class TokenizerConfig(StrictModel):
    name: str = "EleutherAI/gpt-neox-20b"  # a tokenizer.json file, a folder holding one, or a hub id
    eos_token: str = "<|endoftext|>"
    append_eos: bool = True
    batch_size: int = Field(256, gt=0)


class Packing(StrictModel):
    seq_len: int = Field(2048, gt=0)  # context length; sequences hold seq_len + 1 tokens
    remainder: Literal["drop", "pad"] = "drop"
    pad_token_id: int | None = None  # default: the EOS id
    groups: int = Field(64, gt=0)  # packing groups per source


class Shuffle(StrictModel):
    seed: int = 42
    sequences_per_group: int = Field(16384, gt=0)  # output shard groups = ceil(sequences / this)


class Output(StrictModel):
    size_limit: int | str = "64mb"  # per MDS shard
    compression: str | None = None  # e.g. zstd
    dtype: Literal["auto", "uint16", "uint32"] = "auto"  # auto: uint16 when the vocabulary fits
    write_ids: bool = True  # also store seq_id / source (to audit and undo the shuffle)


class TokenizeConfig(StrictModel):
    name: str = "dataset"
    sources: list[Source]
    mixing: Mixing = Mixing()
    decontamination: Decontamination = Decontamination()
    tokenizer: TokenizerConfig = TokenizerConfig()
    packing: Packing = Packing()
    shuffle: Shuffle = Shuffle()
    output: Output = Output()

    @model_validator(mode="after")
    def _unique_sources(self):
        names = [s.name for s in self.sources]
        if not names:
            raise ValueError("sources: at least one source")
        if len(set(names)) != len(names):
            raise ValueError(f"sources: duplicate source names {names}")
        if self.mixing.mode == "proportions" and not (self.mixing.proportions or self.mixing.weights_file):
            raise ValueError("mixing: proportions mode needs proportions or weights_file")
        return self


# ------------------------------------------------------------------------------------- tokenizer

def resolve_tokenizer(name: str) -> str:
    """The tokenizer's JSON text, from a file, a folder (``tokenizer.json`` or ``*tokenizer.json``) or
    a Hugging Face hub id (through the ``tokenizers`` hub client). Cloud URIs (``s3://`` ...) are fetched
    once into the local cache."""
    from lakesift.io import fetch_to_cache, scheme_of

    if scheme_of(name):
        name = fetch_to_cache(name, "tokenizer")
    p = Path(name)
    if p.is_file():
        return p.read_text(encoding="utf-8")
    if p.is_dir():
        cands = sorted(p.glob("tokenizer.json")) or sorted(p.glob("*tokenizer.json"))
        if not cands:
            raise ValueError(f"no tokenizer.json in {p}")
        return cands[0].read_text(encoding="utf-8")
    if name.startswith((".", "/")) or name.endswith(".json"):
        raise ValueError(f"tokenizer file not found: {name}")
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_pretrained(name.removeprefix("hf://")).to_str()
    except Exception as exc:
        raise ValueError(f"cannot load tokenizer {name!r} from the Hugging Face hub: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


@lru_cache(maxsize=4)
def load_tokenizer(json_text: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json_text)


def tokenizer_info(json_text: str, cfg: TokenizerConfig) -> dict:
    tok = load_tokenizer(json_text)
    eos = tok.token_to_id(cfg.eos_token)
    if eos is None:
        raise ValueError(f"tokenizer has no token {cfg.eos_token!r} (tokenizer.eos_token)")
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


# ------------------------------------------------------------------------------------- mixing

def read_weights(path: str) -> dict[str, float]:
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    if isinstance(data, dict) and "weights" in data and isinstance(data["weights"], dict):
        data = data["weights"]
    if not isinstance(data, dict) or not all(isinstance(v, int | float) for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of source name to weight")
    return {str(k): float(v) for k, v in data.items()}


def frequencies(cfg: TokenizeConfig, tokens: dict[str, int]) -> dict[str, float]:
    """Per-source frequency: as configured (frequency mode), or from target token proportions."""
    if cfg.mixing.mode == "frequency":
        return {s.name: s.frequency for s in cfg.sources}
    props = read_weights(cfg.mixing.weights_file) if cfg.mixing.weights_file else dict(cfg.mixing.proportions or {})
    unknown = set(props) - {s.name for s in cfg.sources}
    if unknown:
        raise ValueError(f"mixing: proportions name unknown sources {sorted(unknown)}")
    total_w = sum(props.values())
    if total_w <= 0:
        raise ValueError("mixing: proportions must sum to more than 0")
    budget = cfg.mixing.total_tokens or sum(tokens.values())
    out = {}
    for s in cfg.sources:
        share = props.get(s.name, 0.0) / total_w
        have = tokens.get(s.name, 0)
        out[s.name] = 0.0 if have == 0 else share * budget / have
    return out


def repeats(frequency: float, u: float) -> int:
    """DCLM: floor(f) copies, plus one with probability frac(f); ``u`` a uniform draw in [0, 1)."""
    whole = math.floor(frequency)
    return whole + (1 if u < frequency - whole else 0)
