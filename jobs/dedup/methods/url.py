"""``method: url``: documents with the same URL."""

from __future__ import annotations

from typing import Literal

from jobs.common.job import UsageError
from jobs.dedup.methods.base import KeepConfig, Method, StepResult, register, survivors_by_key


class UrlConfig(KeepConfig):
    method: Literal["url"]


@register
class Url(Method):
    """Documents whose ``url`` (trimmed) is equal are one group; a null or blank URL is never a
    duplicate. The input needs a ``url`` column."""

    name, config = "url", UrlConfig

    def check_input(self, cfg: UrlConfig, columns: list[str]) -> None:
        if "url" not in columns:
            raise UsageError("url dedup needs a `url` column")
        super().check_input(cfg, columns)

    def run(self, spark, df, cfg: UrlConfig, ctx) -> StepResult:
        from pyspark.sql import functions as F

        keyed = df.withColumn("_key", F.nullif(F.trim("url"), F.lit("")))
        kept, clusters = survivors_by_key(keyed, "_key", cfg, self.name, ctx.run_id)
        return StepResult(kept, clusters, {}, [])
