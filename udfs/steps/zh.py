"""Chinese cleaning: normalisation and traditional -> simplified modifiers, the boilerplate-line
modifier, and filters on characters (length, CJK share, line length, repetition, punctuation,
symbols, garbled text). Blacklist words and PII are :mod:`udfs.steps.blacklist` / :mod:`udfs.steps.pii`.

Each filter's docstring says what it counts, how the threshold compares and where the default
comes from. The sources, by the names the docstrings use:

* **EvalWeb**: ChineseWebText's ``preprocess.py`` (CASIA-LM, Chen et al. 2023, arXiv 2311.01149):
  ``min_len=200``, ``min_line_len=10``, ``min_zh_percent=0.3``, 13-gram ``max_repeat=0.5``;
* **xubuvd**: the Chinese cleaning seed (xubuvd/LLMs, ``codes_datasets/DataCleaning/utils/
  general_policy.py``): the 64-character run without punctuation, the garble test (characters per
  jieba word < 1.1), spaces between Han characters, punctuation runs; the rules only: that
  repository has no licence, nothing of it is copied;
* **ROOTS**: BigScience's character repetition ratio (Laurençon et al. 2022), as Data-Juicer's
  ``character_repetition_filter`` runs it (``rep_len=10``, ``max_ratio=0.5``);
* **CCNet** (Wenzek et al. 2020): language-ID threshold 0.5;
* **Gopher** (Rae et al. 2021): the repetition rules, run over characters with ``units: zh``.

Everything here is plain Python on one document (the dictionaries of OpenCC and jieba load once per
process, on first use).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Literal

import numpy as np
import regex
from pydantic import Field

from lakesift.config import StrictModel
from udfs import kernels as K
from udfs.steps.base import Step, _modified, _read_list, register
from udfs.steps.gopher import _ngram_fractions
from udfs.steps.units_zh import HAN, HAN_CHAR

# ---------------------------------------------------------------------------------------- characters

# Chinese punctuation that stays full width (the normal form in Chinese text)
ZH_PUNCT_FULLWIDTH = "，。！？：；（）、"
# ASCII punctuation written between Han characters -> the Chinese form
_ASCII_TO_ZH = {",": "，", "!": "！", "?": "？", ":": "：", ";": "；", ".": "。"}
_SENTENCE_PUNCT = "，。！？；：、,.!?;:"
_SENTENCE_END = ("。", "！", "？", "!", "?")
# invisible format characters removed (zero-width space / no-break, word joiner, BOM, soft hyphen,
# bidirectional embeddings and isolates, LRM / RLM); ZWJ / ZWNJ stay (they carry meaning in Persian,
# Indic scripts and emoji)
_INVISIBLE = "\u200b\u2060\ufeff\u00ad\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# NFKC decompositions "where safe": compatibility forms whose NFKC is the same text in a plainer
# code point. Kept as they are: super- / subscripts, fractions, circled and squared forms (NFKC
# would merge ² into 2, ½ into 1⁄2, ① into 1, ㎏ into kg) and vertical presentation forms.
_NFKC_UNSAFE_TAGS = ("<super>", "<sub>", "<fraction>", "<circle>", "<square>", "<vertical>")


_TABLES: dict[tuple, dict[int, str | None]] = {}
_TABLE_LOCK = threading.Lock()


def normalization_table(fullwidth: bool, nfkc: str, invisible: bool) -> dict[int, str | None]:
    """The ``str.translate`` table of :class:`TextNormalization` (built once per process and options)."""
    key = (fullwidth, nfkc, invisible)
    with _TABLE_LOCK:
        if key in _TABLES:
            return _TABLES[key]
        table: dict[int, str | None] = {}
        keep = {ord(c) for c in ZH_PUNCT_FULLWIDTH}
        if nfkc == "safe":
            for cp in range(0xA0, 0x110000):
                if 0xD800 <= cp < 0xE000 or cp in keep:
                    continue
                c = chr(cp)
                dec = unicodedata.decomposition(c)
                if not dec.startswith("<") or dec.startswith(_NFKC_UNSAFE_TAGS):
                    continue  # canonical decompositions are NFC's (applied to the whole text)
                n = unicodedata.normalize("NFKC", c)
                if n != c:
                    table[cp] = n
        if fullwidth:
            for cp in range(0xFF01, 0xFF5F):  # full-width ASCII -> ASCII, Chinese punctuation kept
                if cp not in keep:
                    table[cp] = chr(cp - 0xFEE0)
            table[0x3000] = " "  # ideographic space
        elif nfkc == "safe":
            for cp in list(table):
                if 0xFF01 <= cp <= 0xFF5E or cp == 0x3000:
                    del table[cp]
        if invisible:
            for c in _INVISIBLE:
                table[ord(c)] = None
            for cp in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, *range(0x80, 0xA0)):
                table[cp] = None  # C0 / C1 controls but \t \n \r (\r is handled before)
        _TABLES[key] = table
        return table


_HAN_SPACE_HAN = re.compile(rf"(?<=[{HAN}])[ \t]+(?=[{HAN}])")
_ASCII_PUNCT_IN_ZH = re.compile(rf"(?<=[{HAN}])([,!?:;.])(?=[{HAN}])")
_PUNCT_RUN = re.compile(r"([，。！？；：、,!?;:])\1+")


@register
class TextNormalization(Step):
    """Normalise characters, in one pass of ``str.translate`` plus a few regular expressions:

    * ``fullwidth_ascii``: full-width ASCII letters, digits and symbols (U+FF01..FF5E) -> ASCII, the
      ideographic space -> space; Chinese punctuation (``，。！？：；（）、``) stays full width;
    * ``nfkc: safe``: NFC, then NFKC for compatibility characters whose NFKC form is the same text
      (ligatures, half-width katakana, compatibility ideographs, no-break spaces …) but not super- /
      subscripts, fractions, circled / squared or vertical forms; ``full`` is plain NFKC (it turns
      Chinese punctuation into ASCII), ``off`` none;
    * ``invisible``: zero-width and bidirectional format characters, soft hyphens and control
      characters removed (``\\r\\n`` / ``\\r`` become ``\\n``; tabs stay);
    * ``punctuation``: ASCII ``, . ! ? : ;`` between two Han characters -> the Chinese form, and a run
      of one repeated sentence mark (``！！！``, ``，，``) -> one (xubuvd's punctuation rules);
    * ``cjk_spaces``: spaces between two Han characters removed (xubuvd's deleteSpaceBetweenChinese).

    A modifier: the document is dropped only if its text becomes empty."""

    name, kind = "text_normalization_modifier", "modifier"

    class Params(StrictModel):
        fullwidth_ascii: bool = True
        nfkc: Literal["safe", "full", "off"] = "safe"
        invisible: bool = True
        punctuation: bool = True
        cjk_spaces: bool = True

    def __init__(self, params):
        super().__init__(params)
        self._table = None

    def normalize(self, text: str) -> str:
        p = self.p
        if self._table is None:
            self._table = normalization_table(p.fullwidth_ascii, p.nfkc, p.invisible)
        if p.invisible and "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if p.nfkc == "full":
            text = unicodedata.normalize("NFKC", text)
        elif p.nfkc == "safe" and not text.isascii():
            text = unicodedata.normalize("NFC", text)
        if not text.isascii():
            text = text.translate(self._table)
            if p.cjk_spaces:
                text = _HAN_SPACE_HAN.sub("", text)
            if p.punctuation:
                text = _ASCII_PUNCT_IN_ZH.sub(lambda m: _ASCII_TO_ZH[m.group(1)], text)
        elif p.invisible:
            text = text.translate(self._table)
        if p.punctuation:
            text = _PUNCT_RUN.sub(r"\1", text)
        return text

    def apply(self, doc):
        new = self.normalize(doc.text)
        return _modified(doc, new) if new != doc.text else None


class _OpenCC:
    """One OpenCC converter per configuration and process, and the set of characters it changes."""

    _lock = threading.Lock()
    _by_config: dict[str, _OpenCC] = {}

    def __init__(self, config: str):
        import opencc

        self.converter = opencc.OpenCC(config if config.endswith(".json") else f"{config}.json")
        han = "".join(chr(cp) for lo, hi in ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))
                      for cp in range(lo, hi + 1))
        converted = self.converter.convert(han)
        if len(converted) == len(han):
            self.changed = frozenset(a for a, b in zip(han, converted, strict=True) if a != b)
        else:  # a multi-character mapping somewhere: character by character
            self.changed = frozenset(c for c in han if self.converter.convert(c) != c)
        # counting them is one regular-expression scan (a character set of a few thousand members)
        self.pattern = re.compile("[" + "".join(sorted(self.changed)) + "]")

    @classmethod
    def get(cls, config: str) -> _OpenCC:
        with cls._lock:
            if config not in cls._by_config:
                cls._by_config[config] = cls(config)
            return cls._by_config[config]


def traditional_share(text: str, changed: re.Pattern) -> tuple[float, int]:
    """(share of Han characters that the conversion changes, number of Han characters); ``changed``
    matches one such character (:attr:`_OpenCC.pattern`)."""
    n_han = len(HAN_CHAR.findall(text))
    if not n_han:
        return 0.0, 0
    return len(changed.findall(text)) / n_han, n_han


@register
class ChineseConvert(Step):
    """Traditional -> simplified Chinese with OpenCC (``t2s``; ``tw2s`` / ``hk2s`` for Taiwan / Hong
    Kong usage, ``tw2sp`` with Taiwan phrases), as a modifier or as a tag, never a drop.

    ``key`` (default ``zh_traditional_share``) stores the share of the page's Han characters that
    OpenCC's character table changes (0 for simplified text; typically > 0.2 for traditional text,
    as common characters like 們 / 這 / 個 differ). ``mode: convert`` converts pages whose share is
    above ``min_share`` and records ``zh_converted``; ``mode: tag`` only stores the share (and
    ``zh_script``: ``hant`` above ``hant_share``, ``hans`` otherwise, None without Han characters).
    ChineseWebText drops every page with a traditional character; converting keeps that text."""

    name, kind = "chinese_convert_modifier", "modifier"

    class Params(StrictModel):
        mode: Literal["convert", "tag"] = "convert"
        config: str = "t2s"
        min_share: float = Field(0.0, ge=0, le=1)
        hant_share: float = Field(0.1, ge=0, le=1)
        key: str = "zh_traditional_share"

    def prepare(self):
        _OpenCC.get(self.p.config)  # fail before Spark starts if OpenCC or the configuration is missing

    def columns(self):
        return {self.p.key: "double", "zh_script": "string", "zh_converted": "boolean"}

    def apply(self, doc):
        cc = _OpenCC.get(self.p.config)
        share, n_han = traditional_share(doc.text, cc.pattern)
        doc.meta[self.p.key] = share
        doc.meta["zh_script"] = None if not n_han else ("hant" if share > self.p.hant_share else "hans")
        convert = self.p.mode == "convert" and n_han > 0 and share > self.p.min_share
        doc.meta["zh_converted"] = convert
        if convert:
            return _modified(doc, cc.converter.convert(doc.text))
        return None


# ------------------------------------------------------------------------------------------ filters


@register
class CjkRatio(Step):
    """Keep pages where Han characters make up at least ``min_ratio`` of the non-whitespace
    characters (EvalWeb: 0.3 of ``[\\u4e00-\\u9fa5]`` over all characters; xubuvd: 0.6). ``chars: cjk``
    also counts kana and hangul. Catches mostly-English or code pages that language ID called zh."""

    name, kind = "cjk_ratio_filter", "filter"

    class Params(StrictModel):
        min_ratio: float = Field(0.3, ge=0, le=1)
        chars: Literal["han", "cjk"] = "han"
        key: str | None = None  # store the ratio under this metadata key (a double column)

    _CJK = re.compile(f"[{HAN}\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff]")
    _SPACE = re.compile(r"\s")

    def columns(self):
        return {self.p.key: "double"} if self.p.key else {}

    def apply(self, doc):
        text = doc.text
        total = len(text) - len(self._SPACE.findall(text))
        n = len((HAN_CHAR if self.p.chars == "han" else self._CJK).findall(text))
        ratio = n / total if total else 0.0
        if self.p.key:
            doc.meta[self.p.key] = ratio
        return f"cjk_ratio<{self.p.min_ratio:g}" if ratio < self.p.min_ratio else None


@register
class MeanLineLength(Step):
    """Keep pages whose mean line length (characters of the stripped non-empty lines) is at least
    ``min_mean`` (EvalWeb: ``min_line_len=10``, drops lists of short navigation / table cells).
    ``max_mean`` bounds it from above (off by default)."""

    name, kind = "mean_line_length_filter", "filter"

    class Params(StrictModel):
        min_mean: float = Field(10, ge=0)
        max_mean: float = float("inf")

    def apply(self, doc):
        lines = doc.lines
        if not lines:
            return "no_lines"
        mean = sum(map(len, lines)) / len(lines)
        if mean < self.p.min_mean:
            return f"mean_line_length<{self.p.min_mean:g}"
        return f"mean_line_length>{self.p.max_mean:g}" if mean > self.p.max_mean else None


def _char_ngram_hashes(text: str, n: int) -> np.ndarray:
    """64-bit polynomial hashes of every ``n``-character window of ``text`` (empty if shorter)."""
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    m = len(cps) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    mult = np.uint64(0x9E3779B97F4A7C15)
    h = cps[:m] * mult + np.uint64(1)
    for k in range(1, n):
        h = h * mult + cps[k:k + m]
    return h


def char_repetition_ratio(text: str, n: int = 10) -> float:
    """ROOTS' character repetition ratio: over the ``n``-character n-grams of the text, the
    occurrences of the ``floor(sqrt(#distinct))`` most frequent ones (at most the number of those
    occurring more than once) divided by all occurrences; 0 for a text shorter than ``n``."""
    h = _char_ngram_hashes(text, n)
    if not len(h):
        return 0.0
    counts = np.sort(np.unique(h, return_counts=True)[1])[::-1]
    k = min(int(np.sqrt(len(counts))), int((counts > 1).sum()))
    return float(counts[:k].sum()) / float(counts.sum())


@register
class CharRepetition(Step):
    """Drop pages whose ROOTS character repetition ratio (:func:`char_repetition_ratio`, ``n``-char
    n-grams, default 10) is above ``max_ratio`` (Data-Juicer's default for the same rule: 0.5).
    Catches "啊啊啊啊", keyword stuffing and pages made of one repeated block."""

    name, kind = "char_repetition_filter", "filter"

    class Params(StrictModel):
        n: int = Field(10, ge=2, le=64)
        max_ratio: float = Field(0.5, ge=0, le=1)

    def apply(self, doc):
        r = char_repetition_ratio(doc.text, self.p.n)
        return f"char_repetition>{self.p.max_ratio:g}" if r > self.p.max_ratio else None


_WS = re.compile(r"\s+")


@register
class CharNgramRepetition(Step):
    """Drop pages where more than ``max_share`` of the characters (whitespace removed, lower-cased)
    lie in an ``n``-character n-gram that occurs more than once: Gopher's duplicate n-gram rule over
    characters, with EvalWeb's n and limit (13-grams, 0.5). Exact (n-grams compared, not hashed)."""

    name, kind = "char_ngram_repetition_filter", "filter"

    class Params(StrictModel):
        n: int = Field(13, ge=5, le=64)
        max_share: float = Field(0.5, ge=0, le=1)

    def apply(self, doc):
        chars = list(_WS.sub("", doc.lower))
        if len(chars) < self.p.n:
            return None
        limits = ((self.p.n, self.p.max_share),)
        if K.rules is not None:
            hit = K.rules.ngram_repetition(chars, limits)
        else:
            hit = bool(_ngram_fractions(chars, dict(limits)))
        return f"dup_{self.p.n}char_ngram>{self.p.max_share:g}" if hit else None




@register
class ChinesePunctuation(Step):
    """Drop pages with a run of more than ``max_run`` Han characters without sentence punctuation or a
    line break (xubuvd: 64; long unpunctuated runs are keyword stuffing, tag clouds or garbled
    text), and, when ``min_punct_per_han`` is set, pages with fewer sentence marks per Han character."""

    name, kind = "zh_punctuation_filter", "filter"

    class Params(StrictModel):
        max_run: int | None = Field(64, ge=1)
        min_punct_per_han: float | None = Field(None, ge=0)

    def __init__(self, params):
        super().__init__(params)
        # only a segment longer than max_run characters can hold more than max_run Han characters
        n = (params.max_run or 0) + 1
        self._long = re.compile(rf"[^{re.escape(_SENTENCE_PUNCT)}\n]{{{n},}}")

    def apply(self, doc):
        text = doc.text
        if self.p.max_run is not None:
            for m in self._long.finditer(text):
                if len(HAN_CHAR.findall(m.group())) > self.p.max_run:
                    return f"unpunctuated_run>{self.p.max_run}"
        if self.p.min_punct_per_han is not None:
            n_han = len(HAN_CHAR.findall(text))
            n_p = sum(text.count(c) for c in _SENTENCE_PUNCT)
            if n_han and n_p / n_han < self.p.min_punct_per_han:
                return f"punct_per_han<{self.p.min_punct_per_han:g}"
        return None


@register
class SpecialCharRatio(Step):
    """Drop pages where symbols make up more than ``max_ratio`` of the non-whitespace characters:
    Unicode symbols (categories S*: math, currency, modifier symbols, emoji, box drawing), private-use
    characters and U+FFFD (the trace of a wrong charset). Punctuation, digits and letters of every
    script do not count (Data-Juicer's special-characters rule also counts ASCII punctuation and
    digits; its default limit is 0.25, the default here)."""

    name, kind = "special_char_ratio_filter", "filter"

    class Params(StrictModel):
        max_ratio: float = Field(0.25, ge=0, le=1)

    _SPECIAL = regex.compile(r"[\p{S}\p{Co}\ufffd]")

    def apply(self, doc):
        text = doc.text
        total = len(_WS.sub("", text))
        if not total:
            return "empty"
        r = len(self._SPECIAL.findall(text)) / total
        return f"special_chars>{self.p.max_ratio:g}" if r > self.p.max_ratio else None


@register
class ChineseGarble(Step):
    """Drop pages whose Han text jieba cannot segment into words: fewer than ``min_chars_per_word``
    Han characters per jieba word over the page's Han runs (the first ``sample_chars`` of them; xubuvd: 1.1; modern prose has about
    1.5-1.7, random or mis-decoded characters fall apart into single characters). Uses jieba
    whatever the pipeline's units; pages with fewer than ``min_han`` Han characters pass."""

    name, kind = "zh_garble_filter", "filter"

    class Params(StrictModel):
        min_chars_per_word: float = Field(1.1, ge=1)
        min_han: int = Field(50, ge=1)
        # segment the page's first Han runs up to this many characters (the rate is a property of the
        # page; jieba runs at under 1 M characters/s, the costliest rule by far); null: all of them
        sample_chars: int | None = Field(300, ge=1)

    _RUNS = re.compile(f"[{HAN}]+")

    def apply(self, doc):
        from udfs.steps.units import get_units

        runs = self._RUNS.findall(doc.text)
        if self.p.sample_chars is not None:
            taken, budget = [], self.p.sample_chars
            for r in runs:
                if budget <= 0:
                    break
                taken.append(r)
                budget -= len(r)
            runs = taken
        n_han = sum(map(len, runs))
        if n_han < self.p.min_han:
            return None
        seg = get_units("zh").segmenter()
        # the dictionary's segmentation only (HMM=False): the HMM joins unknown characters into
        # "words", which is what garbled text is made of
        n_words = sum(1 for w in seg.lcut("\n".join(runs), HMM=False) if w != "\n")
        ratio = n_han / n_words
        return f"chars_per_word<{self.p.min_chars_per_word:g}" if ratio < self.p.min_chars_per_word else None


# ------------------------------------------------------------------------------------ line modifier


@register
class BoilerplateLine(Step):
    """Remove lines of at most ``max_length`` characters (20) that contain a boilerplate phrase of
    ``banlist_from_fname`` (default ``banlists/zh_boilerplate.txt``: "点击", "扫码关注", "版权所有",
    "上一篇", "下一篇", "返回顶部" …, one a line) or of ``banlist``. With ``word_counter_enricher`` before
    it and ``word_removal_ratio_filter`` after it, a page that loses more than 5% of its characters
    (``units: zh``) this way is dropped: RefinedWeb's rule for its line modifiers. Longer lines
    containing a phrase, and (``keep_sentences``) short ones ending in 。！？, are text, not
    boilerplate, and stay: "如果点击「继续」，您将会看到一个对话框。" mentions 点击 in a sentence."""

    name, kind = "boilerplate_line_modifier", "modifier"

    class Params(StrictModel):
        banlist_from_fname: str | None = "banlists/zh_boilerplate.txt"
        banlist: list[str] = []
        max_length: int = Field(20, ge=1)
        # a line ending like a sentence (。！？) is text even when short and containing a phrase
        keep_sentences: bool = True
        key: str | None = "boilerplate_lines"  # number of lines removed (an int column)

    def __init__(self, params):
        super().__init__(params)
        phrases = list(params.banlist)
        if params.banlist_from_fname:
            phrases += _read_list(params.banlist_from_fname)
        if not phrases:
            raise ValueError("boilerplate_line_modifier: no phrases (banlist_from_fname / banlist)")
        self._re = re.compile("|".join(map(re.escape, sorted(set(phrases), key=len, reverse=True))))

    def columns(self):
        return {self.p.key: "int"} if self.p.key else {}

    def apply(self, doc):
        text, limit = doc.text, self.p.max_length
        if not self._re.search(text):
            if self.p.key:
                doc.meta[self.p.key] = 0
            return None
        kept, removed = [], 0
        for line in text.split("\n"):
            s = line.strip()
            if s and len(s) <= limit and not (self.p.keep_sentences and s.endswith(_SENTENCE_END)) \
                    and self._re.search(s):
                removed += 1
            else:
                kept.append(line)
        if self.p.key:
            doc.meta[self.p.key] = removed
        return _modified(doc, "\n".join(kept)) if removed else None
