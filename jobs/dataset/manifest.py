"""What a dataset run records and prints: ``OUT/manifest.json``, its row of the ``datasets`` table and
the summary on stdout, all from one :class:`Result`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass
class Result:
    """The facts the stages established."""

    versions: dict[str, int]  # source name -> Delta version read
    per_source: dict  # source name -> Row(documents, tokens, padding, dropped, sequences)
    freq: dict[str, float]  # source name -> mixing frequency
    written: dict[str, int]  # source name -> sequences written
    sequences: int  # written in all
    shard_groups: int
    write_seconds: float
    facts: dict  # the writer's (finalize): shards, …
    eval_tasks: list[str] | None = None  # None: no decontamination
    flagged: int = 0  # documents contaminated
    contamination: list[dict] | None = None  # per eval task


def source_facts(cfg, r: Result) -> dict:
    length = cfg.packing.seq_len + 1
    out = {}
    for s in cfg.sources:
        row = r.per_source.get(s.name)
        out[s.name] = {
            "table": s.table, "table_version": r.versions[s.name], "frequency": round(r.freq[s.name], 6),
            "documents": int(row.documents) if row else 0, "tokens": int(row.tokens) if row else 0,
            "sequences": int(row.sequences) if row else 0, "padding_tokens": int(row.padding) if row else 0,
            "dropped_tail_tokens": int(row.dropped) if row else 0,
            "sequences_written": int(r.written.get(s.name, 0)),
            "tokens_written": int(r.written.get(s.name, 0)) * length,
        }
    return out


def manifest(req, r: Result, run_id: str, started: datetime, sources: dict) -> dict:
    cfg, p = req.cfg, req.cfg.packing
    length = p.seq_len + 1
    return {
        "run_id": run_id, "name": cfg.name, "created_at": started.isoformat(), "out": req.out,
        "tokenizer": {"name": cfg.tokenizer.name, **req.tinfo, "append_eos": cfg.tokenizer.append_eos},
        "seq_len": p.seq_len, "sequence_tokens": length, "dtype": req.dtype, "remainder": p.remainder,
        "sequences": int(r.sequences), "tokens": int(r.sequences) * length, **r.facts,
        "shard_groups": r.shard_groups, "sources": sources,
        "decontamination": {"enabled": r.eval_tasks is not None, "documents_flagged": int(r.flagged),
                            "action": cfg.decontamination.action, "tasks": r.contamination or []},
        "config": cfg.model_dump(),
    }


def write_manifest(out: str, m: dict) -> None:
    from lakesift.io import write_text

    write_text(f"{out.rstrip('/')}/manifest.json", json.dumps(m, indent=2, sort_keys=True) + "\n")


def datasets_row(spark, req, r: Result, run_id: str, sources: dict):
    """The run's row of the ``datasets`` table, as a DataFrame."""
    from jobs.common.lake import schema

    cfg, length = req.cfg, req.cfg.packing.seq_len + 1
    row = (run_id, cfg.name, req.out, cfg.tokenizer.name, req.tinfo["sha1"], cfg.packing.seq_len, req.dtype,
           int(r.sequences), int(r.sequences) * length, r.facts["shards"], json.dumps(sources, sort_keys=True),
           json.dumps(cfg.model_dump(), sort_keys=True), datetime.now(UTC))
    return spark.createDataFrame([row], schema("datasets"))


def print_summary(req, r: Result, sources: dict) -> None:
    cfg, length = req.cfg, req.cfg.packing.seq_len + 1
    print(f"\n=== tokenize: {cfg.name} -> {req.out} ===")
    if r.eval_tasks is not None:
        action = cfg.decontamination.action
        found = [c for c in r.contamination if c["examples_found"]]
        print(f"decontamination: {len(r.eval_tasks)} eval tasks, {r.flagged} documents {action}"
              f"{'ped' if action == 'drop' else 'd'}; eval examples found in the data: "
              + (", ".join(f"{c['task']} {c['examples_found']}" for c in found[:8]) if found else "none"))
    print(f"{'source':16s} {'docs':>8s} {'tokens':>12s} {'freq':>6s} {'sequences':>10s} {'written':>9s}")
    for name, s in sources.items():
        print(f"{name:16s} {s['documents']:8d} {s['tokens']:12d} {s['frequency']:6.2f} {s['sequences']:10d} "
              f"{s['sequences_written']:9d}")
    n = r.sequences
    print(f"{n} sequences of {length} tokens ({n * length:,} tokens, {req.dtype}) in "
          f"{r.facts['shards']} shards, {r.shard_groups} shard groups; written in {r.write_seconds:.1f} s")
