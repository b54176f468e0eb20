"""What a dataset run records and prints: ``OUT/manifest.json``, its row of the ``datasets`` table and
the summary on stdout, all from one :class:`Result`; with a ``domains`` section also the domains'
records: ``domains`` / ``domain_config`` in the manifest, ``OUT/reference_weights.json`` (DoReMi's
config format) and the run's rows of the ``domain_stats`` table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from jobs.dataset.domains import Plan, reference_weights
from jobs.dataset.pack import Counts


@dataclass
class Result:
    """The facts the stages established."""

    versions: dict[str, int]  # source name -> Delta version read
    per_domain: dict[tuple[str, str], Counts]  # (source, domain) -> what packing counted
    plan: Plan
    freq: dict[str, float]  # mixing unit (plan.unit: source / domain) -> mixing frequency
    written: dict[str, int]  # source name -> sequences written
    written_domains: dict[str, int]  # domain -> sequences written
    held: dict[tuple[str, str], int]  # (source, domain) -> sequences held out for validation
    sequences: int  # written in all
    shard_groups: int
    write_seconds: float
    facts: dict  # the writer's (finalize): shards, …
    validation: dict | None = None  # the validation set (sequences, shards, shard_groups); None: none
    eval_tasks: list[str] | None = None  # None: no decontamination
    flagged: int = 0  # documents contaminated
    contamination: list[dict] | None = None  # per eval task
    buckets: dict[str, dict[str, int]] | None = None  # bucket -> {domain: sequences written}; None: no buckets


def _totals(per_domain: dict, part: int) -> dict[str, Counts]:
    """Counts summed by source (``part`` 0) or by domain (1)."""
    out: dict[str, Counts] = {}
    for key, c in per_domain.items():
        out[key[part]] = out.get(key[part], Counts()) + c
    return out


def source_facts(cfg, r: Result) -> dict:
    length = cfg.packing.seq_len + 1
    totals = _totals(r.per_domain, 0)
    out = {}
    for s in cfg.sources:
        c = totals.get(s.name, Counts())
        out[s.name] = {
            "table": s.table, "table_version": r.versions[s.name],
            "frequency": round(r.freq[s.name], 6) if r.plan.unit == "source" else None,
            "documents": c.documents, "tokens": c.tokens, "sequences": c.sequences, "padding_tokens": c.padding,
            "dropped_tail_tokens": c.dropped, "sequences_written": int(r.written.get(s.name, 0)),
            "tokens_written": int(r.written.get(s.name, 0)) * length,
        }
    return out


def domain_facts(cfg, r: Result) -> dict:
    """Per domain: its MDS datasets (``folder`` under OUT, ``validation_folder``; each None when not
    written, so a path given is a dataset that exists), sources, counts and reference weight."""
    length, d = cfg.packing.seq_len + 1, cfg.domains
    totals = _totals(r.per_domain, 1)
    counts = {n: totals.get(n, Counts()) for n in r.plan.names}
    weights = reference_weights({n: getattr(c, d.reference) for n, c in counts.items()}, d.epochs)
    out = {}
    for n, c in counts.items():
        written = int(r.written_domains.get(n, 0))
        held = sum(v for (_, dom), v in r.held.items() if dom == n)
        folder = f"domains/{r.plan.folders[n]}" if r.plan.folders else None
        out[n] = {
            "folder": folder if d.layout == "streams" and written else None,
            "validation_folder": f"validation/{folder}" if held else None,
            "sources": sorted(s for s, dom in r.per_domain if dom == n),
            "documents": c.documents, "tokens": c.tokens, "chunks": c.chunks, "sequences": c.sequences,
            "validation_sequences": held,
            "sequences_written": written, "tokens_written": written * length,
            "frequency": round(r.freq[n], 6) if r.plan.unit == "domain" else None,
            "reference_weight": weights[n],
        }
    return out


def domain_config(cfg, r: Result) -> dict:
    d = cfg.domains
    return {"by": d.by, "column": d.column if d.by == "column" else None,
            "url_column": d.url_column if d.by.startswith("url_") else None, "default": d.default,
            "layout": d.layout, "validation_fraction": d.validation.fraction,
            "validation_seed": validation_seed(cfg), "reference": d.reference, "mixing_unit": r.plan.unit,
            "sample_domain": with_domain(cfg), "folders": r.plan.folders}


def validation_seed(cfg) -> int:
    v = cfg.domains.validation
    return v.seed if v.seed is not None else cfg.shuffle.seed


def with_domain(cfg) -> bool:
    """Whether training samples carry a ``domain`` field (validation samples always do)."""
    return cfg.domains.by != "source" or cfg.domains.layout == "streams"


def manifest(req, r: Result, run_id: str, started: datetime, sources: dict, domains: dict | None) -> dict:
    cfg, p = req.cfg, req.cfg.packing
    length = p.seq_len + 1
    m = {
        "run_id": run_id, "name": cfg.name, "created_at": started.isoformat(), "out": req.out,
        "tokenizer": {"name": cfg.tokenizer.name, **req.tinfo, "append_eos": cfg.tokenizer.append_eos},
        "seq_len": p.seq_len, "sequence_tokens": length, "dtype": req.dtype, "remainder": cfg.remainder,
        "sequences": int(r.sequences), "tokens": int(r.sequences) * length, **r.facts,
        "shard_groups": r.shard_groups, "sources": sources,
        "decontamination": {"enabled": r.eval_tasks is not None, "documents_flagged": int(r.flagged),
                            "action": cfg.decontamination.action, "tasks": r.contamination or []},
        "config": cfg.record(),
    }
    if r.buckets is not None:
        m["buckets"] = bucket_facts(cfg, r)
    if domains is not None:
        m.update(domains=domains, domain_config=domain_config(cfg, r))
        if r.validation is not None:
            m["validation"] = r.validation
    return m


def bucket_facts(cfg, r: Result) -> dict:
    """The buckets' record (manifest ``buckets``, and ``stages.yaml``): the deal and, per bucket, its folder
    and the sequences written of each domain."""
    from jobs.dataset.writers.mds import bucket_folder

    b = cfg.buckets
    per = {i: dict(sorted((r.buckets or {}).get(str(i), {}).items())) for i in range(b.count)}
    return {"count": b.count, "by": cfg.domains.by, "seed": cfg.shuffle.seed if b.seed is None else b.seed,
            "boundaries": b.boundaries,
            "buckets": {i: {"folder": bucket_folder(i), "sequences": sum(d.values()), "domains": d}
                        for i, d in per.items()}}


def write_stages(out: str, cfg, r: Result) -> None:
    """``OUT/stages.yaml``: the configured stages (none: one stage over every bucket) with the buckets'
    facts, checked as the trainer will read it."""
    import yaml

    from lakesift.io import write_text
    from lakesift.stages import Stage, StageManifest

    stages = cfg.buckets.stages or [Stage(name="all")]
    sm = StageManifest(buckets=bucket_facts(cfg, r)["buckets"], stages=stages)
    text = ("# the stage manifest of this bucketed dataset (lakesift/stages.py): python -m training.train "
            "--stages stages.yaml\n" + yaml.safe_dump(sm.model_dump(mode="json"), sort_keys=False))
    write_text(f"{out.rstrip('/')}/stages.yaml", text)


def write_manifest(out: str, m: dict) -> None:
    from lakesift.io import write_text

    write_text(f"{out.rstrip('/')}/manifest.json", json.dumps(m, indent=2, sort_keys=True) + "\n")


def write_reference_weights(out: str, domains: dict) -> None:
    """``OUT/reference_weights.json`` in DoReMi's config format (train and eval weights: the reference)."""
    from lakesift.io import write_text

    w = {n: f["reference_weight"] for n, f in sorted(domains.items())}
    write_text(f"{out.rstrip('/')}/reference_weights.json",
               json.dumps({"train_domain_weights": w, "eval_domain_weights": w}, indent=2) + "\n")


