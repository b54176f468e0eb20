"""Vocabulary expansion (lakesift/vocab) with real SentencePiece and tokenizers, no Spark.

SentencePiece: a LLaMA-style base (BPE, byte fallback, identity normalisation, split digits) trained in
the test on tinyshakespeare, expanded with pieces trained on the UDHR in simplified Chinese (nltk's
udhr2). Byte-level BPE: the shared GPT-NeoX tokenizer, expanded on a slice of the shared Chinese text.
"""

from __future__ import annotations

import gzip
import itertools
import json
import zipfile

import pytest

from lakesift.vocab import (
    Candidate,
    VocabError,
    expand,
    given_candidates,
    load_base,
    old_ids_unchanged,
    padded_size,
    read_given,
    select,
)
from lakesift.vocab import report as rep
from lakesift.vocab.bpe import bpe, byte_alphabet, token_bytes
from lakesift.vocab.common import escape
from lakesift.vocab.spm import SPACE, SpmBase
from lakesift.vocab.spm import bpe as spm_bpe

# 84 tokens with the English base (byte fallback), one piece per 2-3 characters after a 600-piece add
UDHR_SENTENCE = "人人有权离开任何国家,包括其本国在内,并有权返回他的国家。"
DEAD_WORDS = ["人工智能", "机器学习", "自然语言处理", "数据清洗"]


def train_spm(tmp_path, text_file: str, name: str, **options) -> str:
    import sentencepiece as spm

    prefix = str(tmp_path / name)
    options = {"model_type": "bpe", "vocab_size": 1000, **options}
    spm.SentencePieceTrainer.train(input=text_file, model_prefix=prefix, byte_fallback=True, minloglevel=2,
                                   num_threads=1, **options)
    return prefix + ".model"


@pytest.fixture(scope="module")
def udhr(shared):
    with zipfile.ZipFile(shared / "data" / "text" / "nltk-corpora" / "udhr2.zip") as z:
        return z.read("udhr2/cmn_hans.txt").decode("utf-8"), z.read("udhr2/eng.txt").decode("utf-8")


@pytest.fixture(scope="module")
def zh_lines(udhr):
    return [line.strip() for line in udhr[0].splitlines() if line.strip()]


@pytest.fixture(scope="module")
def english(shared, udhr):
    speeches = (shared / "data" / "text" / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8").split("\n\n")
    return [s for s in speeches if s.strip()] + [line for line in udhr[1].splitlines() if line.strip()]


@pytest.fixture(scope="module")
def llama_base(shared, tmp_path_factory):
    """LLaMA-style: identity normalisation, whitespace kept, digits split."""
    path = train_spm(tmp_path_factory.mktemp("spm"), str(shared / "data/text/tinyshakespeare/input.txt"), "llama",
                     normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True,
                     allow_whitespace_only_pieces=True)
    return load_base(path)


@pytest.fixture(scope="module")
def nfkc_base(shared, tmp_path_factory):
    """SentencePiece's defaults: nmt_nfkc (full-width punctuation folded), extra whitespace removed."""
    return load_base(train_spm(tmp_path_factory.mktemp("spm"), str(shared / "data/text/tinyshakespeare/input.txt"),
                               "nfkc"))


def spm_expand(base, zh_lines, max_added=600):
    trained = base.train_candidates(["\n".join(zh_lines)], vocab_size=1400, character_coverage=0.9995,
                                    max_line_chars=4096)
    candidates, dropped = select(base, trained, [], max_added)
    assert not dropped
    return expand(base, candidates, zh_lines, min_freq=1)


@pytest.fixture(scope="module")
def llama_zh(llama_base, zh_lines):
    return spm_expand(llama_base, zh_lines)


@pytest.fixture(scope="module")
def nfkc_zh(nfkc_base, zh_lines):
    return spm_expand(nfkc_base, zh_lines, max_added=None)


# ------------------------------------------------------------------------------- SentencePiece

def test_spm_chinese_compression_improves_strongly(llama_base, llama_zh):
    assert isinstance(llama_base, SpmBase) and llama_base.vocab_size == 1000
    assert len(llama_zh.added) == 600  # every trained candidate of the cap is reachable on the UDHR
    before = llama_base.base.encode([UDHR_SENTENCE])[0]
    after = llama_zh.tokenizer.encode([UDHR_SENTENCE])[0]
    assert len(before) >= 80 and len(after) <= 30, (len(before), len(after))
    assert llama_zh.tokenizer.processor.decode(after) == UDHR_SENTENCE


def test_spm_english_is_unchanged_where_no_new_piece_applies(llama_base, llama_zh, english):
    before, after = llama_base.base.encode(english), llama_zh.tokenizer.encode(english)
    changed = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if a != b]
    assert all(len(a) <= len(b) for b, a in zip(before, after, strict=True))
    # the only Latin piece trained on the Chinese UDHR is "II" (from "217A(III)"); nothing else changes
    latin = [a.piece for a in llama_zh.added if any(c.isascii() and c.isalpha() for c in a.piece)]
    assert latin == ["II"]
    assert len(changed) < len(english) // 20 and all("II" in english[i] for i in changed)


