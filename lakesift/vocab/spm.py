"""SentencePiece BPE bases (a LLaMA-style ``tokenizer.model``): candidates, merge, checks, fast conversion.

**How SentencePiece's BPE encodes** (``bpe_model.cc``; :func:`bpe` follows it step by step): the normalised
text is split into characters (user-defined symbols whole and frozen); every adjacent pair of symbols
whose concatenation is a piece is queued with that piece's score; the best pair (highest score, then
the leftmost) is merged, its new neighbours queued, until no pair is a piece. Symbols that are not
pieces fall back to their UTF-8 bytes (``<0xE4>``...). So a piece's *score is its merge priority*, and
a piece can only be built from two symbols that are themselves built first.

**Merge rule.** New pieces are appended after the last id with scores below the base's lowest score,
in their own order (``min_score - 1 - i``). Every base merge therefore outranks every new one: on any
text the expanded model makes the base's merges, in the base's order, until none is left (the base's
result), and only then new ones; each merge removes a token, and a character the base knew only as
bytes becomes one token, so no text gets more tokens than before. (Colossal-LLaMA-2 and
Chinese-LLaMA give new pieces score 0, above every base merge; that can change how English is cut.)

**Candidates.** :meth:`SpmBase.train_candidates` trains a SentencePiece BPE on the sample with the
base's normalisation and piece-shape options (``split_digits`` and the like) plus ``byte_fallback``, and
takes its pieces that the base lacks in the trained model's order (its merges by score, then its
characters); a character is moved up to just before the first piece that contains it, so any prefix of
the list has every character its pieces need (:func:`with_characters`).

**Reachability.** A piece is *reachable alone* when the model with no dummy prefix and whitespace
kept as it is (:attr:`SpmTokenizer.isolated`) encodes the piece's text as exactly that piece: the
text as it occurs inside a longer run. (With the dummy prefix that is ``encode(text)`` giving
``[piece]`` or ``['▁', piece]``, unless a ``▁``-piece merges across the prefix.) A piece formed
anywhere in a text is formed the same way alone (merges inside its span only see its span), so this is
necessary for ever being produced.

**Fast tokenizer.** :func:`to_hf` writes the ``tokenizers`` JSON of a model: BPE with every split
``(a, b)`` of a piece into two pieces as a merge, ranked by the piece's score, ``byte_fallback`` as the
model has it, and a normaliser that does what SentencePiece's does (its precompiled character map,
extra whitespace removed, spaces to ``▁``, the dummy prefix). Control and unknown pieces are in the
vocabulary but not "added tokens", so a literal ``</s>`` in a text stays text, as in SentencePiece.
"""

from __future__ import annotations

import base64
import heapq
import io
import json
import re
from collections import Counter
from functools import cached_property
from pathlib import Path

import numpy as np

from lakesift.vocab.common import TRAINED, Candidate, VocabError

SPACE = "\u2581"
# ModelProto.SentencePiece.Type
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
BPE_MODEL = 2
BUILTIN_RULES = {"nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity"}
# trainer options that decide what a piece may look like: the candidate model takes the base's values
SHAPE_OPTIONS = ("split_digits", "split_by_unicode_script", "split_by_number", "split_by_whitespace",
                 "allow_whitespace_only_pieces", "max_sentencepiece_length")


def _model_pb2():
    from sentencepiece import sentencepiece_model_pb2

    return sentencepiece_model_pb2


def parse_model(data: bytes, where: str):
    """The ``ModelProto`` of a serialised model; :class:`VocabError` when it is not one."""
    from google.protobuf.message import DecodeError

    proto = _model_pb2().ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError as exc:
        raise VocabError(f"{where}: not a SentencePiece model ({exc})") from None
    if not proto.pieces:
        raise VocabError(f"{where}: not a SentencePiece model (no pieces)")
    return proto


def piece_text(piece: str) -> str:
    return piece.replace(SPACE, " ")


def bpe(text: str, scores: dict[str, float], user: list[str]) -> tuple[list[str], list[str]]:
    """SentencePiece's BPE on an already normalised ``text``: (the final symbols, every symbol the
    encoding held: the initial characters and each merge's result, in order)."""
    syms: list[str] = []
    frozen: list[bool] = []
    i = 0
    while i < len(text):
        match = next((u for u in user if text.startswith(u, i)), None)
        syms.append(match or text[i])
        frozen.append(match is not None)
        i += len(match) if match else 1
    n = len(syms)
    prev, nxt = list(range(-1, n - 1)), list(range(1, n + 1))
    if n:
        nxt[-1] = -1
    seen = list(syms)
    heap: list[tuple[float, int, int, int]] = []

    def push(left: int, right: int) -> None:
        if left < 0 or right < 0 or frozen[left] or frozen[right]:
            return
        joined = syms[left] + syms[right]
        if joined in scores:  # highest score first, then the leftmost, as SentencePiece's agenda
            heapq.heappush(heap, (-scores[joined], left, right, len(joined)))

    for k in range(1, n):
        push(k - 1, k)
    while heap:
        _, left, right, size = heapq.heappop(heap)
        if not syms[left] or not syms[right] or len(syms[left]) + len(syms[right]) != size:
            continue  # a stale entry: one side has changed since it was queued
        syms[left] += syms[right]
        syms[right] = ""
        nxt[left] = nxt[right]
        if nxt[right] >= 0:
            prev[nxt[right]] = left
        seen.append(syms[left])
        push(prev[left], left)
        push(left, nxt[left])
    return [s for s in syms if s], seen


