"""Choosing the new pieces: the base, the candidates (given and trained), the reachability fixpoint.

:func:`expand` repeats, until a round drops nothing:

1. build the expanded tokenizer from the candidates still kept (a byte-level base refuses those no
   single merge makes: ``no_merge``);
2. drop every new piece that is not reachable alone (``unreachable``, see each base's module);
3. encode the training sample with this tokenizer and count, for every new piece, how often it is
   *formed*: produced as a token, or gone through on the way to a longer new piece that is produced
   (an intermediate of a merge chain: ``人工`` inside ``人工智能``; two bytes of a three-byte
   character), each produced piece adding its count to every new piece of its formation; drop every
   piece formed fewer than ``min_freq`` times (``rare``).

Dropping a piece changes how the rest encode (a longer piece built on it is no longer reachable, a
shorter one is produced more often), so the loop runs again; it ends because every round that goes on
drops at least one piece. A piece is kept only if, with the final tokenizer, it is reachable alone and
formed at least ``min_freq`` times on the sample.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lakesift.log import kv
from lakesift.vocab.bpe import HfBpeBase
from lakesift.vocab.common import GIVEN, Candidate, Dropped, VocabError
from lakesift.vocab.spm import SpmBase

# a folder's base: a SentencePiece model wins over its tokenizer.json (a LLaMA checkpoint holds both,
# and the .model is the one the .json was converted from)
BASE_FILES = ("tokenizer.model", "tokenizer.json")


def find_base(path: str) -> str:
    """The base's file: ``path`` itself, or in a folder ``tokenizer.model``, ``tokenizer.json``, else
    the only ``*.model`` / ``*tokenizer.json``."""
    p = Path(path)
    if p.is_file():
        return str(p)
    if not p.is_dir():
        raise VocabError(f"base {path}: no such file or folder")
    for name in BASE_FILES:
        if (p / name).is_file():
            return str(p / name)
    found = sorted(p.glob("*.model")) or sorted(p.glob("*tokenizer.json"))
    if len(found) != 1:
        raise VocabError(f"base {path}: a folder with no tokenizer.model or tokenizer.json"
                         + (f" (several candidates: {', '.join(f.name for f in found)})" if found else ""))
    return str(found[0])


def load_base(path: str, threads: int = 1) -> SpmBase | HfBpeBase:
    """A SentencePiece ``.model`` or a byte-level BPE ``tokenizer.json`` (by its first byte: ``{``)."""
    file = find_base(path)
    with open(file, "rb") as fh:
        head = fh.read(64).lstrip()
    return HfBpeBase(file) if head.startswith(b"{") else SpmBase(file, threads)


def read_given(path: str) -> list[tuple[str, float | None]]:
    """A list of pieces: JSONL lines ``{"piece": "你好", "freq": 12}`` (``freq`` optional) or plain
    text, one piece per line (the line as it is, without its line break; empty lines skipped). A
    piece is its text (``" the"`` with a space), or a SentencePiece piece with ``▁``."""
    p = Path(path)
    if not p.is_file():
        raise VocabError(f"--add {path}: no such file")
    lines = p.read_text(encoding="utf-8").splitlines()
    jsonl = p.suffix in (".jsonl", ".json") or next((x for x in lines if x.strip()), "").lstrip().startswith("{")
    out: list[tuple[str, float | None]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not jsonl:
            out.append((line, None))
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise VocabError(f"--add {path}:{n}: not JSON: {exc}") from None
        if not isinstance(row, dict) or not isinstance(row.get("piece"), str):
            raise VocabError(f"--add {path}:{n}: expected {{\"piece\": \"...\", \"freq\": N}}")
        freq = row.get("freq")
        if freq is not None and not isinstance(freq, (int, float)):
            raise VocabError(f"--add {path}:{n}: freq must be a number")
        out.append((row["piece"], freq))
    return out


def given_candidates(base, items: list[tuple[str, float | None]]) -> tuple[list[Candidate], list[Dropped]]:
    """Given pieces in the base's notation, shortest first (then by ``freq``, then as listed), without
    duplicates and base pieces."""
    out: list[Candidate] = []
    dropped: list[Dropped] = []
    seen: set[str] = set()
    for text, freq in items:
        if isinstance(base, HfBpeBase):
            piece, cut = base.to_piece(text)
            if piece is None:
                dropped.append(Dropped(text, text, "splits", GIVEN, f"pre-tokens: {cut}"))
                continue
        else:
            piece = base.to_piece(text)
        if not piece:
            continue
        if piece in seen:
            dropped.append(Dropped(piece, base.text(piece), "duplicate", GIVEN))
        elif piece in base.known:
            dropped.append(Dropped(piece, base.text(piece), "in_base", GIVEN))
        else:
            seen.add(piece)
            out.append(Candidate(piece, GIVEN, freq=freq))
    out.sort(key=lambda c: (len(c.piece), -(c.freq or 0)))
    return out, dropped


def select(base, trained: list[Candidate], given: list[Candidate],
           max_added: int | None) -> tuple[list[Candidate], list[Dropped]]:
    """The candidates in priority order: the first ``max_added`` trained ones, then the given ones
    (a given piece also trained is dropped as ``duplicate``; for a SentencePiece base a given piece
    with a character that is neither a base piece nor a candidate as ``missing_chars``)."""
    out = list(trained if max_added is None else trained[:max_added])
    have = {c.piece for c in out}
    dropped = []
    for c in given:
        missing = base.missing_chars(c.piece, have) if isinstance(base, SpmBase) else []
        if c.piece in have:
            dropped.append(Dropped(c.piece, base.text(c.piece), "duplicate", GIVEN, "also a trained candidate"))
        elif missing:
            dropped.append(Dropped(c.piece, base.text(c.piece), "missing_chars", GIVEN, "".join(missing)))
        else:
            out.append(c)
            have.add(c.piece)
    return out, dropped


@dataclass(frozen=True)
class Added:
    """A new piece of the expanded tokenizer: produced ``freq`` times as a token when the sample is
    encoded, ``formed`` times counting its uses inside longer new pieces."""

    id: int
    piece: str
    text: str
    freq: int
    formed: int
    origin: str


@dataclass
class Expansion:
    tokenizer: object  # SpmTokenizer | HfTokenizer
    added: list[Added]
    dropped: list[Dropped]
    rounds: list[dict] = field(default_factory=list)
    resplit: int = 0  # byte-level: trained candidates made from other parts than their trained merge


def expand(base, candidates: list[Candidate], sample: list[str], min_freq: int = 1,
           log: logging.Logger | None = None) -> Expansion:
    """The reachability fixpoint (module docstring) over ``candidates``, in priority order."""
    origin = {c.piece: c.origin for c in candidates}
    kept = list(candidates)
    dropped: list[Dropped] = []
    rounds: list[dict] = []
    while True:
        t0 = time.perf_counter()
        tok, refused = base.build(kept)
        unreachable = tok.unreachable()
        counts = tok.counts(sample)
        final = {p: int(counts[tok.id_of(p)]) for p in tok.pieces}
        formed = dict(final)
        for p, inside in tok.trees([p for p in tok.pieces if final[p] > 0]).items():
            for q, k in inside.items():
                formed[q] += final[p] * k
        drop = dict(refused)
        for p in tok.pieces:
            if p in unreachable:
                drop[p] = ("unreachable", unreachable[p])
            elif formed[p] < min_freq:
                drop[p] = ("rare", f"formed {formed[p]} times in the sample")
        reasons = Counter(r for r, _ in drop.values())
        rounds.append({"round": len(rounds) + 1, "candidates": len(kept), "kept": len(kept) - len(drop),
                       "dropped": dict(reasons), "seconds": round(time.perf_counter() - t0, 2)})
        if log:
            log.info(kv(stage="reachability", **{k: v for k, v in rounds[-1].items() if k != "dropped"},
                        **{f"dropped_{r}": n for r, n in sorted(reasons.items())}))
        if not drop:
            break
        dropped += [Dropped(p, base.text(p), r, origin[p], d) for p, (r, d) in drop.items()]
        kept = [c for c in kept if c.piece not in drop]
    added = [Added(tok.id_of(p), p, tok.text(p), final[p], formed[p], origin[p]) for p in tok.pieces]
    resplit = base.resplit(candidates, tok) if isinstance(base, HfBpeBase) else 0
    return Expansion(tok, added, dropped, rounds, resplit)


def old_ids_unchanged(base, tok) -> bool:
    """The first ``base.vocab_size`` id → piece mappings of the expanded tokenizer are the base's, in
    the base's own format and in the ``tokenizers`` JSON (added / special tokens included), and the
    new pieces have the ids after them."""
    from tokenizers import Tokenizer

    old, new = Tokenizer.from_str(base.base.hf_json()), Tokenizer.from_str(tok.hf_json())
    n = base.vocab_size
    same = all(old.id_to_token(i) == new.id_to_token(i) for i in range(n))
    if isinstance(base, SpmBase):
        same = same and all(a.piece == b.piece and a.score == b.score and a.type == b.type
                            for a, b in zip(base.proto.pieces, tok.proto.pieces[:n], strict=True))
    return same and all(new.id_to_token(tok.id_of(p)) == p for p in tok.pieces)
