"""The dataset job's config (``conf/tokenize/*.yaml``): strict models, every key documented where it is
declared. ``output.format`` names a writer of :mod:`jobs.dataset.writers` (checked against its registry)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from jobs.dataset.writers import WRITERS
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
    format: str = "mds"  # a writer of jobs.dataset.writers (mds: what the trainer reads)
    size_limit: int | str = "64mb"  # per MDS shard
    compression: str | None = None  # e.g. zstd
    dtype: Literal["auto", "uint16", "uint32"] = "auto"  # auto: uint16 when the vocabulary fits
    write_ids: bool = True  # also store seq_id / source (to audit and undo the shuffle)

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        if v not in WRITERS:
            raise ValueError(f"unknown output format {v!r} (known: {', '.join(sorted(WRITERS))})")
        return v


class DatasetConfig(StrictModel):
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
