"""C4's line and page rules and bad-word list (Raffel et al. 2020) and FineWeb's quality rules
(Penedo et al. 2024)."""

from __future__ import annotations

import re

from pydantic import Field

from lakesift.config import StrictModel
from udfs import text as T
from udfs.steps.base import Step, _read_list, register

_TERMINAL = (".", "!", "?", '"')
_C4_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")


@register
class C4Quality(Step):
    """C4's rules (Raffel et al. 2020, sec. 2.2), line rules first, then page rules.

    Lines are removed when they contain "javascript", do not end in terminal punctuation
    (. ! ? "), have fewer than ``min_words_per_line`` (3) words, or contain a cookie / privacy policy
    phrase; Wikipedia citation markers are removed. The page is dropped when it contains "lorem
    ipsum" or a curly brace, or when fewer than ``min_sentences`` (5) sentences remain. Sentences are
    counted as terminal punctuation followed by whitespace or the end (C4 used NLTK's Punkt).
    """

    name, kind = "c4_quality_filter", "filter"

    class Params(StrictModel):
        remove_citations: bool = True
        filter_javascript: bool = True
        filter_no_terminal_punct: bool = True
        min_words_per_line: int = Field(3, ge=0)
        filter_policy: bool = True
        filter_lorem_ipsum: bool = True
        filter_curly_bracket: bool = True
        min_sentences: int = Field(5, ge=0)

    def apply(self, doc):
        p = self.p
        text = doc.text
        low = text.lower()
        if p.filter_lorem_ipsum and "lorem ipsum" in low:
            return "lorem_ipsum"
        if p.filter_curly_bracket and "{" in text:
            return "curly_bracket"
        kept, words = [], doc.units.words
        for ln in text.split("\n"):
            ln = ln.strip()
            if p.remove_citations:
                ln = _CITATION.sub("", ln)
            lower = ln.lower()
            if not ln or (p.filter_javascript and "javascript" in lower):
                continue
            if p.filter_no_terminal_punct and not ln.endswith(_TERMINAL):
                continue
            if len(words(ln)) < p.min_words_per_line:
                continue
            if p.filter_policy and any(ph in lower for ph in _C4_POLICY):
                continue
            kept.append(ln)
        new = "\n".join(kept)
        doc.set_text(new)
        if len(_SENTENCE_END.findall(new)) < p.min_sentences:
            return f"sentences<{p.min_sentences}"
        return None


@register
class C4BadWords(Step):
    """Drop pages containing a word of the LDNOOBW list as a whole word (C4), case-insensitive."""

    name, kind = "c4_badwords_filter", "filter"

    class Params(StrictModel):
        banlist_from_fname: str = "banlists/ldnoobw_en.txt"

    def __init__(self, params):
        super().__init__(params)
        words = sorted({w.lower() for w in _read_list(params.banlist_from_fname)})
        self.rx = re.compile(rf"\b(?:{T.trie_regex(words)})\b", re.I)

    def apply(self, doc):
        m = self.rx.search(doc.text)
        return f"bad_word:{m.group(0).lower()}" if m else None


@register
class FineWebQuality(Step):
    """FineWeb's quality rules (Penedo et al. 2024, sec. 3.3), over stripped non-empty lines:

    * share of lines ending in terminal punctuation (. ? ! " ') below ``line_punct_thr`` (0.12);
    * share of lines of at most ``short_line_length`` (30) characters above ``short_line_thr`` (0.67);
    * share of characters in duplicated lines above ``char_duplicates_ratio`` (0.01);
    * newlines per whitespace word above ``new_line_ratio`` (0.3).
    """

    name, kind = "fineweb_quality_filter", "filter"
    END = (".", "?", "!", '"', "'")

    class Params(StrictModel):
        line_punct_thr: float = Field(0.12, ge=0, le=1)
        short_line_thr: float = Field(0.67, ge=0, le=1)
        short_line_length: int = Field(30, ge=0)
        char_duplicates_ratio: float = Field(0.01, ge=0, le=1)
        new_line_ratio: float = Field(0.3, ge=0)
        # the marks a line may end in; None: FineWeb's (English) ones. Other scripts need their own
        # (。！？ in Chinese and Japanese, । in Hindi, ؟ in Arabic …: conf/pipelines/fineweb2_default.yaml)
        end_punctuation: list[str] | None = None

    def __init__(self, params):
        super().__init__(params)
        self.end = self.END if params.end_punctuation is None else tuple(params.end_punctuation)

    def apply(self, doc):
        p = self.p
        lines = doc.lines
        if not lines:
            return "empty"
        if sum(ln.endswith(self.end) for ln in lines) / len(lines) < p.line_punct_thr:
            return f"line_punct<{p.line_punct_thr:g}"
        if sum(len(ln) <= p.short_line_length for ln in lines) / len(lines) > p.short_line_thr:
            return f"short_lines>{p.short_line_thr:g}"
        total = sum(len(ln) for ln in lines)
        seen: set[str] = set()
        dup_chars = 0
        for ln in lines:
            if ln in seen:
                dup_chars += len(ln)
            seen.add(ln)
        if total and dup_chars / total > p.char_duplicates_ratio:
            return f"dup_line_chars>{p.char_duplicates_ratio:g}"
        words = doc.words
        if words and doc.text.count("\n") / len(words) > p.new_line_ratio:
            return f"newline_ratio>{p.new_line_ratio:g}"
        return None
