"""The compiled kernels (lakesift_native/_rules.c, _lid.c) against the Python definitions they replace.

Each kernel must give exactly what the Python code gives: on fuzzed strings built to hit the edges
(every kind of whitespace, case-folding oddities, joiners between letters and digits, repeated
n-grams around each threshold) and on real pages; and the whole pipeline must make the same decisions
and produce the same text with and without them.
"""

from __future__ import annotations

import os
import random
import re
import sys

import pytest

from tests.conftest import REPO
from udfs import kernels as K
from udfs import text as T
from udfs.steps import Doc, GopherRepetition, _ngram_fractions

if os.environ.get("LAKESIFT_PURE_PYTHON", "0") not in ("", "0"):
    pytest.skip("LAKESIFT_PURE_PYTHON is set: the kernels are off", allow_module_level=True)

_rules = K.rules

WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()] + ["\x00"]
POOL = (["the", "The", "THE", "of", "Of", "and", "that", "have", "wITh", "be", "to", "tO", "them", "an",
         "12", "3.5", "x", "\u212a", "\u0130", "\u0131", "\u017f", "caf\u00e9", "\u00c9T\u00c9", "na\u00efve", "\u00b2",
         "\u00bd", "--", "...", "#", "\u2026", "_", "_x", "a_b", "it's", "don\u2019t", "e.g.", "1,000", "3;4", "x:y",
         "\u00b7", "\u4e2d\u6587", "\U0001f642", "\u200d", "\ufe0f", "\u00ad", "\u0301", "\u2014", "\u00a0word"]
        + WHITESPACE)


def random_text(rng: random.Random, pool=POOL, n=(0, 60)) -> str:
    return "".join(rng.choice(pool) + rng.choice(["", " ", " ", "\n", rng.choice(WHITESPACE)])
                   for _ in range(rng.randint(*n)))


def python_word_stats(text: str) -> tuple[int, ...]:
    words = text.split()
    return (T.fasttext_word_count(text, False), T.fasttext_word_count(text, True), len(words),
            sum(map(len, words)), len(T.NON_ALPHA_WORD.findall(text)),
            sum(map(T.STOP_WORDS.__contains__, map(str.lower, words))))


def sample_texts() -> list[str]:
    from udfs.ingest import FileReport, IngestConfig, iter_documents

    files = sorted((REPO / "sample" / "warc").glob("*.warc.gz"))
    return [d["text"] for f in files for d in iter_documents(str(f), IngestConfig(), FileReport(str(f)), "t")]


@pytest.fixture(scope="module")
def real_texts() -> list[str]:
    texts = sample_texts()
    assert len(texts) > 150
    return texts


def test_kernels_are_built_and_used():
    """`make setup` compiles them; the rest of this file would test nothing without them."""
    assert _rules is not None, "lakesift_native._rules is not built: run `make setup` (needs a C compiler)"
    assert K.active() == "compiled"
    with K.pure_python():
        assert K.active() == "python"
    assert K.active() == "compiled"


def test_word_stats_equal_the_python_definitions(real_texts):
    rng = random.Random(3)
    for _ in range(4000):
        text = random_text(rng)
        assert _rules.word_stats(text) == python_word_stats(text), repr(text)
    for text in real_texts:
        assert _rules.word_stats(text) == python_word_stats(text)


def test_only_ascii_letters_lower_case_into_a_stop_word():
    """The kernel compares stop words on ASCII letters only: no other code point lower-cases to
    anything with an ASCII letter in it but the Kelvin sign (k, in no stop word) and dotted I (i + a
    combining dot, so never a stop word)."""
    odd = {c for c in map(chr, range(0x80, sys.maxunicode + 1)) if any(ch.isascii() for ch in c.lower())}
    assert odd == {"\u0130", "\u212a"}
    assert "\u212a".lower() == "k" and not any("k" in w for w in T.STOP_WORDS)
    assert "\u0130".lower() == "i\u0307"  # a combining dot stays in the word: never a stop word


