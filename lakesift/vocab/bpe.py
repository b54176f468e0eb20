"""Byte-level BPE bases (a Hugging Face ``tokenizer.json``: GPT-2, GPT-NeoX, Llama-3 style).

**How it encodes.** The normaliser and the pre-tokenizer cut the text into pre-tokens (GPT-2's regex:
a run of letters with its leading space, digits, punctuation...), each pre-token's UTF-8 bytes are
written in the byte-to-unicode alphabet (:func:`byte_alphabet`), and BPE applies the *merges* in rank
order: the adjacent pair with the lowest rank (then the leftmost) is joined, until no pair is a merge
(:func:`bpe` does the same in Python). A token exists only as the result of a merge, so adding a token
means adding a merge.

**Merge rule.** New merges are appended after the base's merges and new tokens get ids after the
largest existing id (added / special tokens included), so the first ``vocab_size`` id → token mappings
stay as they were. Every base merge outranks every new one: on any pre-token the expanded tokenizer
makes the base's merges in the base's order until none is left (the base's result), then new ones,
each removing a token; normaliser, pre-tokenizer and added tokens are the base's, so no text gets more
tokens than before.

**Candidates.** :meth:`HfBpeBase.train_candidates` trains a ``tokenizers`` BPE with the base's own
normaliser and pre-tokenizer on the sample; each trained merge whose result the base lacks is a
candidate, in the trained merge order. :meth:`HfBpeBase.build` turns candidates into merges one by one:
the candidate's bytes are encoded with the base and the merges added so far; if that gives exactly two
tokens ``(a, b)``, the merge ``(a, b)`` is appended and the candidate is the new token. That is the
trained merge itself unless the base's merges cut the bytes differently (then the two parts the
tokenizer really produces are joined: ``resplit``). A candidate that comes out as more than two tokens
cannot be made by one merge (``no_merge``), and neither can a given piece whose text the pre-tokenizer
cuts (``splits``). Given pieces are taken shortest first, so a word's parts come before it.

**Reachability.** A new token is reachable when the BPE model applied to its bytes gives that one id
and, when its bytes are whole UTF-8 characters, when encoding its text gives that one id. (A token
that holds part of a character, an intermediate of a merge chain, has no text of its own.)
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from lakesift.vocab.common import TRAINED, Candidate, VocabError


@lru_cache(maxsize=1)
def byte_alphabet() -> tuple[dict[int, str], dict[str, int]]:
    """GPT-2's reversible byte ↔ character map: printable Latin-1 bytes stand for themselves, the other
    68 bytes (controls, space, soft hyphen...) for the characters from U+0100 on, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    to_char, extra = {}, 0
    for b in range(256):
        if b in printable:
            to_char[b] = chr(b)
        else:
            to_char[b] = chr(256 + extra)
            extra += 1
    return to_char, {c: b for b, c in to_char.items()}


def token_bytes(token: str) -> bytes | None:
    """The bytes a byte-level token stands for; None when it is not written in the byte alphabet."""
    back = byte_alphabet()[1]
    try:
        return bytes(back[c] for c in token)
    except KeyError:
        return None


def _has_byte_level(pre) -> bool:
    if not isinstance(pre, dict):
        return False
    if pre.get("type") == "ByteLevel":
        return True
    return any(_has_byte_level(p) for p in pre.get("pretokenizers", []))


