"""What both kinds of base share: candidates, kept and dropped pieces, the error type, TSV escaping.

A *piece* is always written in the base's own notation: SentencePiece pieces with ``▁`` (U+2581) for a
space, byte-level BPE tokens in the GPT-2 byte-to-unicode alphabet (``Ġ`` for a space byte, ``äºº`` for
the three bytes of 人). Its *text* is what it stands for (`` 人``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class VocabError(ValueError):
    """A base, a candidate list or a request this library cannot work with, phrased for the user."""


TRAINED, GIVEN = "trained", "given"


@dataclass(frozen=True)
class Candidate:
    """A piece proposed for the vocabulary: ``origin`` ``trained`` (from the candidate model trained
    on the sample) or ``given`` (``--add``); ``pair`` is the trained merge (byte-level BPE only),
    ``freq`` the frequency a given list states (it only orders the list)."""

    piece: str
    origin: str
    pair: tuple[str, str] | None = None
    freq: float | None = None


@dataclass(frozen=True)
class Dropped:
    """A candidate that did not make it into the vocabulary and why (``REASONS``)."""

    piece: str
    text: str
    reason: str
    origin: str
    detail: str = ""


# Why a candidate is left out. A trained candidate that is already a base piece is not a candidate at
# all (it is not listed); a given one is listed as ``in_base``.
REASONS = {
    "in_base": "a given piece that is already in the base vocabulary",
    "duplicate": "a given piece listed twice (or given and trained): the first is used",
    "splits": "byte-level BPE: the base's normaliser / pre-tokenizer cuts its text into several pre-tokens, "
              "and no token crosses a pre-token boundary",
    "missing_chars": "SentencePiece: a character of the piece is neither a base piece nor added, so the fast "
                     "tokenizer could not build it (it would fall back to bytes)",
    "no_merge": "byte-level BPE: under the base and the earlier added merges its text is more than two tokens, "
                "so no single merge produces it",
    "unreachable": "encoding the piece's own text with the expanded tokenizer does not give the piece",
    "rare": "formed fewer than min_freq times when the training sample is encoded with the final tokenizer",
}


def padded_size(vocab_size: int, multiple: int) -> int:
    """``vocab_size`` rounded up to a multiple of ``multiple`` (the model's embedding rows)."""
    return int(math.ceil(vocab_size / multiple) * multiple) if multiple > 1 else vocab_size


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape(text: str) -> str:
    """One TSV field: backslash, tab, newline and carriage return written as ``\\\\``, ``\\t``, ``\\n``,
    ``\\r``; bytes that are not UTF-8 (a byte-level token can hold part of a character) as ``\\xNN``
    (they arrive as the surrogates of ``errors="surrogateescape"``)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def write_tsv(path: str, header: list[str], rows) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\t".join(header) + "\n")
        for row in rows:
            fh.write("\t".join(escape(str(v)) if isinstance(v, str) else str(v) for v in row) + "\n")
