"""The dataset job's config (``conf/tokenize/*.yaml``): strict models, every key documented where it is
declared. ``output.format`` names a writer of :mod:`jobs.dataset.writers` (checked against its registry);
``domains`` is described in ``docs/domains.md``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from jobs.dataset.writers import WRITERS
from lakesift.config import StrictModel
from lakesift.stages import Stage


class Source(StrictModel):
    name: str
    table: str  # a table of the lake by name, or a Delta path / URI
    frequency: float = Field(1.0, ge=0)  # mixing: times each sequence is written (frequency mode)
    text_column: str = "text"
    id_column: str = "doc_id"


class Mixing(StrictModel):
    mode: Literal["frequency", "proportions"] = "frequency"
    # the names below are sources, or domains when domains.by is not source (docs/domains.md)
    proportions: dict[str, float] | None = None  # source / domain -> share of written tokens
    # YAML / JSON {name: weight}, {weights: {…}} or DoReMi's {train_domain_weights: {…}, …}; normalised
    weights_file: str | None = None
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


class DomainRule(StrictModel):
    match: str  # fnmatch glob (case-sensitive) on the value: a host / TLD (lowercase) or the column's value
    domain: str = Field(min_length=1)  # the domain of a value it matches


class Validation(StrictModel):
    fraction: float = Field(0.0, ge=0, lt=1)  # share of each domain's sequences held out; 0: none
    seed: int | None = None  # the held-out draw's seed (default: shuffle.seed)


class Domains(StrictModel):
    """What a document's domain is (DoReMi's unit of mixing) and how domains are written out."""

    # source: the source's name; column: a column of the source tables; url_host / url_tld: from the URL
    by: Literal["source", "column", "url_host", "url_tld"] = "source"
    column: str | None = Field(None, min_length=1)  # by: column; values as strings, null / empty -> default
    url_column: str = "url"  # by: url_host / url_tld
    rules: list[DomainRule] = []  # by: column / url_*; the first rule matching the value names the domain
    rules_only: bool = False  # a value no rule matches: default (else the value is its own domain)
    default: str = Field("other", min_length=1)  # the domain of a missing / empty / unparseable value
    layout: Literal["single", "streams"] = "single"  # streams: also OUT/domains/<domain>/ per domain
    validation: Validation = Validation()  # held out into OUT/validation/ (one MDS dataset per domain)
    reference: Literal["tokens", "chunks"] = "tokens"  # the count behind reference_weights.json
    epochs: dict[str, float] = {}  # domain -> multiplier of its reference count (default 1)

    @model_validator(mode="after")
    def _consistent(self):
        if (self.by == "column") != (self.column is not None):
            raise ValueError("column: set it for by: column, and only then")
        if self.by == "source" and self.rules:
            raise ValueError("rules: not for by: source (a source's domain is its name)")
        if self.rules_only and not self.rules:
            raise ValueError("rules_only: needs rules")
        if any(v < 0 for v in self.epochs.values()):
            raise ValueError("epochs: multipliers must be >= 0")
        return self


class Buckets(StrictModel):
    """Colossal-LLaMA-2's bucketed preparation (``docs/vocab.md``): each domain's documents dealt over
    ``count`` buckets, so every bucket holds the same mix; each bucket written as its own MDS dataset
    (``OUT/buckets/bucket-000/``…) and the stage manifest ``OUT/stages.yaml`` from ``stages``."""

    count: int = Field(0, ge=0)  # 0: no buckets
    seed: int | None = None  # the deal's seed (default: shuffle.seed)
    boundaries: bool = True  # also write each sequence's document starts (`starts`) and padding (`pad`)
    stages: list[Stage] = []  # written to OUT/stages.yaml with the buckets' facts (lakesift/stages.py)


class DatasetConfig(StrictModel):
    name: str = "dataset"
    sources: list[Source]
    mixing: Mixing = Mixing()
    decontamination: Decontamination = Decontamination()
    tokenizer: TokenizerConfig = TokenizerConfig()
    packing: Packing = Packing()
    shuffle: Shuffle = Shuffle()
    output: Output = Output()
    # domains: how documents are grouped for DoReMi-style mixing; given (even {}), the run also writes
    # the domain records (manifest domains, reference_weights.json, domain_stats); docs/domains.md
    domains: Domains = Domains()
    buckets: Buckets = Buckets()

    @model_validator(mode="after")
    def _unique_sources(self):
        names = [s.name for s in self.sources]
        if not names:
            raise ValueError("sources: at least one source")
        if len(set(names)) != len(names):
            raise ValueError(f"sources: duplicate source names {names}")
        if self.mixing.mode == "proportions" and not (self.mixing.proportions or self.mixing.weights_file):
            raise ValueError("mixing: proportions mode needs proportions or weights_file")
        d = self.domains
        if (d.layout == "streams" or d.validation.fraction > 0) and self.output.format != "mds":
            raise ValueError("domains: layout streams and validation write MDS datasets (output.format: mds)")
        b = self.buckets
        if b.count:
            if self.output.format != "mds" or d.layout == "streams":
                raise ValueError("buckets: write one MDS dataset per bucket (output.format: mds, domains.layout: "
                                 "single)")
            if "remainder" in self.packing.model_fields_set and self.packing.remainder == "drop":
                raise ValueError("buckets: lose no token; the last sequence of each packing group is padded "
                                 "(packing.remainder: pad, the default with buckets)")
            for st in b.stages:
                bad = [i for i in (st.buckets if st.buckets != "all" else []) if not 0 <= i < b.count]
                if bad:
                    raise ValueError(f"buckets.stages: stage {st.name} names buckets {bad}; there are "
                                     f"{b.count} (0 to {b.count - 1})")
        elif b.stages:
            raise ValueError("buckets.stages: needs buckets.count")
        return self

    @property
    def packing_groups(self) -> int:
        """Packing groups per (source, domain): ``packing.groups`` per bucket (a document's group is
        ``bucket x packing.groups + hash(doc_id) mod packing.groups``)."""
        return self.packing.groups * max(1, self.buckets.count)

    @property
    def remainder(self) -> str:
        """What becomes of a packing group's last, partial sequence: padded with buckets (no token lost)."""
        return "pad" if self.buckets.count else self.packing.remainder

    @property
    def domains_given(self) -> bool:
        """Whether the config has a ``domains`` section: the run then writes the domain records."""
        return "domains" in self.model_fields_set

    def record(self, **dump) -> dict:
        """The config as runs record it (fingerprint, manifest, ``datasets``, ``_runs``): without a
        ``domains`` section that was not given, so such a config records, and its run id reads, as before."""
        exclude = set() if self.domains_given else {"domains"}
        if "buckets" not in self.model_fields_set:
            exclude.add("buckets")
        return self.model_dump(exclude=exclude or None, **dump)
