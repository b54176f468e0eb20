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
