"""Near-duplicate logic on one document at a time: normalisation, shingles, MinHash signatures, LSH
band keys, exact Jaccard, paragraph n-grams, the exact-dedup key, paragraph removal, and a union-find
over pairs. No Spark (``jobs/dedup/`` does the distributed parts).

MinHash: a shingle is ``ngram`` consecutive normalised words joined by one space. With
``hash: sha1`` (the default) its 32-bit value is the first four bytes of SHA-1 read little-endian,
and permutation ``i`` maps it to ``((a_i * h + b_i) mod 2**64) mod (2**61 - 1)`` masked to 32 bits,
with ``a``, ``b`` drawn from ``numpy.random.RandomState(seed)`` as datasketch draws them: the
signatures are bit-identical to ``datasketch.MinHash(num_perm, seed, scheme="legacy")`` (datasketch's
only scheme before 2.0; 2.0's default "affine32" is a different family) fed the same shingles.
``hash: crc32`` replaces SHA-1 by zlib's CRC-32 (faster, not datasketch-compatible).

A document with fewer than ``ngram`` words has one shingle, its whole word sequence (so two short
documents collide only when their words are identical); a document with no word has no signature
and is never a duplicate by MinHash.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from collections.abc import Hashable, Iterable, Sequence

import numpy as np

from lakesift.config import StrictModel
from udfs.decontam import WORD  # one definition of a word: runs of letters / digits

MERSENNE = np.uint64((1 << 61) - 1)
MAX_HASH = np.uint64((1 << 32) - 1)


class Normalization(StrictModel):
    lowercase: bool = True
    strip_punctuation: bool = True  # words = runs of letters / digits; else whitespace tokens


def normalize_words(text: str, norm: Normalization | None = None) -> list[str]:
    norm = norm or Normalization()
    t = text.lower() if norm.lowercase else text
    return WORD.findall(t) if norm.strip_punctuation else t.split()


def normalized_text(text: str, norm: Normalization | None = None) -> str:
    """For exact dedup: the normalised words joined by single spaces."""
    return " ".join(normalize_words(text or "", norm))


def exact_key(text: str | None, norm: Normalization | None = None) -> str | None:
    """The key of exact dedup: SHA-1 (hex) of :func:`normalized_text`; None for a text with no word
    (never a duplicate)."""
    nt = normalized_text(text or "", norm)
    return hashlib.sha1(nt.encode("utf-8")).hexdigest() if nt else None


def shingles(words: Sequence[str], n: int) -> list[bytes]:
    if not words:
        return []
    if len(words) < n:
        return [" ".join(words).encode("utf-8")]
    return list({" ".join(words[i:i + n]).encode("utf-8") for i in range(len(words) - n + 1)})


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


def signature(hashes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """uint32 MinHash signature of a set of 32-bit shingle hashes (None for an empty set)."""
    if not len(hashes):
        return None
    with np.errstate(over="ignore"):
        phv = ((np.outer(hashes, a) + b) % MERSENNE) & MAX_HASH
    return phv.min(axis=0).astype(np.uint32)


def text_signature(text: str | None, n: int, a: np.ndarray, b: np.ndarray, norm: Normalization | None = None,
                   kind: str = "sha1") -> np.ndarray | None:
    """The MinHash signature of a text's ``n``-word shingles (None for a text with no word)."""
    return signature(hash32(shingles(normalize_words(text or "", norm), n), kind), a, b)


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
    """The set of ``n``-word shingles of a text's normalised words."""
    return set(shingles(normalize_words(text or "", norm), n))


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
    """Per paragraph (a non-empty line, as DCLM's BFF splits pages), the uint64 hashes of its word
    n-grams; a paragraph shorter than ``n`` words is one n-gram of all its words."""
    from udfs.decontam import ngram_hashes

    out = []
    for line in text.split("\n"):
        ws = normalize_words(line, norm)
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
