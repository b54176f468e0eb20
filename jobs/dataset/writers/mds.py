"""MDS (mosaicml-streaming), the format the trainer reads: each shard group an MDS folder
``OUT/group-00042/`` (shards and their ``index.json``) written by the executor that holds the group; the
driver then merges the folders' indexes into ``OUT/index.json`` (``StreamingDataset(local=OUT)``).
``tokens`` is ``ndarray:<dtype>:<length>``; ``output.size_limit`` and ``output.compression`` are
``MDSWriter``'s."""

from __future__ import annotations

import json
from pathlib import Path

from jobs.dataset.writers.base import ShardWriter, group_name
from lakesift.io import is_local


class MDSShardWriter(ShardWriter):
    name, label = "mds", "MDS"
    _writer = None  # the open group's streaming.MDSWriter (executor)
    _count = 0

    @classmethod
    def columns(cls, dtype: str, length: int, write_ids: bool) -> dict[str, str]:
        cols = {"tokens": f"ndarray:{dtype}:{length}"}
        if write_ids:
            cols.update({"seq_id": "int64", "source": "str"})
        return cols

    def open(self, group: int) -> None:
        from streaming import MDSWriter

        o = self.output
        self._writer = MDSWriter(out=f"{self.out}/{group_name(group)}", columns=self.columns(self.dtype, self.length,
                                 o.write_ids), compression=o.compression, size_limit=o.size_limit, exist_ok=True)
        self._count = 0

    def write(self, sample: dict) -> None:
        self._writer.write(sample)
        self._count += 1

    def close(self) -> int:
        self._writer.finish()
        self._writer = None
        return self._count

    def finalize(self, groups: list[int]) -> dict:
        from streaming.base.util import merge_index

        merge_index(sorted(f"{self.out}/{group_name(g)}/index.json" for g in groups), self.out, keep_local=True)
        if not is_local(self.out):  # the merged index stays remote: shards not counted
            return {"shards": None}
        return {"shards": len(json.loads(Path(self.out, "index.json").read_text())["shards"])}