def test_spm_old_ids_and_scores(llama_base, llama_zh):
    tok = llama_zh.tokenizer
    assert old_ids_unchanged(llama_base, tok)
    n = llama_base.vocab_size
    assert [tok.processor.id_to_piece(i) for i in range(n)] == llama_base.id_to_piece()
    assert [a.id for a in llama_zh.added] == list(range(n, tok.vocab_size))
    scores = [tok.processor.get_score(i) for i in range(n, tok.vocab_size)]
    assert max(scores) < llama_base.min_score and scores == sorted(scores, reverse=True)


def test_spm_no_text_gets_more_tokens(llama_base, llama_zh, english, zh_lines):
    stats = rep.compression({"en": english, "zh": zh_lines}, llama_base.base, llama_zh.tokenizer)
    assert stats["en"]["docs_with_more_tokens"] == stats["zh"]["docs_with_more_tokens"] == 0
    assert rep.english_not_worse(stats) is True
    assert stats["zh"]["tokens_per_char_after"] < 0.5 * stats["zh"]["tokens_per_char_before"]


@pytest.mark.parametrize("which", ["llama", "nfkc"])
def test_spm_slow_and_fast_encodings_are_identical(which, llama_base, llama_zh, nfkc_base, nfkc_zh, shared,
                                                   english):
    base, expansion = (llama_base, llama_zh) if which == "llama" else (nfkc_base, nfkc_zh)
    path = shared / "data" / "zh" / "text" / "libreoffice-help-zh-cn.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:  # real Chinese: full-width punctuation, Latin, digits
        docs = [json.loads(line)["text"] for line in itertools.islice(fh, 300)]
    texts = docs + english[:300] + ["  double  spaces  ", "tab\there", "", " ", "１２３　全角"]
    for tok in (base.base, expansion.tokenizer):
        p = rep.parity(tok, tok.hf_json(), texts)
        assert p["mismatched_docs"] == 0, p["examples"]


def test_spm_conversion_agrees_with_transformers(llama_base, llama_zh, tmp_path, english, zh_lines):
    from tokenizers import Tokenizer
    from transformers import LlamaTokenizerFast

    path = tmp_path / "tokenizer.model"
    path.write_bytes(llama_zh.tokenizer.serialized())
    theirs = LlamaTokenizerFast(vocab_file=str(path), from_slow=True, legacy=True, add_prefix_space=True,
                                add_bos_token=False, add_eos_token=False)._tokenizer
    ours = Tokenizer.from_str(llama_zh.tokenizer.hf_json())
    texts = english[:300] + zh_lines
    assert ([e.ids for e in ours.encode_batch(texts, add_special_tokens=False)]
            == [e.ids for e in theirs.encode_batch(texts, add_special_tokens=False)])


