"""The trainer's data: ``StreamingDataset`` over one or more MDS folders (local paths or URIs;
``PATH:PROPORTION`` mixes them), partitioned over ranks by mosaicml-streaming with one canonical node,
so the global sample order does not depend on the number of processes. Each micro-batch is made by the
objective's batch adapter (``Objective.collate``) from the fields it names (``Objective.fields``);
a stream without one of them is refused before training starts.

A dataset written with domain streams (the dataset job's ``domains.layout: streams``: one MDS dataset
per domain under ``DATASET/domains/``, listed in its ``manifest.json``) can be mixed by domain with
``--mix``: ``natural`` (every sequence once), ``uniform`` (each domain an equal share, DoReMi's proxy)
or a weights JSON (``{domain: weight}``, or DoReMi's ``train_domain_weights``, e.g. the
``domain_weights.json`` a DoReMi run writes). :func:`plan` turns that into the streams to read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

DEFAULT_CACHE = "~/.cache/lakesift/shards"


@dataclass(frozen=True)
class Plan:
    """What to read: ``PATH[:PROPORTION]`` specs, and the data's domains (sorted; empty: none known)."""

    specs: list[str]
    domains: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)  # the mix by domain, when --mix was given


def read_manifest(root: str) -> dict | None:
    """A dataset folder's ``manifest.json`` (local or remote), or None when it has none."""
    from lakesift.io import is_local, local_path

    root = root.rstrip("/")
    if is_local(root):
        p = os.path.join(local_path(root), "manifest.json")
        if not os.path.isfile(p):
            return None
        with open(p, encoding="utf-8") as f:
            return json.load(f)
    import fsspec

    fs, path = fsspec.core.url_to_fs(f"{root}/manifest.json")
    return json.loads(fs.cat_file(path)) if fs.exists(path) else None


def domain_folders(manifest: dict | None) -> dict[str, str]:
    """{domain: folder under the dataset} of a dataset written with domain streams (else empty)."""
    domains = (manifest or {}).get("domains") or {}
    return {d: info["folder"] for d, info in sorted(domains.items()) if info.get("folder")}


def mix_weights(mix: str, domains: Sequence[str]) -> dict[str, float]:
    """``natural`` -> {} (read every sequence once); ``uniform`` -> 1/k each; a file -> its weights,
    normalised, for exactly the dataset's domains."""
    if mix == "natural":
        return {}
    if mix == "uniform":
        return {d: 1.0 / len(domains) for d in domains}
    from udfs.tokenizing import read_weights

    try:
        weights = read_weights(mix)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--mix {mix}: {exc}") from None
    unknown = set(weights) - set(domains)
    total = sum(weights.values())
    if unknown or total <= 0 or any(v < 0 for v in weights.values()):
        raise SystemExit(f"--mix {mix}: expected non-negative weights of the dataset's domains "
                         f"({', '.join(domains)}) with a positive sum; "
                         + (f"unknown: {sorted(unknown)}" if unknown else f"got {weights}"))
    return {d: weights.get(d, 0.0) / total for d in domains}


def plan(specs: Sequence[str], mix: str | None = None) -> Plan:
    """The streams for ``--data SPECS [--mix MIX]``. Without ``--mix`` the specs are read as given
    (their domains known when there is one dataset with domain streams)."""
    folders = domain_folders(read_manifest(specs[0])) if len(specs) == 1 and parse_source(specs[0])[1] is None else {}
    if mix is None:
        return Plan(list(specs), sorted(folders))
    if not folders:
        raise SystemExit(f"--mix needs one dataset written with domain streams (domains.layout: streams in its "
                         f"config); {' '.join(specs)} has none")
    domains = sorted(folders)
    weights = mix_weights(mix, domains)
    root = specs[0].rstrip("/")
    if not weights:
        return Plan([f"{root}/{folders[d]}" for d in domains], domains)
    return Plan([f"{root}/{folders[d]}:{weights[d]:.12f}" for d in domains if weights[d] > 0], domains, weights)


def parse_source(spec: str) -> tuple[str, float | None]:
    """``PATH[:PROPORTION]`` -> (path or URI, proportion or None); ``s3://b/x`` has no proportion."""
    tail = spec.rsplit(":", 1)[-1]
    if tail.replace(".", "", 1).isdigit():
        uri, _, prop = spec.rpartition(":")
        return uri, float(prop)
    return spec, None


def streams(specs: Sequence[str], local_cache: str | None = None) -> list:
    """One ``Stream`` per spec; remote ones are cached under ``local_cache/s<i>``."""
    from streaming import Stream

    from lakesift.io import is_local, local_path

    out = []
    for i, spec in enumerate(specs):
        uri, prop = parse_source(spec)
        if is_local(uri):
            out.append(Stream(local=local_path(uri), proportion=prop))
        else:
            cache = os.path.join(local_cache or os.path.expanduser(DEFAULT_CACHE), f"s{i}")
            out.append(Stream(remote=uri, local=cache, proportion=prop))
    return out


def check_fields(ds, specs: Sequence[str], fields: Sequence[str]) -> None:
    """Refuse a dataset whose shards lack a field the objective reads."""
    for shard, stream in zip(ds.shards, ds.stream_per_shard, strict=True):
        missing = [f for f in fields if f not in shard.column_names]
        if missing:
            raise ValueError(f"{specs[stream]}: the objective needs the field(s) {', '.join(missing)}; "
                             f"its shards have {', '.join(shard.column_names)}")


def make_loader(specs: Sequence[str], micro_batch: int, seed: int, local_cache: str | None = None,
                fields: Sequence[str] = ("tokens",), collate: Callable | None = None):
    """A ``StreamingDataLoader`` of micro-batches (``collate`` applied); its ``state_dict`` goes in
    each checkpoint, so a resumed run continues on the same data order."""
    from streaming import StreamingDataLoader, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()  # leftovers of a killed run would block this one
    ds = StreamingDataset(streams=streams(specs, local_cache), shuffle=True, shuffle_seed=seed,
                          batch_size=micro_batch, num_canonical_nodes=1, replication=None)
    check_fields(ds, specs, fields)
    return StreamingDataLoader(ds, batch_size=micro_batch, num_workers=0, drop_last=True, collate_fn=collate)


def describe(loader) -> str:
    """One log line: each stream with its proportion and sample count."""
    ds = loader.dataset
    parts = []
    for stream, n in zip(ds.streams, ds.samples_per_stream, strict=True):
        where = stream.remote or stream.local
        prop = f"proportion {stream.proportion:g}, " if stream.proportion is not None else ""
        parts.append(f"{where} ({prop}{int(n):,} samples)")
    return f"data: {ds.epoch_size:,} samples per epoch from " + "; ".join(parts)
