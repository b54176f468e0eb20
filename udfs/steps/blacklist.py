"""A weighted, categorised word dictionary against web spam in any language (built for Chinese pages:
gambling, porn, black-market ads, scams, drugs), matched with one Aho-Corasick automaton.

Dictionary file (``conf/banlists/zh_blacklist.tsv`` by default; docs/zh_blacklist.md): UTF-8 TSV, one
entry a line::

    word<TAB>category[<TAB>weight]

* ``word``: the text to find, matched as a substring (Chinese has no spaces to match whole words by),
  except that an entry made only of ASCII characters (``casino``, ``bet365``, ``online casino``) matches
  as a whole word: no ASCII letter or digit just before or after it. ASCII letters are lower-cased, in
  the entry and in the text, so Latin words match in any case; no other character is changed (no
  traditional -> simplified conversion: list both forms, or convert the text in an earlier step).
* ``category``: a name of ASCII letters, digits, ``_``, ``-`` or ``.`` (it appears in reasons and columns);
* ``weight``: a positive number, default 1.0 (the default dictionary: 2.0 for unambiguous terms, 1.0 for
  those with innocent uses);
* ``#`` starting a line (after optional whitespace) makes it a comment; blank lines are skipped.

A malformed line (missing category, a weight that is not a positive number, an empty word, more than
three fields) or a word listed twice (after lower-casing ASCII) is a ``ValueError`` naming the file and
line (the pipeline loader reports it as a ``ConfigError``): **duplicates are errors**, not "last one wins",
because the same word in two categories would make the dominant category depend on line order.

Counting: every occurrence of every word counts, except that occurrences never overlap: scanning left to
right, the match that starts first wins and, of those starting at the same place, the longest
(leftmost-longest). So ``六合彩`` in "买六合彩" is one hit even though ``合彩`` also matches inside it, and
"北京赛车平台" is one hit ``北京赛车`` if ``赛车平台`` is listed too. A page's *weighted hits* is the sum of
the weights of its hits; its *dominant category* the category with the most weighted hits (ties: the
first name in alphabetical order).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from pydantic import Field

from lakesift.config import StrictModel
from udfs.steps.base import Step, register

_CATEGORY = re.compile(r"[A-Za-z0-9_.\-]+")
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def ascii_lower(text: str) -> str:
    """``text`` with the ASCII letters A-Z lower-cased and every other character as it is (``str.lower``
    would also change e.g. Cyrillic, Greek and full-width letters, and ``İ`` into two characters).
    Positions are unchanged."""
    if text.isascii():
        return text.lower()
    return text.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class Entry:
    word: str  # ASCII lower-cased
    category: str
    weight: float
    line: int


def read_dictionary(path: str) -> list[Entry]:
    """The entries of a dictionary file (module docstring), in file order; ``ValueError`` naming the
    file and line for a malformed line or a duplicate word. ``path`` is resolved like every list file
    (``udfs.resources.resolve``: absolute, relative to the working directory, or inside ``conf/``)."""
    from pathlib import Path

    from udfs import resources

    resolved = resources.resolve(path)
    try:
        raw = Path(resolved).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{resolved}: not UTF-8 ({exc})") from None
    entries: list[Entry] = []
    first_line: dict[str, int] = {}
    for no, line in enumerate(raw.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue

        def bad(why: str, _no: int = no, _line: str = line) -> ValueError:
            return ValueError(f"{resolved}:{_no}: {why} (expected word<TAB>category[<TAB>weight]): {_line!r}")

        fields = [f.strip() for f in line.split("\t")]
        if len(fields) > 3:
            raise bad(f"{len(fields)} tab-separated fields")
        word = ascii_lower(fields[0])
        if not word:
            raise bad("empty word")
        if len(fields) < 2 or not fields[1]:
            raise bad("missing category")
        category = fields[1]
        if not _CATEGORY.fullmatch(category):
            raise bad(f"category {category!r} is not made of ASCII letters, digits, '_', '-', '.'")
        weight = 1.0
        if len(fields) == 3:
            try:
                weight = float(fields[2])
            except ValueError:
                raise bad(f"weight {fields[2]!r} is not a number") from None
            if not (math.isfinite(weight) and weight > 0):
                raise bad(f"weight {fields[2]!r} is not a positive number")
        if word in first_line:
            raise bad(f"duplicate word {word!r} (first on line {first_line[word]})")
        first_line[word] = no
        entries.append(Entry(word, category, weight, no))
    if not entries:
        raise ValueError(f"{resolved}: no entries")
    return entries


class Matcher:
    """One Aho-Corasick automaton over a list of entries, and the leftmost-longest hits in a text."""

    def __init__(self, entries: list[Entry]):
        try:
            import ahocorasick
        except ImportError:  # pragma: no cover - the zh extra is part of dev
            raise ImportError("blacklist_filter needs pyahocorasick: pip install 'lakesift[zh]'") from None
        self.entries = entries
        self.lengths = [len(e.word) for e in entries]
        self.whole_word = [e.word.isascii() for e in entries]
        self.automaton = ahocorasick.Automaton()
        for i, e in enumerate(entries):
            self.automaton.add_word(e.word, i)
        self.automaton.make_automaton()

    def hits(self, text: str) -> list[int]:
        """Indices into ``entries`` of the hits in ``text``, in text order (module docstring)."""
        low = ascii_lower(text)
        n = len(low)
        cands = []
        lengths, whole = self.lengths, self.whole_word
        for end, i in self.automaton.iter(low):
            start = end - lengths[i] + 1
            if whole[i] and ((start > 0 and low[start - 1] in _ASCII_ALNUM)
                             or (end + 1 < n and low[end + 1] in _ASCII_ALNUM)):
                continue
            cands.append((start, -lengths[i], i))
        if not cands:
            return []
        cands.sort()
        out, free = [], 0  # free: the first position no chosen hit covers
        for start, neg_len, i in cands:
            if start >= free:
                out.append(i)
                free = start - neg_len
        return out


# One matcher per dictionary file (and category selection) and Python worker: the pipeline is built
# in every Spark task, the automaton only once.
_MATCHERS: dict[tuple, tuple[Matcher, frozenset[str]]] = {}


def matcher(path: str, categories: list[str] | None) -> tuple[Matcher, frozenset[str]]:
    """The matcher of ``path``'s entries of ``categories`` (None: all) and the categories the file
    has; an unknown category is a ``ValueError`` listing the file's."""
    from udfs import resources

    resolved = resources.resolve(path)
    st = os.stat(resolved)
    key = (resolved, st.st_mtime_ns, st.st_size, None if categories is None else tuple(sorted(set(categories))))
    if key not in _MATCHERS:
        entries = read_dictionary(resolved)
        known = frozenset(e.category for e in entries)
        if categories is not None:
            unknown = sorted(set(categories) - known)
            if unknown:
                raise ValueError(f"categories: {', '.join(map(repr, unknown))} not in {resolved}; "
                                 f"it has: {', '.join(sorted(known))}")
            entries = [e for e in entries if e.category in set(categories)]
        _MATCHERS[key] = (Matcher(entries), known)
    return _MATCHERS[key]


