"""The fastText quality classifier as a pipeline step (the score as an enricher) and the keep rule on
a score, by threshold or by the top fraction of the corpus. The model code is :mod:`udfs.quality`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from lakesift.config import StrictModel
from udfs.steps.base import CorpusStat, Step, register


@register
class FastTextQuality(Step):
    """Score each page with a fastText quality classifier: p(positive label), stored under ``key``
    (DCLM: ``classify_fasttext_hq_prob_enricher``, labels ``__label__hq`` / ``__label__cc``).

    ``model`` is a local file or model folder, a cloud URI (``s3://``, ``gs://``, ``abfss://``,
    ``https://``, ``dbfs:/``) or a hub id ``hf://owner/repo/file.bin``. The text normalisation is the
    one the model was trained with when a Lakesift ``quality.yaml`` sits beside the model, else
    ``normalization`` (DCLM's by default). Pages are scored in batches, one fastText call per batch."""

    name, kind = "fasttext_quality_enricher", "enricher"

    class Params(StrictModel):
        model: str
        key: str = "fasttext_hq_prob"
        positive_label: str = "__label__hq"
        normalization: dict[str, Any] | None = None  # overrides the model's own

    def __init__(self, params):
        super().__init__(params)
        self._model = None
        self._norm = None
        self.local_path: str | None = None  # set by prepare() or by the job (a file shipped to executors)

    def columns(self):
        return {self.p.key: "double"}

    def pinned_params(self):
        """The text normalisation the model was trained with (its quality.yaml), unless set here."""
        from udfs import quality

        if self.p.normalization is not None or self.local_path is None:
            return {}
        norm = quality.model_normalization(self.local_path)
        return {} if norm is None else {"normalization": norm.model_dump()}

    def prepare(self):
        from udfs import quality

        if self.local_path is None:
            self.local_path = quality.resolve_model(self.p.model)
        quality.load_model(self.local_path)  # fail early on a file that is not a fastText model

    def _load(self):
        if self._model is None:
            from udfs import quality

            path = self.local_path or quality.resolve_model(self.p.model)
            self._model = quality.load_model(path)
            if self.p.normalization is not None:
                self._norm = quality.Normalization.model_validate(self.p.normalization)
            else:
                self._norm = quality.model_normalization(path) or quality.Normalization()
        return self._model

    def apply(self, doc):
        return self.apply_batch([doc])[0]

    def apply_batch(self, docs):
        from udfs import quality

        model = self._load()
        scores = quality.score(model, [d.text for d in docs], self._norm, self.p.positive_label)
        for d, sc in zip(docs, scores, strict=True):
            d.meta[self.p.key] = float(sc)
        return [None] * len(docs)


@register
class QualityFilter(Step):
    """Keep pages whose score ``key`` is >= ``threshold`` (DCLM's ``quality_filter``; DCLM-Baseline:
    ``fasttext_hq_prob`` >= 0.018112, about the top 10%), or <= it with ``lower_better``.

    ``top_fraction`` instead keeps that fraction of the pages reaching this step: the step's
    :meth:`corpus_stat` is that quantile of ``key``, which the Spark job computes over the whole table
    (to ``relative_error``) before applying it; plain Python callers must call ``resolve(threshold)``
    first. A page without the score is dropped."""

    name, kind = "quality_filter", "filter"

    class Params(StrictModel):
        key: str = "fasttext_hq_prob"
        threshold: float | None = None
        top_fraction: float | None = Field(None, gt=0, le=1)
        lower_better: bool = False
        relative_error: float = Field(1e-4, gt=0, lt=0.1)

    def __init__(self, params):
        super().__init__(params)
        if (params.threshold is None) == (params.top_fraction is None):
            raise ValueError("set exactly one of threshold and top_fraction")
        self.threshold = params.threshold

    def corpus_stat(self):
        if self.p.top_fraction is None:
            return None
        return CorpusStat(self.p.key, self.quantile(), self.p.relative_error)

    def reads(self):
        return [self.p.key]

    def quantile(self) -> float:
        """The quantile of ``key`` whose value is the threshold for ``top_fraction``."""
        f = self.p.top_fraction
        return f if self.p.lower_better else 1.0 - f

    def resolve(self, threshold: float) -> None:
        self.threshold = threshold

    def describe_threshold(self, threshold: float) -> str:
        return f"top_fraction {self.p.top_fraction:g} of {self.p.key} -> threshold {threshold:.6g}"

    def apply(self, doc):
        if self.threshold is None:
            raise RuntimeError(f"{self.name}: top_fraction threshold not resolved (run it through jobs/filter.py)")
        v = doc.meta.get(self.p.key)
        if v is None:
            return f"{self.p.key}=missing"
        if self.p.lower_better:
            return None if v <= self.threshold else f"{self.p.key}>{self.threshold:.6g}"
        return None if v >= self.threshold else f"{self.p.key}<{self.threshold:.6g}"