def bpe(word: str, ranks: dict[tuple[str, str], int], vocab: dict[str, int] | None = None) -> list[str]:
    """Byte-level BPE of one pre-token (already in the byte alphabet): the lowest-ranked adjacent merge,
    then the leftmost, until none applies. With ``vocab`` (``ignore_merges`` models) a pre-token that is
    a token is taken whole."""
    if vocab is not None and word in vocab:
        return [word]
    syms = list(word)
    while len(syms) > 1:
        best = None
        for i in range(len(syms) - 1):
            r = ranks.get((syms[i], syms[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        syms[i:i + 2] = [syms[i] + syms[i + 1]]
    return syms


class HfTokenizer:
    """A byte-level BPE ``tokenizer.json`` (the base, or the base and new merges) and what the expansion
    asks of it. ``pieces`` are the new tokens in id order, from id ``n_old``; ``parts`` their merges."""

    def __init__(self, json_text: str, n_old: int, pieces: list[str], parts: dict[str, tuple[str, str]]):
        from tokenizers import Tokenizer

        self.json_text, self.n_old, self.pieces, self.parts = json_text, n_old, pieces, parts
        self.tokenizer = Tokenizer.from_str(json_text)
        self.vocab_size = n_old + len(pieces)

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)] if texts else []

    def counts(self, texts: list[str]) -> np.ndarray:
        ids = [np.asarray(x, dtype=np.int64) for x in self.encode(texts)]
        flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        return np.bincount(flat, minlength=self.vocab_size)

    def id_of(self, piece: str) -> int:
        return self.n_old + self._index[piece]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.pieces)}

    def text(self, piece: str) -> str:
        """The token's text; bytes that are not whole UTF-8 characters as surrogates (``surrogateescape``)."""
        return (token_bytes(piece) or b"").decode("utf-8", errors="surrogateescape")

    def unreachable(self) -> dict[str, str]:
        out: dict[str, str] = {}
        model = self.tokenizer.model
        whole: list[tuple[str, str]] = []
        for p in self.pieces:
            ids = [t.id for t in model.tokenize(p)]
            if ids != [self.id_of(p)]:
                out[p] = "the model splits its bytes into " + " ".join(t.value for t in model.tokenize(p))
                continue
            try:
                whole.append((p, token_bytes(p).decode("utf-8")))
            except UnicodeDecodeError:
                pass  # part of a character: no text of its own
        encs = self.tokenizer.encode_batch([t for _, t in whole], add_special_tokens=False) if whole else []
        for (p, _), enc in zip(whole, encs, strict=True):
            if enc.ids != [self.id_of(p)]:
                out[p] = "its text encodes as " + " ".join(enc.tokens)
        return out

    def trees(self, pieces: list[str]) -> dict[str, Counter]:
        """For each new token, the new tokens its merge chain goes through, each as often as it occurs."""
        memo: dict[str, Counter] = {}

        def inside(p: str) -> Counter:
            if p not in memo:
                c: Counter = Counter()
                for part in self.parts.get(p, ()):
                    if part in self.parts:
                        c[part] += 1
                        c.update(inside(part))
                memo[p] = c
            return memo[p]

        return {p: inside(p) for p in pieces}

    def hf_json(self) -> str:
        return self.json_text


