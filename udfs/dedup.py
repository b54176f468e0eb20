"""Near-duplicate logic on one document at a time: normalisation, shingles, MinHash signatures, LSH
band keys, exact Jaccard, paragraph n-grams, the exact-dedup key, paragraph removal, and a union-find
over pairs. No Spark (``jobs/dedup/`` does the distributed parts).

Units (``Normalization.units``): ``words`` (the default) are runs of letters / digits of the
lower-cased text (``udfs.decontam.WORD``), or whitespace-separated tokens without
``strip_punctuation``. ``chars`` are the single characters of the same text with whitespace removed
(with ``strip_punctuation``: only letters and digits, ``\\w`` minus ``_``; punctuation and symbols are
dropped), for Chinese, Japanese, Thai and other scripts written without spaces, where a "word" would be
a whole clause up to the next punctuation mark. In ``chars`` mode a Latin word is cut into characters
too (mixed Chinese / English text gets character shingles throughout).

MinHash: a shingle is ``ngram`` consecutive units, joined by one space (words) or nothing (chars). With
``hash: sha1`` (the default) its 32-bit value is the first four bytes of SHA-1 read little-endian,
and permutation ``i`` maps it to ``((a_i * h + b_i) mod 2**64) mod (2**61 - 1)`` masked to 32 bits,
with ``a``, ``b`` drawn from ``numpy.random.RandomState(seed)`` as datasketch draws them: the
signatures are bit-identical to ``datasketch.MinHash(num_perm, seed, scheme="legacy")`` (datasketch's
only scheme before 2.0; 2.0's default "affine32" is a different family) fed the same shingles.
``hash: crc32`` replaces SHA-1 by zlib's CRC-32 (faster, not datasketch-compatible).

A document with fewer than ``ngram`` units has one shingle, its whole unit sequence (so two short
documents collide only when their units are identical); a document with no unit has no signature
and is never a duplicate by MinHash. Exact dedup hashes the units joined the same way (a space between
words, nothing between characters), paragraph dedup hashes n-grams of the same units.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from collections.abc import Hashable, Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import model_serializer

from lakesift.config import StrictModel
from udfs.decontam import WORD  # one definition of a word: runs of letters / digits

MERSENNE = np.uint64((1 << 61) - 1)
MAX_HASH = np.uint64((1 << 32) - 1)


class Normalization(StrictModel):
    lowercase: bool = True
    strip_punctuation: bool = True  # only letters / digits; else whitespace tokens (words) / non-space chars
    units: Literal["words", "chars"] = "words"  # what a shingle / n-gram counts (see the module docstring)

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """``units: words`` (the default) is left out of dumps, so the configs written before the
        option existed keep their fingerprint and run ids (``jobs.common.runs``)."""
        data = handler(self)
        if self.units == "words":
            data.pop("units", None)
        return data


def normalize_words(text: str, norm: Normalization | None = None) -> list[str]:
    """The normalised words of ``text`` (always words, whatever ``norm.units`` says)."""
    norm = norm or Normalization()
    t = text.lower() if norm.lowercase else text
    return WORD.findall(t) if norm.strip_punctuation else t.split()


def normalized_chars(text: str, norm: Normalization | None = None) -> str:
    """The ``chars`` units of ``text`` as one string: lower-cased, whitespace removed and, with
    ``strip_punctuation``, only letters / digits (the characters of :func:`normalize_words`' words, in
    order, without separators)."""
    norm = norm or Normalization()
    t = text.lower() if norm.lowercase else text
    return "".join(WORD.findall(t) if norm.strip_punctuation else t.split())


def normalize_units(text: str, norm: Normalization | None = None) -> list[str]:
    """The units of ``text`` that shingles and n-grams count: words, or single characters."""
    norm = norm or Normalization()
    return list(normalized_chars(text, norm)) if norm.units == "chars" else normalize_words(text, norm)


def unit_separator(norm: Normalization | None = None) -> str:
    """What joins units into a shingle or an exact key: one space between words, nothing between
    characters."""
    return "" if (norm or Normalization()).units == "chars" else " "


def normalized_text(text: str, norm: Normalization | None = None) -> str:
    """For exact dedup: the normalised words joined by single spaces, or (``units: chars``) the
    normalised characters with no separator."""
    norm = norm or Normalization()
    if norm.units == "chars":
        return normalized_chars(text or "", norm)
    return " ".join(normalize_words(text or "", norm))


def exact_key(text: str | None, norm: Normalization | None = None) -> str | None:
    """The key of exact dedup: SHA-1 (hex) of :func:`normalized_text`; None for a text with no unit
    (never a duplicate)."""
    nt = normalized_text(text or "", norm)
    return hashlib.sha1(nt.encode("utf-8")).hexdigest() if nt else None


def shingles(units: Sequence[str], n: int, sep: str = " ") -> list[bytes]:
    """The distinct ``n``-unit shingles of ``units`` joined by ``sep``, UTF-8 encoded (one shingle of
    all the units when there are fewer than ``n``; none for no unit)."""
    if not units:
        return []
    if len(units) < n:
        return [sep.join(units).encode("utf-8")]
    return list({sep.join(units[i:i + n]).encode("utf-8") for i in range(len(units) - n + 1)})


def hash32(items: Sequence[bytes], kind: str = "sha1") -> np.ndarray:
    if kind == "sha1":
        return np.fromiter((struct.unpack("<I", hashlib.sha1(s).digest()[:4])[0] for s in items),
                           dtype=np.uint64, count=len(items))
    return np.fromiter((zlib.crc32(s) for s in items), dtype=np.uint64, count=len(items))


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's permutation parameters for (num_perm, seed)."""
    gen = np.random.RandomState(seed)
    ab = np.array([(gen.randint(1, int(MERSENNE), dtype=np.uint64), gen.randint(0, int(MERSENNE), dtype=np.uint64))
                   for _ in range(num_perm)], dtype=np.uint64)  # drawn in pairs, as datasketch does
    return ab[:, 0].copy(), ab[:, 1].copy()


