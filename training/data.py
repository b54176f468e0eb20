"""The trainer's data: ``StreamingDataset`` over one or more MDS folders (local paths or URIs;
``PATH:PROPORTION`` mixes them), partitioned over ranks by mosaicml-streaming with one canonical node,
so the global sample order does not depend on the number of processes. Each micro-batch is made by the
objective's batch adapter (``Objective.collate``) from the fields it names (``Objective.fields``);
a stream without one of them is refused before training starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

DEFAULT_CACHE = "~/.cache/lakesift/shards"


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
