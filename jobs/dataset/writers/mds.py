"""MDS (mosaicml-streaming), the format the trainer reads: each shard group an MDS folder
``OUT/group-00042/`` (shards and their ``index.json``) written by the executor that holds the group; the
driver then merges the folders' indexes into ``OUT/index.json`` (``StreamingDataset(local=OUT)``).
``tokens`` is ``ndarray:<dtype>:<length>``; ``output.size_limit`` and ``output.compression`` are
``MDSWriter``'s.

:class:`MDSStreamsWriter` (``domains.layout: streams``, and the held-out validation set) writes each
domain's samples of a group to ``OUT/domains/<folder>/group-00042/`` instead, and indexes every
domain's folder on its own as well as all of them together."""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from pathlib import Path

from jobs.dataset.writers.base import ShardWriter, group_name
from lakesift.io import is_local, open_binary, write_text

_FILES = ("raw_data", "zip_data", "raw_meta", "zip_meta")  # the entries of a shard naming a file


def read_shards(folder: str) -> list[dict]:
    """The shards listed by ``folder/index.json`` (local or remote)."""
    with open_binary(f"{folder}/index.json") as fh:
        return json.load(fh)["shards"]


def under(shards: list[dict], prefix: str) -> list[dict]:
    """``shards`` as an index one folder up sees them: each file's basename prefixed with ``prefix/``."""
    out = copy.deepcopy(shards)
    for shard in out:
        for key in _FILES:
            if shard.get(key):
                shard[key]["basename"] = f"{prefix}/{shard[key]['basename']}"
    return out


def write_index(folder: str, shards: list[dict]) -> None:
    write_text(f"{folder}/index.json", json.dumps({"version": 2, "shards": shards}))


class MDSShardWriter(ShardWriter):
    name, label = "mds", "MDS"
    _writer = None  # the open group's streaming.MDSWriter (executor)
    _count = 0

    @classmethod
    def columns(cls, dtype: str, length: int, write_ids: bool, with_domain: bool = False,
                boundaries: bool = False) -> dict[str, str]:
        cols = {"tokens": f"ndarray:{dtype}:{length}"}
        if write_ids:
            cols.update({"seq_id": "int64", "source": "str"})
        if with_domain:
            cols["domain"] = "str"
        if boundaries:
            cols.update({"starts": "ndarray:int32", "pad": "int32"})
        return cols

    def mds_writer(self, folder: str):
        """A ``streaming.MDSWriter`` of this output's columns and shard options into ``folder``."""
        from streaming import MDSWriter

        o = self.output
        return MDSWriter(out=folder, columns=self.columns(self.dtype, self.length, o.write_ids, self.with_domain,
                                                          self.boundaries),
                         compression=o.compression, size_limit=o.size_limit, exist_ok=True)

    def open(self, group: int) -> None:
        self._writer = self.mds_writer(f"{self.out}/{group_name(group)}")
        self._count = 0

    def write(self, sample: dict) -> None:
        self._writer.write(sample)
        self._count += 1

    def close(self) -> int:
        self._writer.finish()
        self._writer = None
        return self._count

    def finalize(self, groups: list[int], parts: dict[int, dict[str, int]] | None = None) -> dict:
        from streaming.base.util import merge_index

        merge_index(sorted(f"{self.out}/{group_name(g)}/index.json" for g in groups), self.out, keep_local=True)
        if not is_local(self.out):  # the merged index stays remote: shards not counted
            return {"shards": None}
        return {"shards": len(json.loads(Path(self.out, "index.json").read_text())["shards"])}


class MDSStreamsWriter(MDSShardWriter):
    """One MDS dataset per domain: a group's samples go to ``OUT/<folders[domain]>/group-…/``; ``finalize``
    writes ``OUT/<folder>/index.json`` for every domain and ``OUT/index.json`` over all of them, group by
    group (a sequential read of it still meets the domains as the shuffle spread them)."""

    route = "domain"
    _writers: dict | None = None  # route value -> MDSWriter of the open group (executor)
    _group = 0

    def __init__(self, out: str, output, dtype: str, length: int, folders: dict[str, str], boundaries: bool = False):
        super().__init__(out, output, dtype, length, with_domain=True, boundaries=boundaries)
        self.folders = folders  # domain -> its folder under out ("domains/web")

    def open(self, group: int) -> None:
        self._group, self._writers, self._count = group, {}, 0

    def write(self, sample: dict) -> None:
        d = sample[self.route]
        if d not in self._writers:
            self._writers[d] = self.mds_writer(f"{self.out}/{self.folders[d]}/{group_name(self._group)}")
        self._writers[d].write(sample)
        self._count += 1

    def close(self) -> int:
        for w in self._writers.values():
            w.finish()
        self._writers = None
        return self._count

    def finalize(self, groups: list[int], parts: dict[int, dict[str, int]] | None = None) -> dict:
        per_folder: dict[str, list[dict]] = defaultdict(list)
        merged: list[dict] = []
        for g in sorted(groups):
            for d in sorted((parts or {}).get(g, {})):
                folder, rel = self.folders[self.key(d)], group_name(g)
                shards = read_shards(f"{self.out}/{folder}/{rel}")
                per_folder[folder] += under(shards, rel)
                merged += under(shards, f"{folder}/{rel}")
        for folder, shards in per_folder.items():
            write_index(f"{self.out}/{folder}", shards)
        write_index(self.out, merged)
        return {"shards": len(merged)}

    @staticmethod
    def key(part: str):
        """The folder key of a route value as ``parts`` names it (JSON keys are strings)."""
        return part


class MDSBucketsWriter(MDSStreamsWriter):
    """One MDS dataset per bucket (``buckets``): a group's samples go to ``OUT/buckets/bucket-003/group-…/``;
    each bucket indexed on its own and all of them together, as :class:`MDSStreamsWriter` does for domains."""

    route = "bucket"

    def __init__(self, out: str, output, dtype: str, length: int, count: int, with_domain: bool,
                 boundaries: bool):
        super().__init__(out, output, dtype, length, {b: bucket_folder(b) for b in range(count)}, boundaries)
        self.with_domain = with_domain

    @staticmethod
    def key(part: str):
        return int(part)


def bucket_folder(bucket: int) -> str:
    """A bucket's folder under the dataset: ``buckets/bucket-003``."""
    return f"buckets/bucket-{bucket:03d}"