class SpmTokenizer:
    """A SentencePiece model (the base, or the base and new pieces) and what the expansion asks of it.
    ``pieces`` are the new pieces in id order, from id ``n_old``."""

    def __init__(self, proto, n_old: int, threads: int):
        self.proto, self.n_old, self.threads = proto, n_old, threads
        self.pieces = [p.piece for p in proto.pieces[n_old:]]
        self.vocab_size = len(proto.pieces)

    def serialized(self) -> bytes:
        return self.proto.SerializeToString()

    @cached_property
    def processor(self):
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_proto=self.serialized())

    @cached_property
    def isolated(self):
        """The same model with no dummy prefix and whitespace kept: text encoded as inside a run."""
        import sentencepiece as spm

        proto = _model_pb2().ModelProto()
        proto.CopyFrom(self.proto)
        proto.normalizer_spec.add_dummy_prefix = False
        proto.normalizer_spec.remove_extra_whitespaces = False
        return spm.SentencePieceProcessor(model_proto=proto.SerializeToString())

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.processor.encode(list(texts), num_threads=self.threads) if texts else []

    def counts(self, texts: list[str]) -> np.ndarray:
        """How often each id is produced when ``texts`` are encoded."""
        ids = [np.asarray(x, dtype=np.int64) for x in self.encode(texts)]
        flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        return np.bincount(flat, minlength=self.vocab_size)

    def id_of(self, piece: str) -> int:
        return self.processor.piece_to_id(piece)

    def text(self, piece: str) -> str:
        return piece_text(piece)

    def unreachable(self) -> dict[str, str]:
        """New pieces whose own text, encoded alone (:attr:`isolated`), is not that piece."""
        got = self.isolated.encode([piece_text(p) for p in self.pieces], out_type=str, num_threads=self.threads)
        return {p: "encodes as " + " ".join(g) for p, g in zip(self.pieces, got, strict=True) if g != [p]}

    @cached_property
    def _symbols(self) -> tuple[dict[str, float], list[str]]:
        scores = {p.piece: p.score for p in self.proto.pieces if p.type in (NORMAL, USER_DEFINED)}
        user = sorted((p.piece for p in self.proto.pieces if p.type == USER_DEFINED), key=len, reverse=True)
        return scores, user

    def trees(self, pieces: list[str]) -> dict[str, Counter]:
        """For each piece, the new pieces its formation goes through (merge results and the characters it
        starts from, each as often as it occurs), by :func:`bpe`; checked against SentencePiece."""
        scores, user = self._symbols
        new = set(self.pieces)
        out = {}
        for p in pieces:
            final, seen = bpe(p, scores, user)
            if final != [p]:
                raise VocabError(f"the BPE simulation of this base does not match SentencePiece on {p!r} "
                                 f"({' '.join(final)}); unsupported model features (unused pieces?)")
            inside = Counter(s for s in seen if s in new)
            inside[p] -= 1
            out[p] = +inside
        return out

    def hf_json(self) -> str:
        return to_hf(self.proto)