def test_case_insensitive_regex_twins_of_ascii_letters_are_all_listed():
    """SubstringLine searches str.lower() instead of running a re.I pattern when the text has none of
    these: the characters re.I equates with an ASCII letter, or that lower-case to ASCII or to more than
    one character."""
    from udfs.steps import _RE_I_ASCII_TWINS

    rx = re.compile("[a-z]", re.I)
    found = {c for c in map(chr, range(0x80, sys.maxunicode + 1))
             if rx.fullmatch(c) or len(c.lower()) != 1 or c.lower().isascii()}
    assert found == set(_RE_I_ASCII_TWINS)


def test_fast_path_words_equal_the_python_words(real_texts):
    pieces = ["a", "B", "\u00e9", "\u00c6", "1", "0", "_", ".", ",", ";", ":", "'", "\u2018", "\u2019", "-", " ",
              "\n", "\u00a0", "\u2014", "\u20ac", "x.", ".5", "e.g", "\u00d7", "\u00f7"]
    rng = random.Random(5)
    for _ in range(6000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
        assert _rules.fast_words(text) == T.uax29_words(text), repr(text)
    outside = 0
    for text in real_texts:
        got = _rules.fast_words(text)
        if got is None:
            outside += 1
            assert not (text.isascii() or T._FAST_SAFE.match(text))
        else:
            assert got == T.uax29_words(text)
    assert outside < len(real_texts)


def test_fast_path_accepts_exactly_the_python_fast_path_characters():
    for c in map(chr, range(0x3000)):
        in_python = bool(c.isascii() or T._FAST_SAFE.match(c))
        assert (_rules.fast_words("a" + c) is not None) == in_python, hex(ord(c))


def repetitive_text(rng: random.Random) -> str:
    vocab = [rng.choice(["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "x1", "caf\u00e9", "\u00e9t\u00e9",
                         "\u4e2d", "\u00b2", "_u"]) for _ in range(rng.randint(1, 8))]
    phrase = [rng.choice(vocab) for _ in range(rng.randint(1, 12))]
    words = []
    while len(words) < rng.randint(0, 120):
        words.extend(phrase if rng.random() < 0.4 else [rng.choice(vocab)])
    return rng.choice([" ", "  ", "\n", " - "]).join(words)


def test_ngram_rules_equal_the_python_definition(real_texts):
    """Text path (fast words in C), list path (words from Python) and the numpy definition agree, with
    the DCLM limits and with random limits that put shares right at the threshold."""
    rng = random.Random(11)
    default = GopherRepetition.LIMITS
    texts = [repetitive_text(rng) for _ in range(3000)] + real_texts
    for i, text in enumerate(texts):
        words = T.uax29_words(text)
        limits = default if i % 2 else tuple((n, rng.choice([0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1 / 3, 0.25]))
                                             for n in sorted(rng.sample(range(2, 12), rng.randint(1, 6))))
        hit = _ngram_fractions(words, dict(limits))
        want = hit[0] if hit else 0
        assert _rules.ngram_repetition(words, limits) == want, (text, limits)
        by_text = _rules.ngram_repetition(text, limits)
        assert by_text in (want, -1), (text, limits)
        assert (by_text == -1) == (_rules.fast_words(text) is None)


def test_ngram_rules_reject_bad_arguments():
    with pytest.raises(ValueError, match="n must be"):
        _rules.ngram_repetition(["a"], [(1, 0.1)])
    with pytest.raises(TypeError):
        _rules.ngram_repetition(["a", 3], [(2, 0.1)])
    with pytest.raises(TypeError):
        _rules.ngram_repetition(("a",), [(2, 0.1)])
    assert _rules.ngram_repetition([], [(2, 0.1)]) == 0
    assert _rules.ngram_repetition("", [(2, 0.1)]) == 0


def test_line_share_kernel_equals_the_python_modifier(real_texts):
    rng = random.Random(13)
    pool = ["ABC", "abc", "Ab", "123", "1", "\u00b2", "\u0661", "\u00c9", "\u01c5", " ", "", "  ", "x9", "IV",
            "\u2160"]
    texts = ["".join(rng.choice(pool) + rng.choice(["\n", "", " ", "\n\n", "\r\n"]) for _ in range(rng.randint(0, 12)))
             for _ in range(3000)] + real_texts
    for text in texts:
        for counted, fn in (("upper", str.isupper), ("digit", str.isdigit)):
            for share in (0.0, 0.5, 0.999999, 1.0, rng.random()):
                want = "\n".join(ln for ln in text.split("\n")
                                 if not ln or sum(map(fn, ln)) / len(ln) <= share).strip()
                got = _rules.drop_lines_by_char_share(text, counted, share)
                assert got == want and type(got) is str, (text, counted, share)
    with pytest.raises(ValueError):
        _rules.drop_lines_by_char_share("a", "lower", 0.5)


def test_line_modifier_shortcuts_equal_the_line_by_line_rules(real_texts):
    """SubstringLine and CounterLine skip pages that cannot match: same text as running every line."""
    from udfs.steps import _COUNTER, CounterLine, SubstringLine

    steps = [SubstringLine(SubstringLine.Params(banlist=b, location=loc, max_length=10, remove_substring_only=r,
                                                case_sensitive=cs))
             for b, loc, r, cs in [("items in cart", "any", True, False), ("Read more...", "suffix", True, False),
                                   ("Sign-in", "prefix", True, False), ("Sign-in", "prefix", False, True),
                                   (["ab|cd", "x?y"], "any", False, False), ("\u212aey", "any", True, False)]]
    rng = random.Random(17)
    pool = ["items in cart", "ITEMS IN CART", "Items in \u212aart", "read more...", "Read More!!", "sign-in",
            "SIGN-IN", "\u017fign-in", "\u0130tems in cart", "key", "KEY", "\u212aey", "ab", "y", "xy", "3 likes",
            "1.2k views", "12 Comments!", "likes", "\u0130", "hello world", " ", "\t", "\u00a0", "word"]
    texts = ["".join(rng.choice(pool) + rng.choice(["\n", " ", "\n\n", "\n \n", ""]) for _ in range(rng.randint(0, 10)))
             for _ in range(3000)] + real_texts
    counter = CounterLine(CounterLine.Params())
    for text in texts:
        for step in steps:
            fast, slow = Doc(text), Doc(text)
            r1 = step.apply(fast)
            step_literals, step_hint = step.literals, step.hint
            step.literals, step.hint = None, re.compile("")  # every page takes the line-by-line path
            try:
                r2 = step.apply(slow)
            finally:
                step.literals, step.hint = step_literals, step_hint
            assert (r1, fast.text) == (r2, slow.text), (text, step.p)
        want = "\n".join(ln for ln in text.split("\n") if not _COUNTER.search(ln.lower())).strip()
        d = Doc(text)
        counter.apply(d)
        assert d.text == want, text


def test_pipeline_decisions_and_text_are_the_same_with_and_without_kernels(shared):
    """The whole DCLM-Baseline heuristic pipeline on real pages (the shared WARC files and the bundled
    sample): identical outcome, reason, text and metadata with the kernels and in pure Python."""
    from tests.udfs.test_dclm_conformance import golden_documents
    from udfs.pipeline import load

    pipe = load(REPO / "conf" / "pipelines" / "dclm_baseline.yaml", skips=["quality", "quality_threshold"])
    texts = [d["text"] for _, d in golden_documents(shared)]
    assert len(texts) > 300

    def outcomes():
        return [(o.kept, o.step, o.reason, o.text, o.chars_after, o.meta) for o in pipe.run_batch(texts)]

    compiled = outcomes()
    with K.pure_python():
        python = outcomes()
    assert compiled == python
    kept = sum(o[0] for o in compiled)
    assert 0 < kept < len(texts)


# ------------------------------------------------------------------------------ language ID kernel

LID_EDGE_CASES = ["hello world", "\x00", "a </s> b c d", "</s>", "__label__en foo", "Bonjour le monde",
                  "\u00e9\u00e8 \U0001f642 \u4e2d\u6587", "x" * 5000, "\u00a0nbsp\u00a0words\u3000here", "\r\t\v\f",
                  "caf\u00e9 na\u00efve \u0130stanbul \u212a", "  leading and trailing  "]


def assert_same_predictions(ft_model, kernel_model, texts):
    import numpy as np

    labels, arrays = ft_model.predict(texts, k=1)
    got_labels, got_probs = K.lid.predict(kernel_model, texts)
    for text, lab, arr, got_lab, got_p in zip(texts, labels, arrays, got_labels, got_probs, strict=True):
        want_lab = lab[0] if len(lab) else None
        want_p = arr[0] if len(arr) else np.float32(0.0)
        assert (got_lab, np.float32(got_p)) == (want_lab, np.float32(want_p)), text[:80]


def test_lid_kernel_gives_fasttexts_predictions_bit_for_bit(shared, real_texts):
    from tests.udfs.test_dclm_conformance import golden_documents
    from udfs.langid import default_model_path, load_model

    assert K.lid is not None, "lakesift_native._lid is not built: run `make setup` (needs a C compiler)"
    path = default_model_path()
    texts = [t.replace("\n", " ") for t in real_texts + [d["text"] for _, d in golden_documents(shared)]]
    texts = [t for t in texts if t.strip()] + LID_EDGE_CASES
    assert_same_predictions(load_model(path), K.lid.load(path), texts)
    with pytest.raises(ValueError, match="one line"):
        K.lid.predict(K.lid.load(path), ["two\nlines"])


def test_lid_kernel_reads_dense_and_quantized_models_or_refuses_clearly(tmp_path, real_texts):
    """A small hierarchical-softmax model trained here, as .bin (dense matrices) and quantized with
    pruned buckets and quantized norms (.ftz): same predictions as fastText. Models it does not handle (softmax
    loss), truncated and foreign files: a ValueError naming the file, and identify() falls back."""
    import fasttext

    from udfs import langid

    rng = random.Random(23)
    vocab = sorted({w for t in real_texts[:50] for w in t.split()})
    lines = [f"__label__{rng.choice('abc')} " + " ".join(rng.choice(vocab) for _ in range(20)) for _ in range(300)]
    train = tmp_path / "train.txt"
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    probe = [" ".join(t.split()[:200]) for t in real_texts[120:220] if t.split()] + LID_EDGE_CASES

    def fit(name: str, **kw):
        # in a fresh process: fastText's binding (0.10.4) trains once per process (see udfs.quality.train)
        import json
        import subprocess

        args = {"input": str(train), "dim": 8, "minn": 2, "maxn": 4, "epoch": 2, "bucket": 5000, "lr": 0.05,
                "thread": 1, "verbose": 0, **kw}
        code = ("import fasttext, json, sys; a = json.loads(sys.argv[1]); out = a.pop('out'); "
                "fasttext.train_supervised(**a).save_model(out)")
        subprocess.run([sys.executable, "-c", code, json.dumps({**args, "out": str(tmp_path / name)})], check=True)
        return fasttext.load_model(str(tmp_path / name))

    hs = fit("hs.bin", loss="hs")
    assert_same_predictions(hs, K.lid.load(str(tmp_path / "hs.bin")), probe)
    hs.quantize(input=str(train), qnorm=True, cutoff=2000, retrain=False, thread=1, dsub=2)
    hs.save_model(str(tmp_path / "hs.ftz"))
    assert_same_predictions(hs, K.lid.load(str(tmp_path / "hs.ftz")), probe)

    fit("softmax.bin", loss="softmax")
    with pytest.raises(ValueError, match="hierarchical-softmax"):
        K.lid.load(str(tmp_path / "softmax.bin"))
    langs, scores = langid.identify(probe[:5], str(tmp_path / "softmax.bin"))  # fastText's binding instead
    assert all(lang in {"a", "b", "c"} for lang in langs)

    data = (tmp_path / "hs.ftz").read_bytes()
    for cut in (3, 40, len(data) // 2, len(data) - 3):
        (tmp_path / "cut.ftz").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cut.ftz"):
            K.lid.load(str(tmp_path / "cut.ftz"))
    # damaged files: every load either refuses with a ValueError or gives a model that predicts (a read
    # outside the model's arrays would crash the test process)
    refused = 0
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        (tmp_path / "damaged.ftz").write_bytes(bytes(damaged))
        try:
            model = K.lid.load(str(tmp_path / "damaged.ftz"))
        except ValueError:
            refused += 1
            continue
        labels, probs = K.lid.predict(model, probe[:20])
        assert len(labels) == len(probs) == 20 and all(isinstance(p, float) for p in probs)
    assert refused < 300
    (tmp_path / "foreign.bin").write_bytes(b"PK\x03\x04 not a model" * 10)
    with pytest.raises(ValueError, match="not a fastText model"):
        K.lid.load(str(tmp_path / "foreign.bin"))
    with pytest.raises(OSError):
        K.lid.load(str(tmp_path / "missing.ftz"))