SIGNATURE_CHUNK = 4096  # shingles per block of the (shingles x permutations) product: 4 MiB at 128


def signature(hashes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """uint32 MinHash signature of a set of 32-bit shingle hashes (None for an empty set); computed in
    blocks of :data:`SIGNATURE_CHUNK` shingles, so a long page (character shingles: one per
    character) does not need a (shingles x permutations) matrix at once."""
    if not len(hashes):
        return None
    out = None
    with np.errstate(over="ignore"):
        for i in range(0, len(hashes), SIGNATURE_CHUNK):
            phv = (((np.outer(hashes[i:i + SIGNATURE_CHUNK], a) + b) % MERSENNE) & MAX_HASH).min(axis=0)
            out = phv if out is None else np.minimum(out, phv)
    return out.astype(np.uint32)


def text_shingles(text: str | None, n: int, norm: Normalization | None = None) -> list[bytes]:
    """The distinct ``n``-unit shingles of a text (``norm.units``: words or characters), UTF-8."""
    return shingles(normalize_units(text or "", norm), n, unit_separator(norm))


def text_signature(text: str | None, n: int, a: np.ndarray, b: np.ndarray, norm: Normalization | None = None,
                   kind: str = "sha1") -> np.ndarray | None:
    """The MinHash signature of a text's ``n``-unit shingles (None for a text with no unit)."""
    return signature(hash32(text_shingles(text, n, norm), kind), a, b)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> list[int]:
    """One signed 64-bit key per band (BLAKE2b of the band's values), as Spark longs."""
    out = []
    for i in range(bands):
        d = hashlib.blake2b(sig[i * rows:(i + 1) * rows].tobytes(), digest_size=8).digest()
        out.append(struct.unpack("<q", d)[0])
    return out


def _integrate(f, a: float, b: float, n: int = 200) -> float:
    xs = np.linspace(a, b, n + 1)
    ys = np.array([f(x) for x in xs])
    return float(np.sum((ys[1:] + ys[:-1]) * (xs[1:] - xs[:-1]) / 2))


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5
                  ) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimising the weighted false-positive mass
    (Jaccard below the threshold becoming candidates) plus false-negative mass (above it, missed),
    the criterion datasketch uses."""
    best, best_err = (1, 1), math.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = _integrate(lambda s, b=b, r=r: 1 - (1 - s ** r) ** b, 0.0, threshold)
            fn = _integrate(lambda s, b=b, r=r: 1 - (1 - (1 - s ** r) ** b), threshold, 1.0)
            err = fp_weight * fp + fn_weight * fn
            if err < best_err:
                best, best_err = (b, r), err
    return best


def jaccard(x: set, y: set) -> float:
    if not x and not y:
        return 1.0
    return len(x & y) / len(x | y)


def shingle_set(text: str | None, n: int, norm: Normalization | None = None) -> set[bytes]:
    """The set of ``n``-unit shingles of a text's normalised units (words or characters)."""
    return set(text_shingles(text, n, norm))


def text_jaccard(x: str | None, y: str | None, n: int, norm: Normalization | None = None) -> float:
    """Exact Jaccard similarity of two texts' shingle sets (MinHash's ``verify``)."""
    return jaccard(shingle_set(x, n, norm), shingle_set(y, n, norm))


def components(pairs: Iterable[tuple[Hashable, Hashable]]) -> dict:
    """Connected components of the graph whose edges are ``pairs`` (union-find): every node that
    occurs in a pair -> the smallest node of its component."""
    parent: dict = {}

    def find(x):
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for a, b in pairs:
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def paragraph_ngrams(text: str, n: int, norm: Normalization | None = None) -> list[np.ndarray]:
    """Per line (a paragraph, as DCLM's BFF splits pages; an empty line has no n-gram), the uint64
    hashes of its unit n-grams (``norm.units``: words or characters); a paragraph shorter than ``n``
    units is one n-gram of all its units."""
    from udfs.decontam import ngram_hashes

    out = []
    for line in text.split("\n"):
        ws = normalize_units(line, norm)
        if not ws:
            out.append(np.zeros(0, dtype=np.uint64))
        elif len(ws) < n:
            out.append(ngram_hashes(ws, len(ws)))
        else:
            out.append(ngram_hashes(ws, n))
    return out


def paragraph_ngram_sets(text: str | None, n: int, norm: Normalization | None = None) -> list[set[int]]:
    """:func:`paragraph_ngrams` as one set per paragraph of signed 64-bit values (Spark longs)."""
    return [set(hs.view("int64").tolist()) for hs in paragraph_ngrams(text or "", n, norm)]


def drop_lines(text: str | None, drop: Iterable[int] | None) -> str | None:
    """``text`` without its lines (paragraphs) at the 0-based indexes ``drop``; unchanged when
    ``drop`` is empty."""
    if not drop:
        return text
    gone = set(drop)
    return "\n".join(line for i, line in enumerate((text or "").split("\n")) if i not in gone)
