"""The writer interface: how the dataset job's shuffled sequences become files.

A format is one :class:`ShardWriter` subclass in a file of this package, registered under its
``name`` in ``WRITERS`` (``jobs/dataset/writers/__init__.py``); ``output.format`` in the config picks
it (``mds``, the default, is what the trainer reads). Its life in one run:

    w = WRITERS[fmt](out, output, dtype, length, with_domain)    # driver; pickled into the write task
    # executor, for each shard group the task holds (a group arrives whole, sorted by shuffle key):
    w.open(group); w.write(sample); ...; n = w.close()       # n: samples written for that group
    facts = w.finalize(groups, parts)                        # driver, once every group is written

* ``out``: the output folder (a local path, or a cloud URI), ``output`` the config's ``output``
  section (format options: ``size_limit``, ``compression``, ``write_ids``), ``dtype`` the token type
  (``uint16`` / ``uint32``), ``length`` the tokens per sequence (``seq_len + 1``), ``with_domain``
  whether samples carry their domain (``docs/domains.md``).
* a sample: ``{"tokens": ndarray[dtype] of shape (length,)}``, plus with ``boundaries`` (bucketed
  datasets) ``"starts"`` (int32 ndarray: where each document begins in the sequence) and ``"pad"`` (int:
  padding tokens at its end), plus with ``output.write_ids``
  ``"seq_id"`` (int: source index << 48 | packing group << 32 | sequence index, the group field
  folding in the domain: ``jobs.dataset.mix``) and ``"source"`` (str), and with ``with_domain``
  ``"domain"`` (str).
* :meth:`ShardWriter.columns` declares those fields in the format's own type names.
* :meth:`ShardWriter.finalize` joins what the groups wrote (merges their indexes, lists their files)
  and returns facts for ``manifest.json``: at least ``shards`` (int, or None when it cannot be counted).
  ``parts`` says, per group, how many samples of each domain it wrote (for writers that route by
  domain). The output folder is emptied before the write and ``manifest.json`` written after; both are
  the job's.

Written the same way, each planned output is one new file here plus its line in the registry:
* Parquet / JSONL shards: ``open`` names ``OUT/group-00042.parquet`` (``.jsonl``), ``write`` buffers the
  rows, ``close`` writes the file and returns the count, ``finalize`` counts the files;
* per-key outputs: a writer with ``route`` set gets that field in every sample and sends it on, as
  :class:`~jobs.dataset.writers.mds.MDSStreamsWriter` routes on the domain (``domains.layout: streams``)
  and :class:`~jobs.dataset.writers.mds.MDSBucketsWriter` on the bucket (``buckets``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar


def group_name(group: int) -> str:
    """The file or folder name of a shard group's output: ``group-00042``."""
    return f"group-{group:05d}"


class ShardWriter(ABC):
    """One output format; see the module docstring. Instances must pickle (the driver builds one, each
    write task gets a copy); state made by ``open`` lives only on the executor."""

    name: ClassVar[str]  # the registry key, the value of output.format
    label: ClassVar[str]  # how progress lines name the format ("writing MDS shard groups")
    route: ClassVar[str | None] = None  # the sample field a routing writer sends samples by (domain, bucket)

    def __init__(self, out: str, output: Any, dtype: str, length: int, with_domain: bool = False,
                 boundaries: bool = False):
        self.out, self.output, self.dtype, self.length = out.rstrip("/"), output, dtype, length
        self.with_domain, self.boundaries = with_domain, boundaries

    @classmethod
    @abstractmethod
    def columns(cls, dtype: str, length: int, write_ids: bool, with_domain: bool = False,
                boundaries: bool = False) -> dict[str, str]:
        """The sample's fields and their types, as the format declares them."""

    @abstractmethod
    def open(self, group: int) -> None:
        """Start shard group ``group`` (executor)."""

    @abstractmethod
    def write(self, sample: dict) -> None:
        """Add one sample to the open group (executor)."""

    @abstractmethod
    def close(self) -> int:
        """Finish the open group; the number of samples written to it (executor)."""

    @abstractmethod
    def finalize(self, groups: list[int], parts: dict[int, dict[str, int]] | None = None) -> dict:
        """Join the written groups into one dataset (driver); facts for the manifest, ``shards`` among them.
        ``parts``: group -> {domain: samples}, as the write tasks reported them."""