def datasets_row(spark, req, r: Result, run_id: str, sources: dict):
    """The run's row of the ``datasets`` table, as a DataFrame."""
    from jobs.common.lake import schema

    cfg, length = req.cfg, req.cfg.packing.seq_len + 1
    row = (run_id, cfg.name, req.out, cfg.tokenizer.name, req.tinfo["sha1"], cfg.packing.seq_len, req.dtype,
           int(r.sequences), int(r.sequences) * length, r.facts["shards"], json.dumps(sources, sort_keys=True),
           json.dumps(cfg.record(), sort_keys=True), datetime.now(UTC))
    return spark.createDataFrame([row], schema("datasets"))


def domain_stats_rows(spark, req, run_id: str, domains: dict):
    """The run's rows of the ``domain_stats`` table (one per domain), as a DataFrame."""
    from jobs.common.lake import schema

    cfg, now = req.cfg, datetime.now(UTC)
    rows = [(run_id, cfg.name, cfg.domains.by, n, f["folder"], f["validation_folder"], f["sources"], f["documents"],
             f["tokens"], f["chunks"], f["sequences"], f["validation_sequences"], f["sequences_written"],
             f["tokens_written"], f["frequency"], f["reference_weight"], now) for n, f in sorted(domains.items())]
    return spark.createDataFrame(rows, schema("domain_stats"))


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def print_summary(req, r: Result, sources: dict, domains: dict | None) -> None:
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
        print(f"{name:16s} {s['documents']:8d} {s['tokens']:12d} {_num(s['frequency'], '6.2f'):>6s} "
              f"{s['sequences']:10d} {s['sequences_written']:9d}")
    if domains is not None:
        d = cfg.domains
        print(f"domains by {d.by} ({d.layout}; reference weights from {d.reference}):")
        print(f"{'domain':24s} {'docs':>8s} {'tokens':>12s} {'chunks':>8s} {'freq':>6s} {'sequences':>10s} "
              f"{'held out':>8s} {'written':>9s} {'ref w':>7s}")
        for name, f in domains.items():
            print(f"{name[:24]:24s} {f['documents']:8d} {f['tokens']:12d} {f['chunks']:8d} "
                  f"{_num(f['frequency'], '6.2f'):>6s} {f['sequences']:10d} {f['validation_sequences']:8d} "
                  f"{f['sequences_written']:9d} {f['reference_weight']:7.4f}")
    n = r.sequences
    print(f"{n} sequences of {length} tokens ({n * length:,} tokens, {req.dtype}) in "
          f"{r.facts['shards']} shards, {r.shard_groups} shard groups; written in {r.write_seconds:.1f} s")
    if r.buckets is not None:
        pad = sum(c.padding for c in r.per_domain.values())
        toks = sum(c.sequences for c in r.per_domain.values()) * length
        print(f"buckets: {cfg.buckets.count} by {cfg.domains.by} under {req.out.rstrip('/')}/buckets, "
              f"stage manifest {req.out.rstrip('/')}/stages.yaml; padding {pad:,} of {toks:,} packed tokens "
              f"({100 * pad / max(1, toks):.2f}%), no token dropped")
        for b, f in bucket_facts(cfg, r)["buckets"].items():
            print(f"  bucket {b}: {f['sequences']} sequences ("
                  + ", ".join(f"{d} {n}" for d, n in f["domains"].items()) + ")")
    if r.validation is not None:
        v = r.validation
        print(f"validation: {v['sequences']} sequences held out ({cfg.domains.validation.fraction:g}) in "
              f"{v['shards']} shards under {req.out.rstrip('/')}/validation")
