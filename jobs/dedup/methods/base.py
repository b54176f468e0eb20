"""The dedup methods: a registry of step kinds, one file each in ``jobs/dedup/methods/``.

A method is a config model (the keys of one ``steps:`` item of ``conf/dedup/*.yaml``) and a
:class:`Method` subclass whose ``run`` turns the survivors of the previous step into its own survivors
and ``dup_clusters`` rows. ``DedupConfig.steps`` (``jobs/dedup/main.py``) is a discriminated union of
the registered config models (:func:`step_type`), so ``method: <name>`` picks the model and unknown keys
are errors, as in every config.

How to add a method, say ``simhash``:

1. a new file ``jobs/dedup/methods/simhash.py``::

       from typing import Literal

       from jobs.dedup.methods.base import KeepConfig, Method, StepResult, register, survivors_by_key

       class SimHashConfig(KeepConfig):        # KeepConfig: keep first / longest / best; else StepConfig
           method: Literal["simhash"]          # the tag, equal to the method's name
           bits: int = 64

       @register
       class SimHash(Method):                  # its docstring: what counts as a duplicate
           name, config = "simhash", SimHashConfig

           def run(self, spark, df, cfg, ctx):
               keyed = ...                                          # df plus a `_key` column
               kept, clusters = survivors_by_key(keyed, "_key", cfg, self.name, ctx.run_id)
               return StepResult(kept, clusters, {"buckets": n}, [])  # stats, frames to unpersist

2. one import line in ``jobs/dedup/methods/__init__.py``: ``from jobs.dedup.methods import simhash``.

The contract of ``run(spark, df, cfg, ctx) -> StepResult``:

* ``df``: the survivors so far (at least ``doc_id``, ``text``; every input column);
* ``kept``: the survivors, with ``df``'s columns and no more (``text`` may be rewritten);
* ``clusters``: ``dup_clusters`` rows built with :func:`cluster_columns` (the catalogued schema), one per
  document of a group of two or more (or, for a method that rewrites, each document it dropped or
  changed), ``kept`` true for the survivors; every document of ``df`` is in ``kept`` or a
  ``kept = false`` row, never both;
* ``stats``: ``{name: value}`` printed in the funnel and written to ``run_stats`` as reason
  ``name=value``;
* ``unpersist``: frames the method persisted, released after the outputs are written.

Hooks with defaults: :meth:`Method.check_config` (before Spark starts: raise ``ConfigError``) and
:meth:`Method.check_input` (on the input's columns, before anything runs: raise ``UsageError``).
Per-document logic belongs in ``udfs/dedup.py`` (no Spark); ``mapInArrow`` functions import from there
inside the task so that executors need only ``udfs``.
"""

from __future__ import annotations

import functools
import logging
import operator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, get_args

from pydantic import Field

from jobs.common.job import UsageError
from lakesift.config import StrictModel


class StepConfig(StrictModel):
    """Base of every method's config: ``method`` is the discriminator (each method narrows it to
    ``Literal["<name>"]``)."""

    method: str


class KeepConfig(StepConfig):
    """A method that groups duplicates and keeps one per group, chosen by ``keep``: ``first`` (smallest
    doc_id), ``longest`` (most characters, then smallest id) or ``best`` (largest value of column
    ``by``, then smallest id), so the same input gives the same survivors."""

    keep: Literal["first", "longest", "best"] = "first"
    by: str | None = None  # column for keep: best


@dataclass(frozen=True)
class StepContext:
    """What a method gets from the job besides the data: the run id (for ``dup_clusters`` rows), a
    checkpoint directory of its own, the job's logger."""

    run_id: str
    checkpoint_dir: str
    log: logging.Logger


class StepResult(NamedTuple):
    kept: Any                # DataFrame: the survivors
    clusters: Any            # DataFrame: dup_clusters rows (cluster_columns)
    stats: dict              # name -> value: funnel details and run_stats reasons
    unpersist: list          # frames persisted by the method