def test_spm_every_kept_piece_is_reachable_and_formed(llama_zh, nfkc_zh, zh_lines):
    for expansion in (llama_zh, nfkc_zh):
        tok = expansion.tokenizer
        assert tok.unreachable() == {}
        alone = tok.isolated.encode([a.text for a in expansion.added], out_type=str)
        assert alone == [[a.piece] for a in expansion.added]
        assert all(a.formed >= 1 and a.formed >= a.freq for a in expansion.added)
        counts = tok.counts(zh_lines)
        assert all(counts[a.id] == a.freq for a in expansion.added)
    # the intermediates: pieces never produced as a token but formed inside longer ones
    assert any(a.freq == 0 for a in nfkc_zh.added)


def test_spm_simulation_matches_sentencepiece(nfkc_zh, zh_lines):
    tok = nfkc_zh.tokenizer
    scores, user = tok._symbols
    known = [line for line in zh_lines if all(c in scores for c in tok.isolated.normalize(line))]
    assert len(known) > 20
    for line in known:
        final, _ = spm_bpe(tok.isolated.normalize(line), scores, user)
        assert final == tok.isolated.encode(line, out_type=str)


def test_spm_dead_whole_words_are_dropped(llama_base, zh_lines):
    """Colossal-style: whole words (and their characters) appended without the pieces between them."""
    sample = zh_lines + ["人工智能和机器学习是自然语言处理与数据清洗的基础。"] * 3
    chars = sorted({c for w in DEAD_WORDS for c in w})
    given, dropped = given_candidates(llama_base, [(w, None) for w in DEAD_WORDS + chars])
    assert not dropped and [c.piece for c in given][:len(chars)] == chars  # shortest first
    candidates, refused = select(llama_base, [], given, None)
    assert not refused
    ex = expand(llama_base, candidates, sample)
    reasons = {d.piece: d.reason for d in ex.dropped}
    assert all(reasons[w] == "unreachable" for w in DEAD_WORDS), reasons
    assert {a.piece for a in ex.added} == set(chars)
    assert ex.tokenizer.encode(["人工智能"]) == [[ex.tokenizer.id_of(p) for p in [SPACE, "人", "工", "智", "能"]]]
    # with the intermediate pieces the word is built
    with_parts, _ = given_candidates(llama_base, [(w, None) for w in ["人工", "智能", "人工智能", *chars]])
    ex2 = expand(llama_base, select(llama_base, [], with_parts, None)[0], sample)
    assert "人工智能" in {a.piece for a in ex2.added}
    # words without their characters cannot be built by the fast tokenizer either
    words_only, _ = given_candidates(llama_base, [(w, None) for w in DEAD_WORDS])
    _, refused = select(llama_base, [], words_only, None)
    assert {d.reason for d in refused} == {"missing_chars"}


def test_spm_rejects_a_unigram_base(shared, tmp_path):
    small = tmp_path / "small.txt"
    small.write_text((shared / "data/text/tinyshakespeare/input.txt").read_text(encoding="utf-8")[:100_000])
    path = train_spm(tmp_path, str(small), "uni", model_type="unigram", vocab_size=400)
    with pytest.raises(VocabError, match="UNIGRAM"):
        load_base(path)


def test_spm_too_small_candidate_model_is_a_clear_error(llama_base, zh_lines):
    with pytest.raises(VocabError, match="candidates.vocab_size 500 is too small"):
        llama_base.train_candidates(zh_lines, vocab_size=500, character_coverage=0.9995, max_line_chars=4096)


# ------------------------------------------------------------------------------- byte-level BPE

@pytest.fixture(scope="module")
def neox(shared):
    return load_base(str(shared / "data" / "tokenizers" / "gpt-neox-20b"))


