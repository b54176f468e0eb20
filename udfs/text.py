"""Text units with DCLM's definitions: lines, paragraphs and words.

DCLM (``baselines/mappers/core_utils.py``) defines
* a **line** as a ``\\n``-separated segment, stripped, empty ones dropped (``split_paragraphs``);
* a **paragraph** the same with ``\\n\\n`` as separator;
* **words** in two ways: fastText's tokenizer (whitespace-separated tokens) for page length and
  word removal counts, and Unicode word segmentation (UAX #29, the ``uniseg`` package) for the
  Gopher repetition n-grams. With ``ignore_punctuation`` a word is kept when its first character is
  alphanumeric.

uniseg is pure Python and slow (it makes DCLM's mappers run at single-digit documents per second);
the ``regex`` module implements the same UAX #29 default word boundaries in C under its ``WORD``
flag, which is what :func:`uax29_words` uses. ``tests/udfs/test_text.py`` checks the two agree on
real documents.
"""

from __future__ import annotations

import regex

_WS_TOKEN = regex.compile(r"[^ \n\t\v\f\r\x00]+")  # fastText splits on these bytes
# Segments between UAX #29 word boundaries ((?w) turns on Unicode default word boundaries).
_UAX29_SPLIT = regex.compile(r"(?w)\b")


def lines(text: str) -> list[str]:
    """DCLM lines: split on ``\\n``, strip, drop empty."""
    return [s for p in text.split("\n") if (s := p.strip())]


def paragraphs(text: str) -> list[str]:
    """DCLM paragraphs: split on ``\\n\\n``, strip, drop empty."""
    return [s for p in text.split("\n\n") if (s := p.strip())]


def fasttext_words(text: str, ignore_punctuation: bool = True) -> list[str]:
    """Words as fastText tokenizes them (DCLM's default ``split_words`` model)."""
    toks = _WS_TOKEN.findall(text)
    if ignore_punctuation:
        return [t for t in toks if t[0].isalnum()]
    return toks


def uax29_words(text: str, ignore_punctuation: bool = True) -> list[str]:
    """Words by Unicode word segmentation (DCLM's ``split_words(model='uniseg')``)."""
    segs = [s for s in _UAX29_SPLIT.split(text) if s and not s.isspace()]
    if ignore_punctuation:
        return [s for s in segs if s[0].isalnum()]
    return segs
