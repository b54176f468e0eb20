"""Stage 6, write: each shard group written by the executor that holds it, through the configured
:class:`~jobs.dataset.writers.base.ShardWriter`; then the driver joins the groups (``finalize``).
Also the output folder's rule: a re-run replaces a Lakesift dataset, and nothing else is cleared."""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from jobs.common.progress import spark_action
from jobs.dataset import log
from lakesift.config import ConfigError
from lakesift.io import is_local, local_path
from lakesift.log import kv

WRITTEN_SCHEMA = "shard_group long, samples long, per_source string, per_domain string, per_route string"


def _remote(out: str):
    import fsspec

    return fsspec.core.url_to_fs(out)


def check_out(out: str) -> None:
    """:class:`ConfigError` when ``out`` holds something other than a Lakesift dataset (before Spark starts)."""
    if is_local(out):
        p = Path(local_path(out))
        foreign = p.exists() and (not p.is_dir() or (any(p.iterdir()) and not (p / "manifest.json").exists()
                                                      and not (p / "index.json").exists()))
    else:
        fs, root = _remote(out)
        foreign = fs.exists(root) and not fs.exists(f"{root}/manifest.json") and bool(fs.ls(root))
    if foreign:
        raise ConfigError(f"--out {out} exists and is not a Lakesift dataset (no manifest.json); "
                          "choose another folder")


def clear_out(out: str) -> None:
    """Start from an empty output folder (checked again: it may have changed since the job started)."""
    check_out(out)
    if is_local(out):
        p = Path(local_path(out))
        if p.exists():
            shutil.rmtree(p)
        p.mkdir(parents=True, exist_ok=True)
        return
    fs, root = _remote(out)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def write_task(writer):
    """``mapInArrow``: rows (shard_group, tokens, seq_id, source, domain[, bucket, starts, pad]) sorted by
    shard group in; one row per group written out: its sample count, its samples per source and per
    domain, and, for a writer that routes samples (``writer.route``: ``domain`` or ``bucket``), per route
    value and domain (JSON)."""

    def task(batches):
        import numpy as np
        import pyarrow as pa

        write_ids, dtype, route, bounded = writer.output.write_ids, writer.dtype, writer.route, writer.boundaries
        current, written = None, []  # (group, samples, {source: n}, {domain: n}, {route: {domain: n}})
        for b in batches:
            cols = b.to_pydict()
            n = len(cols["shard_group"])
            routes = cols[route] if route else [None] * n
            starts, pads = (cols["starts"], cols["pad"]) if bounded else ([None] * n, [None] * n)
            for g, toks, sid, src, dom, key, st, pad in zip(cols["shard_group"], cols["tokens"], cols["seq_id"],
                                                            cols["source"], cols["domain"], routes, starts, pads,
                                                            strict=True):
                if g != current:
                    if current is not None:
                        written[-1][1] = writer.close()
                    writer.open(g)
                    current = g
                    written.append([g, 0, defaultdict(int), defaultdict(int), defaultdict(lambda: defaultdict(int))])
                sample = {"tokens": np.asarray(toks, dtype=dtype)}
                if write_ids:
                    sample["seq_id"] = int(sid)
                    sample["source"] = src
                if writer.with_domain:
                    sample["domain"] = dom
                if route:
                    sample[route] = key
                if bounded:
                    sample["starts"] = np.asarray(st, dtype=np.int32)
                    sample["pad"] = int(pad)
                writer.write(sample)
                written[-1][2][src] += 1
                written[-1][3][dom] += 1
                if route:
                    written[-1][4][str(key)][dom] += 1
        if current is not None:
            written[-1][1] = writer.close()
        if written:
            yield pa.RecordBatch.from_arrays([pa.array([w[0] for w in written], pa.int64()),
                                              pa.array([w[1] for w in written], pa.int64()),
                                              pa.array([json.dumps(w[2]) for w in written]),
                                              pa.array([json.dumps(w[3]) for w in written]),
                                              pa.array([json.dumps(w[4]) for w in written])],
                                             names=["shard_group", "samples", "per_source", "per_domain",
                                                    "per_route"])

    return task


@dataclass(frozen=True)
class Written:
    groups: list[int]  # the shard groups written
    parts: dict[int, dict[str, int]]  # shard group -> sequences written per domain (per route value, routed)
    per_source: dict[str, int]  # sequences written per source
    per_domain: dict[str, int]  # sequences written per domain
    seconds: float  # the write (all groups), without finalize
    per_route: dict[str, dict[str, int]] | None = None  # a routing writer's route value -> {domain: sequences}


def write(spark, shuffled, writer, n_written: int, n_groups: int, what: str = "shard groups") -> Written:
    """Write every shard group (one task each, followed on a progress bar) and check the count."""
    t0 = time.perf_counter()
    write_df = shuffled.mapInArrow(write_task(writer), WRITTEN_SCHEMA)
    # one task per shard group at the end: the bar counts shard groups written
    rows = spark_action(spark, write_df.collect, f"writing {writer.label} {what}", unit="task")
    seconds = time.perf_counter() - t0
    log.info(kv(phase="shuffle+write", output=what, shard_groups=n_groups, seconds=round(seconds, 1)))
    per_source: dict[str, int] = defaultdict(int)
    per_domain: dict[str, int] = defaultdict(int)
    per_route: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    parts = {}
    for r in rows:
        for k, v in json.loads(r.per_source).items():
            per_source[k] += v
        domains = json.loads(r.per_domain)
        for k, v in domains.items():
            per_domain[k] += v
        routed = json.loads(r.per_route)
        for key, doms in routed.items():
            for d, v in doms.items():
                per_route[key][d] += v
        # a domain-routed writer's parts are its domains (as before); a bucket-routed one's its buckets
        parts[r.shard_group] = ({k: sum(v.values()) for k, v in routed.items()}
                                if writer.route not in (None, "domain") else domains)
    if not sum(per_source.values()) == sum(r.samples for r in rows) == n_written:
        raise RuntimeError(f"written samples {sum(r.samples for r in rows)} != sequences {n_written}")
    return Written(sorted(parts), parts, dict(per_source), dict(per_domain), seconds,
                   {k: dict(v) for k, v in per_route.items()} if writer.route else None)
