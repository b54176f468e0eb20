"""Our word and line units against DCLM's definitions."""

import glob

from tests.conftest import REPO
from udfs.ingest import FileReport, IngestConfig, iter_documents
from udfs.text import fasttext_words, lines, paragraphs, uax29_words


def test_lines_and_paragraphs():
    text = " a \n\n b\n  \nc\n\n\n d "
    assert lines(text) == ["a", "b", "c", "d"]
    assert paragraphs(text) == ["a", "b\n  \nc", "d"]


def test_fasttext_words_skip_tokens_not_starting_alphanumeric():
    assert fasttext_words("Hello, world -- (yes) 42!") == ["Hello,", "world", "42!"]
    assert fasttext_words("a\tb\nc\x00d") == ["a", "b", "c", "d"]


def test_uax29_words_on_tricky_strings():
    assert uax29_words("or 'understand that doesn't l'homme 3.14 e-mail") == [
        "or", "understand", "that", "doesn't", "l'homme", "3.14", "e", "mail"]


def test_uax29_words_match_uniseg_on_real_documents(shared):
    from uniseg import wordbreak as uniseg  # a dev dependency: missing it must fail, not skip
    files = sorted(glob.glob(str(REPO / "sample" / "warc" / "*.warc.gz")))[:2]
    files += [str(shared / "data" / "warc" / "resiliparse" / n) for n in ("warcfile.warc.gz", "clueweb-quirk.warc.gz")]
    texts = [d["text"] for f in files for d in iter_documents(f, IngestConfig(), FileReport(f), "t")]
    assert len(texts) > 100
    same = sum(uax29_words(t) == [w for w in uniseg.words(t) if w.strip() and w[0].isalnum()] for t in texts)
    assert same / len(texts) >= 0.99, f"{same} of {len(texts)} documents segment identically"


def test_uax29_fast_path_equals_the_general_path():
    """The fast path (ASCII / Latin-1 letters / Word_Break=Other symbols) gives exactly the words of the
    general regex-module path: fuzzed strings around the joining rules, and the sample's real pages."""
    import random

    from udfs.text import _FAST_SAFE, uax29_words_general

    rng = random.Random(11)
    alphabet = list("aZé9_0 .,;:'\u2018\u2019-\n\t\"()!?") + ["\u201c", "\u201e", "\u2014", "\u00a0", "\u2026", "ÿ", "À"]
    checked = 0
    for _ in range(20000):
        t = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        assert _FAST_SAFE.match(t)
        assert uax29_words(t) == uax29_words_general(t), repr(t)
        checked += 1
    files = sorted(glob.glob(str(REPO / "sample" / "warc" / "*.warc.gz")))
    texts = [d["text"] for f in files for d in iter_documents(f, IngestConfig(), FileReport(f), "t")]
    fast = [t for t in texts if _FAST_SAFE.match(t)]
    assert len(fast) > 40  # the fast path is really taken on real pages
    for t in fast:
        assert uax29_words(t) == uax29_words_general(t)
