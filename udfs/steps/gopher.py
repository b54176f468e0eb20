"""Page filters of Gopher (Rae et al. 2021, table A1) as DCLM implements them: page length, mean word
length, symbol / bullet / ellipsis / non-alphabetic-word ratios, stop words and the line, paragraph
and n-gram repetition rules."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import Field, create_model

from lakesift.config import StrictModel
from udfs import kernels as K
from udfs.steps.base import Step, register

BULLETS = ("●", "•", "*", "-")


def _out_of_range(value: float, low: float, high: float, what: str, low_text: str | None = None) -> str | None:
    """``<what><<low>`` / ``<what>><high>`` when ``value`` is outside [low, high], else None."""
    if value < low:
        return f"{what}<{low_text if low_text is not None else format(low, 'g')}"
    if value > high:
        return f"{what}>{high:g}"
    return None
ELLIPSES = ("...", ". . .", "\u2026")


@register
class PageLength(Step):
    """Drop pages with fewer than ``min_length`` or more than ``max_length`` units.

    DCLM-Baseline: 50..100,000 words, words as fastText tokens starting with an alphanumeric
    character (``ignore_punctuation``; the units' ``tokens``), RefinedWeb / Gopher's length bounds.
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
            n = len(doc.paragraphs)
        else:
            n = len(doc.text)
        return _out_of_range(n, self.p.min_length, self.p.max_length, f"{t}s", str(self.p.min_length))


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
        return _out_of_range(doc.ws_char_count / n, self.p.min_length, self.p.max_length, "mean_word_length")


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


def _line_share_filter(name: str, param: str, default: float, label: str, matches, doc: str) -> type[Step]:
    """A registered filter dropping pages where more than ``param`` (a share of the lines, default
    ``default``) of their lines ``matches``; the reason is ``<label>>value``. Gopher's bullet and
    ellipsis rules differ only in these."""
    params = create_model("Params", __base__=StrictModel, **{param: (float, Field(default, ge=0, le=1))})

    def apply(self, d):
        lines, limit = d.lines, getattr(self.p, param)
        n = sum(matches(ln) for ln in lines)
        return f"{label}>{limit:g}" if n > limit * len(lines) else None

    cls_name = "".join(w.title() for w in name.split("_")[:2])
    cls = type(cls_name, (Step,), {"__doc__": doc, "__module__": __name__, "__qualname__": cls_name,
                                   "name": name, "kind": "filter", "Params": params, "apply": apply})
    return register(cls)


BulletCount = _line_share_filter(
    "bullet_count_filter", "max_bullet_start_ratio", 0.9, "bullet_lines", lambda ln: ln.startswith(BULLETS),
    "Drop pages where more than ``max_bullet_start_ratio`` of lines start with a bullet (Gopher: 0.9).")
EllipsisCount = _line_share_filter(
    "ellipsis_count_filter", "max_ellipsis_end_ratio", 0.3, "ellipsis_lines", lambda ln: ln.endswith(ELLIPSES),
    "Drop pages where more than ``max_ellipsis_end_ratio`` of lines end with an ellipsis (Gopher: 0.3).")


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
    and, that, have, with) among their lower-cased whitespace words (Gopher / DCLM: 2). Stop words and
    words are the document's units' (these by default)."""

    name, kind = "stop_word_filter", "filter"

    class Params(StrictModel):
        count_unique: bool = False
        min_stop_word: int = Field(2, ge=0)

    def apply(self, doc):
        if self.p.count_unique:
            n = len(doc.units.stop_words.intersection(map(str.lower, doc.words)))
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
    n-grams are over UAX #29 words starting with an alphanumeric character (the units' ``ngram_words``).
    A text of one segment passes the line / paragraph rules; an empty text is dropped.

    Every threshold is a parameter (default: Gopher's), so a pipeline can carry per-language values
    such as FineWeb-2's (``conf/pipelines/fineweb2_languages.yaml``): ``top_n_grams`` / ``dup_n_grams``
    as ``[[n, max_share], ...]`` replace the whole list of their kind.
    """

    name, kind = "massive_web_repetition_filters", "filter"
    NGRAM_MAX = {2: 0.20, 3: 0.18, 4: 0.16, 5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    LIMITS = tuple(sorted(NGRAM_MAX.items()))

    class Params(StrictModel):
        skip_paragraph: bool = False
        dup_line_frac: float = Field(0.30, ge=0, le=1)
        dup_para_frac: float = Field(0.30, ge=0, le=1)
        dup_line_char_frac: float = Field(0.20, ge=0, le=1)
        dup_para_char_frac: float = Field(0.20, ge=0, le=1)
        top_n_grams: list[tuple[int, float]] | None = None  # n in 2..4; None: Gopher's
        dup_n_grams: list[tuple[int, float]] | None = None  # n in 5..64; None: Gopher's

    def __init__(self, params):
        super().__init__(params)
        top = {n: v for n, v in self.NGRAM_MAX.items() if n <= 4}
        dup = {n: v for n, v in self.NGRAM_MAX.items() if n >= 5}
        if params.top_n_grams is not None:
            top = dict(params.top_n_grams)
            if any(not 2 <= n <= 4 for n in top):
                raise ValueError("top_n_grams: n must be 2, 3 or 4 (the top n-gram rule)")
        if params.dup_n_grams is not None:
            dup = dict(params.dup_n_grams)
            if any(not 5 <= n <= 64 for n in dup):
                raise ValueError("dup_n_grams: n must be in 5..64 (the duplicate n-gram rule)")
        self.ngram_max = {**top, **dup}
        self.limits = tuple(sorted(self.ngram_max.items()))
        p = params
        self.segment_limits = ((False, "line", p.dup_line_frac), (False, "paragraph", p.dup_para_frac),
                               (True, "line", p.dup_line_char_frac), (True, "paragraph", p.dup_para_char_frac))

    def apply(self, doc):
        if not doc.text:
            return "empty"
        segments = {"line": doc.lines}
        if not self.p.skip_paragraph:
            segments["paragraph"] = doc.paragraphs
        for count_chars, unit, limit in self.segment_limits:
            segs = segments.get(unit)
            if segs is None:
                continue
            if len(segs) == 0:
                return f"no_{unit}s"
            if len(segs) > 1 and _repeated_fraction_segments(segs, count_chars) > limit:
                return f"dup_{unit}_{'chars' if count_chars else 'count'}>{limit:g}"
        if not self.limits:
            return None
        if K.rules is not None:
            # the text itself on the default units (-1: not a fast-path text), else the units' words
            n = K.rules.ngram_repetition(doc.text, self.limits) if doc.units.compiled else -1
            if n < 0:
                n = K.rules.ngram_repetition(doc.ngram_words, self.limits)
        else:
            hit = _ngram_fractions(doc.ngram_words, self.ngram_max)
            n = hit[0] if hit else 0
        if n:
            return f"{'top' if n <= 4 else 'dup'}_{n}gram>{self.ngram_max[n]:g}"
        return None
