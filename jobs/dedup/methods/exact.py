"""``method: exact``: documents whose normalised text is equal."""

from __future__ import annotations

from typing import Literal

from jobs.dedup.methods.base import KeepConfig, Method, StepResult, register, survivors_by_key
from udfs.dedup import Normalization


class ExactConfig(KeepConfig):
    method: Literal["exact"]
    normalization: Normalization = Normalization()


@register
class Exact(Method):
    """Documents with the same key ``udfs.dedup.exact_key`` (SHA-1 of ``normalized_text``: the
    normalised words joined by spaces, or with ``normalization.units: chars`` the normalised characters
    with no separator, so texts that differ only in spacing and punctuation are equal) are one group;
    a document with no unit has no key and is never a duplicate."""

    name, config = "exact", ExactConfig

    def run(self, spark, df, cfg: ExactConfig, ctx) -> StepResult:
        from pyspark.sql import types as T

        norm = cfg.normalization

        def key_task(batches):
            import pyarrow as pa

            from udfs.dedup import exact_key

            for b in batches:
                keys = [exact_key(t, norm) for t in b.column("text").to_pylist()]
                yield pa.RecordBatch.from_arrays([*b.columns, pa.array(keys, pa.string())],
                                                 names=[*b.schema.names, "_key"])

        keyed = df.mapInArrow(key_task, T.StructType([*df.schema.fields, T.StructField("_key", T.StringType(), True)]))
        kept, clusters = survivors_by_key(keyed, "_key", cfg, self.name, ctx.run_id)
        return StepResult(kept, clusters, {}, [])