@pytest.fixture(scope="module")
def zh_docs(shared):
    docs = []
    for name in ("libreoffice-help-zh-cn", "fortunes-zh", "manpages-zh"):
        with gzip.open(shared / "data" / "zh" / "text" / f"{name}.jsonl.gz", "rt", encoding="utf-8") as fh:
            docs += [json.loads(line)["text"] for line in itertools.islice(fh, 250)]
    return docs[1::5], [d for i, d in enumerate(docs) if i % 5 != 1]  # held-out, sample


@pytest.fixture(scope="module")
def en_heldout(shared):
    lines = (shared / "data" / "text" / "wikitext2" / "valid.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip()][:1500]


@pytest.fixture(scope="module")
def neox_zh(neox, zh_docs):
    _, sample = zh_docs
    trained = neox.train_candidates(sample, vocab_size=6000, min_frequency=2)
    candidates, _ = select(neox, trained, [], None)
    return expand(neox, candidates, sample, min_freq=1)


def test_neox_old_ids_unchanged(neox, neox_zh):
    tok = neox_zh.tokenizer
    assert neox.vocab_size == 50281  # 50,254 BPE tokens and 27 added tokens after them (whitespace runs, chat)
    assert old_ids_unchanged(neox, tok)
    assert [tok.tokenizer.id_to_token(i) for i in (0, 1, 50254, 50280)] == \
        ["<|endoftext|>", "<|padding|>", " " * 24, "RWKV"]
    assert [a.id for a in neox_zh.added] == list(range(50281, tok.vocab_size))
    assert len(neox_zh.added) > 2000
    assert tok.tokenizer.get_vocab_size(with_added_tokens=True) == tok.vocab_size
    text = "<|im_start|>assistant\n" + " " * 30 + "好<|endoftext|>"
    assert neox.base.encode([text])[0][:2] == tok.encode([text])[0][:2] == [50277, 50279]


def test_neox_english_not_worse_and_chinese_better(neox, neox_zh, zh_docs, en_heldout):
    heldout, _ = zh_docs
    stats = rep.compression({"en": en_heldout, "zh": heldout}, neox.base, neox_zh.tokenizer)
    assert stats["en"]["tokens_after"] <= stats["en"]["tokens_before"] and rep.english_not_worse(stats)
    assert stats["en"]["docs_with_more_tokens"] == stats["zh"]["docs_with_more_tokens"] == 0
    assert stats["zh"]["tokens_per_char_after"] < 0.8 * stats["zh"]["tokens_per_char_before"]


def test_neox_every_added_token_is_reachable(neox_zh, zh_docs):
    tok = neox_zh.tokenizer
    assert tok.unreachable() == {}
    model = tok.tokenizer.model
    whole = 0
    for a in neox_zh.added:
        assert [t.id for t in model.tokenize(a.piece)] == [a.id]
        raw = token_bytes(a.piece)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        whole += 1
        assert tok.tokenizer.encode(text, add_special_tokens=False).ids == [a.id], a.piece
    assert whole > 0.9 * len(neox_zh.added)
    assert all(a.formed >= 1 for a in neox_zh.added)
    # merges are appended after the base's, each joining two existing tokens
    merges = json.loads(tok.hf_json())["model"]["merges"]
    assert merges[-len(neox_zh.added):] == [" ".join(tok.parts[a.piece]) for a in neox_zh.added]


def test_neox_tokenizer_works_for_the_dataset_job(neox_zh, tmp_path, zh_docs):
    from tokenizers import Tokenizer

    from udfs.tokenizing import resolve_tokenizer, tokenizer_info

    (tmp_path / "tokenizer.json").write_text(neox_zh.tokenizer.hf_json(), encoding="utf-8")
    text = resolve_tokenizer(str(tmp_path))
    ids = Tokenizer.from_str(text).encode(zh_docs[0][0], add_special_tokens=False).ids
    assert max(ids) >= 50281
    assert tokenizer_info(text, "<|endoftext|>")["vocab_size"] == neox_zh.tokenizer.vocab_size


def test_neox_given_pieces(neox):
    items = [("人工智能", None), ("人工", None), ("智能", None), ("hello world", None), (" the", None),
             ("人工", None), ("机器学习", None)]
    given, dropped = given_candidates(neox, items)
    assert {(d.text, d.reason) for d in dropped} == {("hello world", "splits"), (" the", "in_base"), ("人工", "duplicate")}
    sample = ["人工智能的发展。"] * 3 + ["机器学习"]
    ex = expand(neox, select(neox, [], given, None)[0], sample)
    # 智 is two tokens in NeoX (part of its bytes, then the rest), so 智能 is three: no single merge
    assert {a.text for a in ex.added} == {"人工"}
    assert {(d.text, d.reason) for d in ex.dropped} == {("智能", "no_merge"), ("人工智能", "no_merge"),
                                                        ("机器学习", "no_merge")}
    given, _ = given_candidates(neox, [*items, ("智", None)])
    ex = expand(neox, select(neox, [], given, None)[0], sample)
    assert {a.text for a in ex.added} == {"人工", "智", "智能", "人工智能"}
    assert ex.tokenizer.encode(["人工智能"]) == [[ex.tokenizer.id_of(token_for("人工智能"))]]
    assert {(d.text, d.reason) for d in ex.dropped} == {("机器学习", "no_merge")}  # no 机器 / 学习


def token_for(text: str) -> str:
    to_char, _ = byte_alphabet()
    return "".join(to_char[b] for b in text.encode("utf-8"))


def test_neox_python_bpe_matches_tokenizers(neox, zh_docs):
    model = neox.tokenizer.model
    words = [w for d in zh_docs[0][:20] for w, _ in neox.tokenizer.pre_tokenizer.pre_tokenize_str(d)][:3000]
    assert len(words) > 500
    for w in words:
        assert bpe(w, neox.ranks) == [t.value for t in model.tokenize(w)]


def test_neox_rejects_other_tokenizer_json(tmp_path):
    wordpiece = {"model": {"type": "WordPiece", "vocab": {"a": 0}}, "pre_tokenizer": None}
    (tmp_path / "tokenizer.json").write_text(json.dumps(wordpiece), encoding="utf-8")
    with pytest.raises(VocabError, match="only byte-level BPE"):
        load_base(str(tmp_path))
    with pytest.raises(VocabError, match="no such file"):
        load_base(str(tmp_path / "missing"))


# ------------------------------------------------------------------------------- small parts

def test_read_given_formats(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"piece": "你好", "freq": 3}\n\n{"piece": " the"}\n', encoding="utf-8")
    (tmp_path / "b.txt").write_text("你好\n the\n\n", encoding="utf-8")
    assert read_given(str(tmp_path / "a.jsonl")) == [("你好", 3), (" the", None)]
    assert read_given(str(tmp_path / "b.txt")) == [("你好", None), (" the", None)]
    (tmp_path / "c.jsonl").write_text('{"piece": "x"}\n{"text": "y"}\n', encoding="utf-8")
    with pytest.raises(VocabError, match=r"c.jsonl:2: expected"):
        read_given(str(tmp_path / "c.jsonl"))


def test_given_order_is_shortest_first_then_frequency(llama_base):
    given, _ = given_candidates(llama_base, [("人工智能", None), ("好", 1), ("你好", 5), ("人", 9), ("大家", 7)])
    assert [c.piece for c in given] == ["人", "好", "大家", "你好", "人工智能"]
    assert all(isinstance(c, Candidate) and c.origin == "given" for c in given)


def test_padding_and_escaping():
    assert padded_size(50281, 64) == 50304 and padded_size(50304, 64) == 50304 and padded_size(7, 1) == 7
    raw = b"a\tb\n\\\xe4\xba"
    assert escape(raw.decode("utf-8", errors="surrogateescape")) == "a\\tb\\n\\\\\\xe4\\xba"
