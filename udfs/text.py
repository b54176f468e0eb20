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

import re

import regex

# fastText splits on these bytes (the standard library's engine is faster than `regex` for this one)
_WS_TOKEN_RE = re.compile(r"[^ \n\t\v\f\r\x00]+")
# Segments between UAX #29 word boundaries ((?w) turns on Unicode default word boundaries).
_UAX29_SPLIT = regex.compile(r"(?w)\b")


# Exactly the characters str.split() splits on, and whitespace-separated tokens without a letter
# (\p{L} is the union of the categories str.isalpha() accepts: Lu, Ll, Lt, Lm, Lo).
_PY_WS = regex.escape("".join(chr(c) for c in range(0x110000) if chr(c).isspace()))
NON_ALPHA_WORD = regex.compile(rf"(?<![^{_PY_WS}])[^{_PY_WS}\p{{L}}]+(?![^{_PY_WS}])")


# Gopher's English stop words (Rae et al. 2021, A.1)
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})


def lines(text: str) -> list[str]:
    """DCLM lines: split on ``\\n``, strip, drop empty."""
    return [s for p in text.split("\n") if (s := p.strip())]


def paragraphs(text: str) -> list[str]:
    """DCLM paragraphs: split on ``\\n\\n``, strip, drop empty."""
    return [s for p in text.split("\n\n") if (s := p.strip())]


def fasttext_word_count(text: str, ignore_punctuation: bool = True) -> int:
    """``len(fasttext_words(text, ignore_punctuation))`` without building the words."""
    toks = _WS_TOKEN_RE.findall(text)
    if ignore_punctuation:
        return sum(1 for t in toks if t[0].isalnum())
    return len(toks)


def fasttext_words(text: str, ignore_punctuation: bool = True) -> list[str]:
    """Words as fastText tokenizes them (DCLM's default ``split_words`` model)."""
    toks = _WS_TOKEN_RE.findall(text)
    if ignore_punctuation:
        return [t for t in toks if t[0].isalnum()]
    return toks


# A fast path for the common case, texts made only of ASCII, Latin-1 letters and punctuation / symbols
# whose UAX #29 Word_Break value is Other. For such text the word rules reduce to: letters, digits and
# "_" join (WB5, WB8-10, WB13a/b); a MidLetter / MidNumLet / Single_Quote character (: . ' \u2018 \u2019)
# joins two letters (WB6/7); a MidNum / MidNumLet / Single_Quote character (, ; . ' \u2018 \u2019) joins
# two digits (WB11/12); everything else breaks. Words starting with "_" are punctuation-initial.
# tests/udfs/test_text.py checks this against the general path (fuzzed) and against uniseg.
_LATIN_LETTERS = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff"
_OTHER_SAFE = ("\u00a0\u00a1\u00a3\u00a7\u00a9\u00ab\u00ae\u00b0\u00b6\u00bb\u00bf\u00d7\u00f7"
               "\u2013\u2014\u201a\u201c\u201d\u201e\u2020\u2022\u2026\u2032\u2033\u20ac\u2122"
               "\u2190-\u2193")
_FAST_SAFE = re.compile(rf"[\x00-\x7f{_LATIN_LETTERS}{_OTHER_SAFE}\u2018\u2019]*\Z")
_FAST_WORD = re.compile(
    rf"[{_LATIN_LETTERS}0-9_]+(?:(?:(?<=[{_LATIN_LETTERS}])[:.'\u2018\u2019](?=[{_LATIN_LETTERS}])"
    rf"|(?<=[0-9])[.,;'\u2018\u2019](?=[0-9]))[{_LATIN_LETTERS}0-9_]+)*")


def uax29_words(text: str, ignore_punctuation: bool = True) -> list[str]:
    """Words by Unicode word segmentation (DCLM's ``split_words(model='uniseg')``)."""
    if ignore_punctuation and (text.isascii() or _FAST_SAFE.match(text)):
        return [w for w in _FAST_WORD.findall(text) if w[0] != "_"]
    return uax29_words_general(text, ignore_punctuation)


def uax29_words_general(text: str, ignore_punctuation: bool = True) -> list[str]:
    """:func:`uax29_words` for any text, through the ``regex`` module's UAX #29 boundaries."""
    segs = []
    for s in _UAX29_SPLIT.split(text):
        if not s or s.isspace():
            continue
        # `regex` keeps a leading apostrophe on the word after a space ("'understand"); UAX #29
        # (and uniseg) break before the letter. Split it off to agree with DCLM's words.
        if len(s) > 1 and s[0] in "'\u2019" and s[1].isalnum():
            segs.extend((s[0], s[1:]))
        else:
            segs.append(s)
    if ignore_punctuation:
        return [s for s in segs if s[0].isalnum()]
    return segs


def trie_regex(words: list[str]) -> str:
    """A regex matching exactly the given literal strings, as a character trie.

    Equivalent to the alternation of the strings longest first (greedy optional suffixes try the
    longer word first and backtrack to shorter ones), but Python's engine walks one branch per
    character instead of trying every alternative: ~1,600 TLDs match in microseconds.
    """
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        end = "" in node
        alts = [regex.escape(ch) + build(node[ch]) for ch in sorted(k for k in node if k)]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if end:
            return f"(?:{body})?" if len(alts) == 1 and len(body) > 1 else body + "?"
        return body

    return build(trie)