class SpmBase:
    """A SentencePiece BPE ``tokenizer.model`` to expand."""

    kind = "sentencepiece"

    def __init__(self, path: str, threads: int = 1):
        self.path, self.threads = path, threads
        self.data = Path(path).read_bytes()
        self.proto = parse_model(self.data, path)
        ts = self.proto.trainer_spec
        if ts.model_type != BPE_MODEL:
            kind = _model_pb2().TrainerSpec.ModelType.Name(ts.model_type)
            raise VocabError(f"{path}: a SentencePiece {kind} model; only BPE models (LLaMA-style) can be expanded")
        if ts.treat_whitespace_as_suffix:
            raise VocabError(f"{path}: treat_whitespace_as_suffix models are not supported")
        self.vocab_size = len(self.proto.pieces)
        self.known = {p.piece for p in self.proto.pieces}
        self.min_score = min(p.score for p in self.proto.pieces)
        self.base = SpmTokenizer(self.proto, self.vocab_size, threads)

    def id_to_piece(self) -> list[str]:
        return [p.piece for p in self.proto.pieces]

    def text(self, piece: str) -> str:
        return piece_text(piece)

    def to_piece(self, text: str) -> str:
        """A given piece's text in SentencePiece notation (normalised as the base does, ``▁`` for spaces)."""
        return self.base.isolated.normalize(text)

    def train_candidates(self, texts: list[str], vocab_size: int, character_coverage: float,
                         max_line_chars: int) -> list[Candidate]:
        """Pieces of a SentencePiece BPE trained on ``texts`` (cut into lines of at most
        ``max_line_chars``) that the base lacks, in the trained model's order, characters moved up to
        their first use."""
        import sentencepiece as spm

        ns, ts = self.proto.normalizer_spec, self.proto.trainer_spec
        lines = [chunk for t in texts for line in t.splitlines() if line.strip()
                 for chunk in _chunks(line, max_line_chars)]
        rule = ns.name
        if rule not in BUILTIN_RULES:  # a custom rule: normalise with the base itself, train on the result
            lines = [piece_text(self.base.isolated.normalize(x)) for x in lines]
            rule = "identity"
        out = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=out, model_type="bpe", vocab_size=vocab_size,
                character_coverage=character_coverage, byte_fallback=True, normalization_rule_name=rule,
                add_dummy_prefix=ns.add_dummy_prefix, remove_extra_whitespaces=ns.remove_extra_whitespaces,
                hard_vocab_limit=False, input_sentence_size=0, max_sentence_length=4 * max_line_chars + 16,
                num_threads=self.threads, minloglevel=2, **{k: getattr(ts, k) for k in SHAPE_OPTIONS})
        except RuntimeError as exc:
            need = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(exc))
            if need:
                raise VocabError(f"candidates.vocab_size {vocab_size} is too small: at character_coverage "
                                 f"{character_coverage} the sample needs {need.group(1)} pieces (its characters and "
                                 "the model's meta pieces); raise candidates.vocab_size or lower "
                                 "candidates.character_coverage") from None
            raise
        trained = parse_model(out.getvalue(), "the candidate model")
        pieces = [p.piece for p in trained.pieces if p.type == NORMAL and p.piece not in self.known]
        return with_characters([Candidate(p, TRAINED) for p in pieces])

    def missing_chars(self, piece: str, have: set[str]) -> list[str]:
        return [c for c in dict.fromkeys(piece) if c not in self.known and c not in have] if len(piece) > 1 else []

    def build(self, candidates: list[Candidate]) -> tuple[SpmTokenizer, dict[str, tuple[str, str]]]:
        """The base with ``candidates`` appended (ids from the base's size, scores below its minimum in
        this order); nothing is refused here (second item, for the byte-level base's interface)."""
        proto = _model_pb2().ModelProto()
        proto.CopyFrom(self.proto)
        for i, c in enumerate(candidates):
            proto.pieces.add(piece=c.piece, score=self.min_score - 1 - i, type=NORMAL)
        return SpmTokenizer(proto, self.vocab_size, self.threads), {}


def with_characters(candidates: list[Candidate]) -> list[Candidate]:
    """``candidates`` with each single-character candidate moved to just before the first candidate
    that contains it, so that any prefix of the list holds every character its pieces need."""
    chars = {c.piece: c for c in candidates if len(c.piece) == 1}
    out, placed = [], set()
    for c in candidates:
        for ch in c.piece if len(c.piece) > 1 else ():
            if ch in chars and ch not in placed:
                out.append(chars[ch])
                placed.add(ch)
        if c.piece not in placed:
            out.append(c)
            placed.add(c.piece)
    return out


def _chunks(line: str, size: int):
    for i in range(0, len(line), size):
        yield line[i:i + size]


def to_hf(proto) -> str:
    """The ``tokenizers`` JSON (``tokenizer.json``) equivalent to a SentencePiece BPE model."""
    ns, ts = proto.normalizer_spec, proto.trainer_spec
    pieces = proto.pieces
    vocab = {p.piece: i for i, p in enumerate(pieces)}
    normal = {p.piece for p in pieces if p.type == NORMAL}
    ranked = []
    for i, p in enumerate(pieces):
        if p.type != NORMAL or len(p.piece) < 2:
            continue
        s = p.piece
        for k in range(1, len(s)):
            a, b = s[:k], s[k:]
            if a in normal and b in normal:
                ranked.append((-p.score, i, vocab[a], vocab[b], a, b))
    ranked.sort(key=lambda m: m[:4])
    norm: list[dict] = []
    if ns.precompiled_charsmap:
        norm.append({"type": "Precompiled",
                     "precompiled_charsmap": base64.b64encode(ns.precompiled_charsmap).decode("ascii")})
    if ns.remove_extra_whitespaces:
        norm += [{"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
                 {"type": "Replace", "pattern": {"Regex": r"\A | \z"}, "content": ""}]
    if ns.escape_whitespaces:
        norm.append({"type": "Replace", "pattern": {"String": " "}, "content": SPACE})
    if ns.add_dummy_prefix:
        norm.append({"type": "Prepend", "prepend": SPACE})
    decoders = [{"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}]
    if ns.add_dummy_prefix:
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    unk = pieces[ts.unk_id].piece if 0 <= ts.unk_id < len(pieces) else None
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": p.piece, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": False}
                         for i, p in enumerate(pieces) if p.type == USER_DEFINED],
        "normalizer": {"type": "Sequence", "normalizers": norm} if norm else None,
        "pre_tokenizer": None, "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {"type": "BPE", "dropout": None, "unk_token": unk, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": bool(ts.byte_fallback),
                  "ignore_merges": False, "vocab": vocab, "merges": [[m[4], m[5]] for m in ranked]},
    }
    return json.dumps(tok, ensure_ascii=False)