class HfBpeBase:
    """A byte-level BPE ``tokenizer.json`` to expand."""

    kind = "hf-bpe"

    def __init__(self, path: str):
        from tokenizers import Tokenizer

        self.path = path
        self.json_text = Path(path).read_text(encoding="utf-8")
        try:
            self.data = json.loads(self.json_text)
        except json.JSONDecodeError as exc:
            raise VocabError(f"{path}: not a tokenizer.json ({exc})") from None
        model = self.data.get("model") if isinstance(self.data, dict) else None
        if not isinstance(model, dict) or model.get("type") != "BPE":
            kind = model.get("type") if isinstance(model, dict) else None
            raise VocabError(f"{path}: a {kind or 'non-BPE'} tokenizer.json; only byte-level BPE (or a SentencePiece "
                             "BPE .model) can be expanded")
        if not _has_byte_level(self.data.get("pre_tokenizer")):
            raise VocabError(f"{path}: a BPE tokenizer.json without a ByteLevel pre-tokenizer; only byte-level BPE "
                             "tokenizer.json bases are supported (give a SentencePiece base as its .model)")
        if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            raise VocabError(f"{path}: BPE with a subword prefix / suffix is not supported")
        try:
            self.tokenizer = Tokenizer.from_str(self.json_text)
        except Exception as exc:  # the Rust side's error, whatever its type
            raise VocabError(f"{path}: tokenizers cannot load it: {exc}") from None
        self.vocab: dict[str, int] = model["vocab"]
        self.known = self.vocab
        raw = model.get("merges", [])
        self.string_merges = bool(raw) and isinstance(raw[0], str)
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in raw]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.ignore_merges = bool(model.get("ignore_merges"))
        ids = [*self.vocab.values(), *(a["id"] for a in self.data.get("added_tokens", []))]
        self.vocab_size = max(ids) + 1  # new ids follow the largest existing one
        self.base = HfTokenizer(self.json_text, self.vocab_size, [], {})

    def id_to_piece(self) -> list[str | None]:
        return [self.tokenizer.id_to_token(i) for i in range(self.vocab_size)]

    def text(self, piece: str) -> str:
        return self.base.text(piece)

    def to_piece(self, text: str) -> tuple[str | None, str]:
        """A given piece's text as one byte-level pre-token; (None, the pre-tokens) when it is cut."""
        t = self.tokenizer
        normalized = t.normalizer.normalize_str(text) if t.normalizer is not None else text
        pre = [s for s, _ in t.pre_tokenizer.pre_tokenize_str(normalized)]
        return (pre[0], "") if len(pre) == 1 else (None, " ".join(pre))

    def train_candidates(self, texts: list[str], vocab_size: int, min_frequency: int) -> list[Candidate]:
        """Results of the merges of a BPE trained on ``texts`` with the base's normaliser and
        pre-tokenizer that the base lacks, in merge order (with the trained pair)."""
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        trained = Tokenizer(models.BPE())
        trained.normalizer = self.tokenizer.normalizer
        trained.pre_tokenizer = self.tokenizer.pre_tokenizer
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
        trained.train_from_iterator(texts, trainer=trainer, length=len(texts))
        out, seen = [], set()
        for m in json.loads(trained.to_str())["model"]["merges"]:
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            if a + b not in self.vocab and a + b not in seen:
                seen.add(a + b)
                out.append(Candidate(a + b, TRAINED, pair=(a, b)))
        return out

    def build(self, candidates: list[Candidate]) -> tuple[HfTokenizer, dict[str, tuple[str, str]]]:
        """The base with one merge per candidate that two current tokens make (see the module docstring);
        the candidates refused, with (reason, detail)."""
        ranks = dict(self.ranks)
        # tokenizers numbers an added token that is not in the model's vocabulary from the vocabulary's
        # size, whatever id the file gives it, so new model tokens would shift it: it goes into the
        # vocabulary at its own id (no merge makes it, so BPE never produces it)
        vocab = {**{a["content"]: a["id"] for a in self.data.get("added_tokens", [])}, **self.vocab}
        refused: dict[str, tuple[str, str]] = {}
        pieces: list[str] = []
        parts: dict[str, tuple[str, str]] = {}
        for c in candidates:
            split = bpe(c.piece, ranks, vocab if self.ignore_merges else None)
            if len(split) != 2:
                refused[c.piece] = ("no_merge", f"{len(split)} tokens: " + " ".join(split[:8]))
                continue
            ranks[(split[0], split[1])] = len(ranks)
            vocab[c.piece] = self.vocab_size + len(pieces)
            pieces.append(c.piece)
            parts[c.piece] = (split[0], split[1])
        new_merges = [f"{a} {b}" if self.string_merges else [a, b] for a, b in (parts[p] for p in pieces)]
        model = dict(self.data["model"], vocab=vocab, merges=[*self.data["model"].get("merges", []), *new_merges])
        text = json.dumps(dict(self.data, model=model), ensure_ascii=False)
        return HfTokenizer(text, self.vocab_size, pieces, parts), refused

    def resplit(self, candidates: list[Candidate], tok: HfTokenizer) -> int:
        """How many trained candidates were made from other parts than their trained merge."""
        return sum(1 for c in candidates if c.pair and c.piece in tok.parts and tok.parts[c.piece] != c.pair)

