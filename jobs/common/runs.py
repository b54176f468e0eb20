"""Run ids, fingerprints and the run log ``LAKE/_runs``: one scheme for every job.

* :func:`fingerprint` hashes what decides a run's result (config bytes or model, overrides, model
  digests, tokenizer): 10 hex digits of SHA-1 over the parts' canonical encodings.
* :func:`run_id`: ``<job>-<name>-<fingerprint>`` plus the input it read:
  ``-<table>-v<version>`` for one Delta input (filter, dedup), the versions folded into the
  fingerprint for several (dataset). Such a run id is *deterministic*: running the same config on the
  same table version again replaces that run's rows. Jobs whose inputs are not versioned tables
  (ingest reads files, train_quality samples) get a unique id instead:
  ``<job>-<UTC time>-<fingerprint>-<random>``.
* :func:`record_run` appends one row per run to ``_runs``: status ``succeeded`` or ``failed`` (with
  the error), the resolved config, the argv, the inputs and outputs as data (name, URI, Delta
  version), a summary and the versions of the software.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lakesift import __version__


def _canonical(part: Any) -> bytes:
    if isinstance(part, bytes):
        return part
    if hasattr(part, "model_dump"):  # a pydantic config
        part = part.model_dump(mode="json")
    return json.dumps(part, sort_keys=True, default=str).encode()


def fingerprint(*parts: Any) -> str:
    """Short stable hash of everything that decides a run's output."""
    h = hashlib.sha1()
    for part in parts:
        h.update(b"\0" + _canonical(part))
    return h.hexdigest()[:10]


def run_id(job: str, name: str, fp: str, inputs: dict[str, int] | None = None) -> str:
    """A deterministic run id when ``inputs`` ({table: version}) is given, else a unique one."""
    if inputs is None:
        now = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{job}-{now}-{fp}-{uuid.uuid4().hex[:6]}"
    if len(inputs) == 1:
        (table, version), = inputs.items()
        return f"{job}-{name}-{fp}-{table.rstrip('/').rsplit('/', 1)[-1]}-v{version}"
    return f"{job}-{name}-{fingerprint(fp, sorted(inputs.items()))}"


@dataclass
class Table:
    """An input or output of a run: a table name (or a folder, for files), its URI and Delta version."""

    name: str
    uri: str
    version: int | None = None

    def row(self) -> tuple:
        return (self.name, self.uri, self.version)


@dataclass
class Run:
    """What a job records about itself while it runs; :func:`record_run` writes it."""

    job: str
    argv: list[str]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: str | None = None
    config: dict = field(default_factory=dict)
    inputs: list[Table] = field(default_factory=list)
    outputs: list[Table] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def software_versions() -> dict:
    import pyspark

    from jobs.common.session import code_origin

    return {"lakesift": __version__, "python": sys.version.split()[0], "pyspark": pyspark.__version__,
            "host": os.uname().nodename, "code": code_origin()}


def record_run(spark, lake, run: Run, status: str, error: str | None = None) -> None:
    """Append ``run``'s row to ``LAKE/_runs`` (``status``: ``succeeded`` or ``failed``)."""
    from jobs.common.lake import schema

    if status not in ("succeeded", "failed"):
        raise ValueError(f"run status must be succeeded or failed, got {status!r}")
    row = (run.id or run_id(run.job, run.job, "failed"), run.job, status, run.started_at, datetime.now(UTC),
           json.dumps(run.config, sort_keys=True, default=str), list(run.argv),
           json.dumps(run.summary, sort_keys=True, default=str), json.dumps(software_versions(), sort_keys=True),
           error, [t.row() for t in run.inputs], [t.row() for t in run.outputs])
    (spark.createDataFrame([row], schema("_runs")).write.format("delta").mode("append")
     .option("mergeSchema", "true").save(lake.path("_runs")))
