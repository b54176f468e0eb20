import pytest

from udfs.extract import ResiliparseOptions, make_extractor
from udfs.langid import identify

PAGE = """<html><head><title>t</title><script>var x = 1;</script></head><body>
<nav><a href="/">Home</a> | <a href="/about">About</a> | <a href="/contact">Contact</a></nav>
<article><h1>Rivers of Europe</h1>
<p>The Danube is Europe's second-longest river. It flows through ten countries, more than any other
river in the world, and drains into the Black Sea after a journey of about 2,850 kilometres.</p>
<p>Its basin is home to some eighty million people, and for centuries the river has carried trade,
armies and ideas between the heart of the continent and the east.</p></article>
<footer>Copyright 2024 Example Corp. All rights reserved. Privacy policy.</footer></body></html>"""


@pytest.mark.parametrize("name", ["resiliparse", "trafilatura"])
def test_extractors_keep_article_text_and_drop_script(name):
    text = make_extractor(name)(PAGE)
    assert "Danube is Europe's second-longest river" in text
    assert "var x" not in text


def test_resiliparse_options_are_passed_through():
    full = make_extractor("resiliparse", ResiliparseOptions(main_content=False))(PAGE)
    main = make_extractor("resiliparse", ResiliparseOptions(main_content=True))(PAGE)
    assert "Privacy policy" in full and "Privacy policy" not in main


def test_unknown_extractor():
    with pytest.raises(ValueError, match="unknown extractor"):
        make_extractor("lynx")


def test_language_id_on_real_sentences():
    langs, scores = identify([
        "The quick brown fox jumps over the lazy dog while the farmer watches from the porch.",
        "Der schnelle braune Fuchs springt über den faulen Hund, während der Bauer zuschaut.",
        "東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。",
        "",
        "multi\nline\ntext in English about the weather today and tomorrow",
    ])
    assert langs == ["en", "de", "ja", "und", "en"]
    assert all(0.5 < s <= 1.0 for s in scores[:3]) and scores[3] == 0.0
