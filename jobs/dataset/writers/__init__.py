"""Output formats of the dataset job by name (``output.format``); the interface is in ``base.py``.
A new format is one file here and one entry below."""

from __future__ import annotations

from jobs.dataset.writers.base import ShardWriter
from jobs.dataset.writers.mds import MDSShardWriter

WRITERS: dict[str, type[ShardWriter]] = {w.name: w for w in (MDSShardWriter,)}

__all__ = ["WRITERS", "ShardWriter"]