class Method:
    """One dedup method; subclasses set ``name`` and ``config`` and implement :meth:`run`."""

    name: ClassVar[str]
    config: ClassVar[type[StepConfig]]

    def check_config(self, cfg: StepConfig, where: str) -> None:
        """Checks beyond the model's own, before Spark starts; raise ``ConfigError`` naming ``where``."""

    def check_input(self, cfg: StepConfig, columns: list[str]) -> None:
        """Checks on the input table's columns, before anything runs; raise ``UsageError``."""
        if isinstance(cfg, KeepConfig):
            keep_order(cfg, columns)

    def run(self, spark, df, cfg: StepConfig, ctx: StepContext) -> StepResult:
        raise NotImplementedError


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: add a method to :data:`METHODS` under its ``name``."""
    tag = get_args(cls.config.model_fields["method"].annotation)
    if tag != (cls.name,):
        raise TypeError(f"{cls.__name__}: config {cls.config.__name__}.method must be Literal[{cls.name!r}]")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise TypeError(f"dedup method {cls.name!r} registered twice ({METHODS[cls.name].__name__}, {cls.__name__})")
    METHODS[cls.name] = cls
    return cls


def method_for(cfg: StepConfig) -> Method:
    return METHODS[cfg.method]()


def step_type():
    """The type of one ``steps:`` item: the registered configs, told apart by ``method``."""
    models = [m.config for m in METHODS.values()]
    if len(models) == 1:
        return models[0]
    return Annotated[functools.reduce(operator.or_, models), Field(discriminator="method")]


# ------------------------------------------------------------------------- shared by the methods

def cluster_columns(doc_id, cluster_id, kept, method: str, run_id: str) -> list:
    """The select list of ``dup_clusters`` rows, in the catalogued order and types
    (``jobs.common.lake.schema("dup_clusters")``); columns given as names or Column expressions."""
    from pyspark.sql import Column
    from pyspark.sql import functions as F

    from jobs.common.lake import schema

    given = {"doc_id": doc_id, "cluster_id": cluster_id, "kept": kept, "method": F.lit(method),
             "run_id": F.lit(run_id)}
    return [(c if isinstance(c, Column) else F.col(c)).cast(f.dataType).alias(f.name)
            for f in schema("dup_clusters").fields for c in [given[f.name]]]


def keep_order(cfg: KeepConfig, columns: list[str]) -> list:
    """The order in which a group's survivor comes first; :class:`UsageError` for ``keep: best``
    without ``by`` naming an input column."""
    from pyspark.sql import functions as F

    if cfg.keep == "longest":
        return [F.length("text").desc(), F.col("doc_id").asc()]
    if cfg.keep == "best":
        if not cfg.by or cfg.by not in columns:
            raise UsageError(f"keep: best needs `by` naming an input column (have {', '.join(columns)})")
        return [F.col(cfg.by).desc_nulls_last(), F.col("doc_id").asc()]
    return [F.col("doc_id").asc()]


def survivors_by_key(df, key_col: str, cfg: KeepConfig, method: str, run_id: str):
    """Group on ``key_col`` (null: never a duplicate); the first row by the keep policy survives.
    Returns (survivors without ``key_col``, dup_clusters rows of the groups of two or more)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy(key_col).orderBy(*keep_order(cfg, df.columns))
    ranked = (df.withColumn("_rank", F.when(F.col(key_col).isNull(), F.lit(1)).otherwise(F.row_number().over(w)))
              .withColumn("_size", F.when(F.col(key_col).isNull(), F.lit(1))
                          .otherwise(F.count("*").over(Window.partitionBy(key_col))))
              .withColumn("_cluster", F.first("doc_id").over(w)))
    clusters = ranked.filter("_size > 1").select(
        *cluster_columns("doc_id", "_cluster", F.col("_rank") == 1, method, run_id))
    return ranked.filter("_rank = 1").drop("_rank", "_size", "_cluster", key_col), clusters