@register
class Blacklist(Step):
    """Drop pages with too many hits of a spam dictionary (gambling, porn, ads, scam, drugs ...).

    The hits and their weights are those of the module docstring (every occurrence, leftmost-longest,
    never overlapping; ASCII case-insensitive). ``categories`` keeps only the entries of those
    categories (None: all). A page is dropped when any enabled rule fires (None disables a rule),
    checked in this order:

    * ``min_hits``: weighted hits >= ``min_hits`` (3). xubuvd/LLMs codes_datasets/DataCleaning
      utils/general_policy.py ``is_having_sentive_words``, threshold 3 (there: the sum of
      ``text.count(word)`` over the keywords, unweighted, overlapping sub-words counted again; with
      weights 1.0 the rule here is that count without the double counting);
    * ``max_per_line``: weighted hits / the page's lines (``doc.lines``: non-empty lines of the
      pipeline's text units) > ``max_per_line`` (0.5). ChineseWebText / EvalWeb preprocess.py,
      ``max_sensitive_word_per_line=0.5`` (there: the number of distinct dictionary words present over
      ``len(text.split('\\n'))``; here occurrences, weighted, over non-empty lines, so the rule is
      stricter on pages that repeat one word or have blank lines);
    * ``max_per_1000_chars``: weighted hits per 1,000 characters of the text > ``max_per_1000_chars``
      (off by default).

    Reasons name the dominant category and the rule with its threshold, never the page's value, so
    that they group in statistics: ``blacklist:gambling hits>=3``, ``blacklist:porn per_line>0.5``,
    ``blacklist:ads per_1000_chars>2``. Every page gets ``key`` (the number of hits, unweighted; an int
    column) and ``category_key`` (its dominant category, None without hits; a string column) when set.
    The default dictionary, ``conf/banlists/zh_blacklist.tsv``, was written for Lakesift
    (docs/zh_blacklist.md: its categories, how it was checked on clean text and on spam pages).
    """

    name, kind = "blacklist_filter", "filter"

    class Params(StrictModel):
        dictionary: str = Field("banlists/zh_blacklist.tsv", min_length=1)
        categories: list[str] | None = Field(None, min_length=1)
        min_hits: int | None = Field(3, ge=1)
        max_per_line: float | None = Field(0.5, ge=0)
        max_per_1000_chars: float | None = Field(None, ge=0)
        key: str | None = Field("blacklist_hits", min_length=1)
        category_key: str | None = Field("blacklist_category", min_length=1)

    def __init__(self, params):
        super().__init__(params)
        self.matcher, self.known_categories = matcher(params.dictionary, params.categories)

    def columns(self):
        out = {}
        if self.p.key:
            out[self.p.key] = "int"
        if self.p.category_key:
            out[self.p.category_key] = "string"
        return out

    def score(self, text: str) -> tuple[int, float, str | None]:
        """(hits, weighted hits, dominant category) of a text."""
        hits = self.matcher.hits(text)
        if not hits:
            return 0, 0.0, None
        entries = self.matcher.entries
        per_cat: dict[str, float] = {}
        for i in hits:
            e = entries[i]
            per_cat[e.category] = per_cat.get(e.category, 0.0) + e.weight
        top = min(per_cat, key=lambda c: (-per_cat[c], c))
        return len(hits), round(sum(per_cat.values()), 9), top  # 0.1 + 0.2 compares as 0.3

    def apply(self, doc):
        p = self.p
        n, weighted, top = self.score(doc.text)
        if p.key:
            doc.meta[p.key] = n
        if p.category_key:
            doc.meta[p.category_key] = top
        if not n:
            return None
        if p.min_hits is not None and weighted >= p.min_hits:
            return f"blacklist:{top} hits>={p.min_hits}"
        if p.max_per_line is not None:
            lines = len(doc.lines)
            if lines and weighted / lines > p.max_per_line:
                return f"blacklist:{top} per_line>{p.max_per_line:g}"
        if p.max_per_1000_chars is not None and weighted * 1000 / len(doc.text) > p.max_per_1000_chars:
            return f"blacklist:{top} per_1000_chars>{p.max_per_1000_chars:g}"
        return None
