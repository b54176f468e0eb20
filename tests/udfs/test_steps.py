"""Each step on documents just inside and just outside its threshold (DCLM-Baseline values)."""

import pytest

from lakesift.config import ConfigError
from tests.conftest import REPO
from udfs.pipeline import build, load
from udfs.steps import REGISTRY, Doc


def step(func, **params):
    cls = REGISTRY[func]
    return cls(cls.Params(**params))


def words(n, w="word"):
    return " ".join([w] * n)


def test_page_length_bounds_count_alnum_tokens_only():
    f = step("page_length_filter", length_type="word", min_length=50, max_length=100)
    assert f.apply(Doc(words(50))) is None
    assert f.apply(Doc(words(49) + " -- ... !!")) == "words<50"  # punctuation tokens do not count
    assert f.apply(Doc(words(101))) == "words>100"


def test_mean_word_length():
    f = step("word_length_filter", min_length=3, max_length=10)
    assert f.apply(Doc("abc abc")) is None
    assert f.apply(Doc("ab abc")) is not None  # mean 2.5 < 3
    assert f.apply(Doc("a" * 10)) is None and f.apply(Doc("a" * 11)) is not None


def test_symbol_ratio():
    f = step("symbol_ratio_filter", max_symbol_to_word_ratio=0.1)
    assert f.apply(Doc(words(9) + " #tag")) is None  # 1 symbol / 10 words = 0.1
    assert f.apply(Doc(words(8) + " #a #b")) is not None  # 2 / 10


def test_bullets_and_ellipses():
    b = step("bullet_count_filter", max_bullet_start_ratio=0.9)
    assert b.apply(Doc("\n".join(["- item"] * 9 + ["plain"]))) is None  # 9 of 10
    assert b.apply(Doc("\n".join(["• item"] * 10))) is not None
    e = step("ellipsis_count_filter", max_ellipsis_end_ratio=0.3)
    assert e.apply(Doc("\n".join(["a line..."] * 3 + ["done."] * 7))) is None
    assert e.apply(Doc("\n".join(["a line\u2026"] * 4 + ["done."] * 6))) is not None


def test_alphabetic_words_and_stop_words():
    a = step("alphabetic_word_ratio_filter", max_ratio=0.2)
    assert a.apply(Doc("one two three four 5")) is None  # 1 of 5 = 0.2
    assert a.apply(Doc("one two three 4 5")) is not None
    s = step("stop_word_filter", min_stop_word=2)
    assert s.apply(Doc("The cat and dog")) is None
    assert s.apply(Doc("The cat, dog")) == "stop_words<2"


def test_gopher_duplicate_lines():
    f = step("massive_web_repetition_filters")
    unique = ["Rivers carry silt toward the delta.", "Bakers rise before dawn on weekdays.",
              "Our library closes early in August.", "Tides depend mostly on the moon.",
              "Copper wires conduct heat quite well.", "Violins need fresh strings each season.",
              "Glaciers retreat when summers grow warmer.", "Owls hunt quietly through pine forests.",
              "Markets reopened after the long holiday.", "Farmers rotate crops to rest the soil."]
    assert f.apply(Doc("\n\n".join(unique))) is None
    assert f.apply(Doc("\n\n".join(unique[:6] + ["Same line again here."] * 4))).startswith("dup_line")


def test_gopher_top_ngram_share():
    f = step("massive_web_repetition_filters", skip_paragraph=True)
    varied = " ".join(f"w{i}x" for i in range(200))
    assert f.apply(Doc(varied)) is None
    assert f.apply(Doc(varied + " " + "buy now " * 40)).startswith(("top_2gram", "dup_"))


def test_line_modifiers_and_word_removal_ratio():
    doc = Doc("A normal sentence with several words here.\nBUY NOW CHEAP\n1,200 likes\nok\n" + words(120))
    for func, params in [("word_counter_enricher", {}), ("uppercase_ratio_line_modifier", {"max_ratio": 0.5}),
                         ("counter_line_modifier", {}), ("line_length_modifier", {"min_length": 2})]:
        assert step(func, **params).apply(doc) is None
    assert "BUY NOW" not in doc.text and "likes" not in doc.text and "\nok\n" not in doc.text
    assert step("word_removal_ratio_filter", max_removed_ratio=0.05).apply(doc) is None  # 6 of 133 words
    doc2 = Doc("SHOUTING LINE ONE TWO THREE FOUR FIVE SIX\n" + words(40))
    step("word_counter_enricher").apply(doc2)
    step("uppercase_ratio_line_modifier").apply(doc2)
    assert step("word_removal_ratio_filter").apply(doc2) == "words_removed>0.05"


def test_substring_line_modifier_read_more_suffix():
    f = step("substring_line_modifier", banlist="Read more...", location="suffix", max_length=10,
             remove_substring_only=True)
    doc = Doc("Great story here. Read more...\nRead more...\nA long line " + words(12) + " Read more...")
    assert f.apply(doc) is None
    assert doc.text.split("\n") == ["Great story here.", "A long line " + words(12) + " Read more..."]


def test_url_filters():
    strict = step("url_substring_filter", banlist=["casino"], ignore_chars=["-", "."])
    assert strict.apply(Doc("x", "http://best-cas.ino.example/")) is not None
    hard = step("url_substring_filter", banlist=["sex"], match_substrings=False)
    assert hard.apply(Doc("x", "http://example.com/sex/")) is not None
    assert hard.apply(Doc("x", "http://example.com/sussex-news")) is None  # whole words only
    soft = step("url_substring_filter", banlist=["hot", "girls"], match_substrings=False, num_banned_substrs=2)
    assert soft.apply(Doc("x", "http://x.com/hot-deals")) is None
    assert soft.apply(Doc("x", "http://x.com/hot-girls")) is not None
    dom = step("url_substring_filter", banlist=["bad.com"], exact_domain_match=True, ignore_chars=["www."])
    assert dom.apply(Doc("x", "https://www.bad.com/page")) == "banned_domain"


def test_url_removal_dclm_compat():
    f = step("url_removal_modifier")
    doc = Doc("Zzz, visit https://example.com/a now or 192.168.0.1 later")
    f.apply(doc)  # no TLD starts with "zz": DCLM removes only the IPv4 address
    assert "example.com" in doc.text and "192.168" not in doc.text
    doc = Doc("Visit https://example.com/a now")  # "vi" (US Virgin Islands) is a TLD: URLs go
    f.apply(doc)
    assert "example.com" not in doc.text
    g = step("url_removal_modifier", dclm_compat=False)
    doc = Doc("Zzz, visit https://example.com/a now")
    g.apply(doc)
    assert "example.com" not in doc.text


def test_language_enricher_and_filter():
    doc = Doc("The committee will meet again next week to discuss the budget and the new school.")
    step("detect_lang_whole_page_enricher").apply(doc)
    assert doc.meta["language"] == "en"
    assert step("language_filter", keep_languages=["en"], threshold=0.65).apply(doc) is None
    assert step("language_filter", keep_languages=["de"]).apply(doc) == "language=en"


def test_shipped_pipeline_loads_and_bad_configs_name_the_problem(tmp_path):
    p = load(REPO / "conf" / "pipelines" / "dclm_baseline.yaml")
    assert p.step_ids[0] == "url_domains" and p.step_ids[-3:] == [
        "word_removal_ratio_filter", "quality", "quality_threshold"]
    with pytest.raises(ConfigError, match=r"steps\[0\]: func: unknown step 'no_such_filter'"):
        build({"steps": [{"func": "no_such_filter"}]}, "x.yaml")
    with pytest.raises(ConfigError, match=r"steps\[0\] \(page_length_filter\): min_lenght: unknown parameter"):
        build({"steps": [{"func": "page_length_filter", "min_lenght": 3}]}, "x.yaml")
    with pytest.raises(ConfigError, match=r"max_ratio"):
        build({"steps": [{"func": "uppercase_ratio_line_modifier", "max_ratio": "half"}]}, "x.yaml")


def _reference_ngram_share(words, n):
    """Gopher's n-gram rule written the obvious way (tuples and Counters), to check the fast one."""
    from collections import Counter

    total = sum(len(w) for w in words)
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams or total == 0:
        return 0.0
    counts = Counter(grams)
    top = max(counts.values())
    if top == 1:
        return 0.0
    if n <= 4:
        return max(sum(len(w) for w in g) for g, c in counts.items() if c == top) * top / total
    covered = {j for i, g in enumerate(grams) if counts[g] > 1 for j in range(i, i + n)}
    return sum(len(words[j]) for j in covered) / total


def test_fast_ngram_rules_match_the_reference_on_real_pages(warc_dir):
    from udfs.ingest import FileReport, IngestConfig, iter_documents
    from udfs.steps import GopherRepetition, _ngram_fractions
    from udfs.text import uax29_words

    files = [str(REPO / "sample" / "warc" / "sample-0000.warc.gz"), str(warc_dir / "resiliparse" / "warcfile.warc.gz")]
    texts = [d["text"] for f in files for d in iter_documents(f, IngestConfig(), FileReport(f), "t")]
    texts += ["buy now " * 50 + " ".join(f"w{i}" for i in range(100)), "a b c d e f " * 30]
    limits = GopherRepetition.NGRAM_MAX
    for t in texts:
        words = uax29_words(t)
        expected = next(((n, lim) for n, lim in limits.items() if _reference_ngram_share(words, n) > lim), None)
        assert _ngram_fractions(words, limits) == expected


SENT = "This sentence ends with a period."


def test_c4_line_and_page_rules():
    f = step("c4_quality_filter")
    doc = Doc("\n".join([SENT] * 5 + ["Enable JavaScript to see this page.", "no terminal punctuation here",
                                       "Too short.", "Read our privacy policy today.", "Fact [1] stands here."]))
    assert f.apply(doc) is None
    assert doc.text.split("\n") == [SENT] * 5 + ["Fact  stands here."]
    assert step("c4_quality_filter").apply(Doc("\n".join([SENT] * 4))) == "sentences<5"
    assert step("c4_quality_filter").apply(Doc(SENT + " Lorem ipsum dolor.")) == "lorem_ipsum"
    assert step("c4_quality_filter").apply(Doc(SENT + " x = {1}.")) == "curly_bracket"


def test_c4_bad_words_whole_words_only():
    f = step("c4_badwords_filter")
    assert f.apply(Doc("A walk through Scunthorpe and the assessment of grass.")) is None
    assert f.apply(Doc("Some text with boobs in it.")) == "bad_word:boobs"


def test_fineweb_rules():
    f = step("fineweb_quality_filter")
    long_lines = [f"This is line number {i} of a fairly ordinary paragraph of text." for i in range(20)]
    assert f.apply(Doc("\n".join(long_lines))) is None
    # 2 of 20 lines end in punctuation = 0.10 < 0.12
    no_punct = [ln.rstrip(".") for ln in long_lines[:18]] + long_lines[18:]
    assert f.apply(Doc("\n".join(no_punct))) == "line_punct<0.12"
    short = ["Short line."] * 14 + long_lines[:6]  # 14 of 20 = 0.7 short
    assert step("fineweb_quality_filter", char_duplicates_ratio=1.0).apply(Doc("\n".join(short))) == "short_lines>0.67"
    dup = long_lines + [long_lines[0]]  # ~5% of characters duplicated
    assert f.apply(Doc("\n".join(dup))) == "dup_line_chars>0.01"


def test_every_shipped_pipeline_loads():
    for name in ("dclm_baseline", "refinedweb", "gopher", "c4", "fineweb"):
        assert load(REPO / "conf" / "pipelines" / f"{name}.yaml").name == name


def test_url_removal_token_windows_equal_the_plain_substitution(warc_dir):
    """The URL / IPv4 removal runs its patterns only on candidate tokens; the text must be exactly
    what the plain whole-page ``sub`` (DCLM's) gives: on random strings built to hit the edges (runs of
    whitespace around 10, URLs glued to punctuation, dotted numbers, Unicode TLDs) and on real pages."""
    import random

    from udfs.steps import _IPV4_HINT, UrlRemoval, _sub_in_tokens

    step = UrlRemoval(UrlRemoval.Params(dclm_compat=False))
    rng = random.Random(7)
    pieces = ["www", "example", ".com", ".org", ".测试", ".c", ".COM", "a.b.c", "\u3000", "http://", "https://", "ftp://", "/path", "?q=1",
              "&x=2", "(", ")", "[", "]", ".", ",", "1", "192", ".168", ".0", ".1", "10.0.0.1", "1.2.3", "172.16.254.10", ".255", "a", "B", ":", "@", "%",
              "_", "~", "#", "=", "-", "\u00e9", "'"]
    spaces = [" ", "  ", "\n", "\t", " " * 9, " " * 10, " " * 11, " " * 14, "\u00a0", "\n\n"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) if rng.random() < 0.8 else rng.choice(spaces)
                       for _ in range(rng.randint(0, 40)))
        assert _sub_in_tokens(step.url, step.url_hint, text) == step.url.sub("", text), repr(text)
        assert _sub_in_tokens(step.ipv4, _IPV4_HINT, text) == step.ipv4.sub("", text), repr(text)
    from udfs.ingest import FileReport, IngestConfig, iter_documents

    files = [str(REPO / "sample" / "warc" / f"sample-000{i}.warc.gz") for i in range(4)]
    texts = [d["text"] for f in files for d in iter_documents(f, IngestConfig(), FileReport(f), "t")]
    assert len(texts) > 150
    for text in texts:
        assert _sub_in_tokens(step.url, step.url_hint, text) == step.url.sub("", text)
        assert _sub_in_tokens(step.ipv4, _IPV4_HINT, text) == step.ipv4.sub("", text)


def _toy_units():
    """Toy text units: every non-space character is a word (a stand-in for a language without spaces)."""
    from udfs.steps import TextUnits

    class Characters(TextUnits):
        name = "test_characters"
        stop_words = frozenset({"的"})

        def tokens(self, text, ignore_punctuation=True):
            return [c for c in text if not c.isspace() and (c.isalnum() or not ignore_punctuation)]

        def words(self, text):
            return [c for c in text if not c.isspace()]

        def ngram_words(self, text):
            return [c for c in text if c.isalnum()]

    return Characters


def test_registered_units_change_what_word_based_steps_count(monkeypatch):
    from udfs import kernels as K
    from udfs.steps import UNITS, register_units

    chars = _toy_units()
    monkeypatch.setitem(UNITS, chars.name, chars)  # removed again after the test
    assert register_units(chars) is chars and UNITS[chars.name] is chars
    han = "一二三四五六七八九十"
    cases = [  # (step, text, decision on the default units, decision on characters)
        (step("page_length_filter", min_length=5), han, "words<5", None),
        (step("word_length_filter", max_length=3), han, "mean_word_length>3", None),
        (step("stop_word_filter", min_stop_word=1), "我的书", "stop_words<1", None),
        (step("alphabetic_word_ratio_filter", max_ratio=0.5), "x1 2", None, "non_alpha_words>0.5"),
        (step("massive_web_repetition_filters"), "ab" * 40, None, "top_2gram>0.2"),
        (step("line_length_modifier", min_length=2), "你好", "empty_after_modification", None),
        (step("c4_quality_filter", min_words_per_line=3, min_sentences=1), "我们好.", "sentences<1", None),
    ]
    for s, text, default, characters in cases:
        assert s.apply(Doc(text)) == default, s.name
        d = Doc(text, units=chars.name)
        assert d.units.name == chars.name and not d.compiled
        assert s.apply(d) == characters, s.name
    assert Doc("x").compiled == (K.rules is not None)

    # the same through a pipeline's `units:` key, batch and single document
    spec = {"steps": [{"func": "word_counter_enricher"}, {"func": "line_length_modifier", "min_length": 2},
                      {"func": "page_length_filter", "min_length": 5}]}
    text = "你好\n一二三四五"
    by_default = build(spec).run(text)
    assert (by_default.kept, by_default.reason) == (False, "empty_after_modification")
    p = build({"units": chars.name, **spec})
    assert p.units.name == chars.name
    kept = p.run_batch([text])[0]
    assert kept.kept and kept.text == text and kept.meta["previous_word_count"] == 7
    assert build({"units": "default", **spec}).run(text).reason == "empty_after_modification"


def test_text_units_are_validated():
    from udfs.steps import TextUnits, WhitespaceUnits, get_units, register_units

    for bad in ("klingon", 3, None):
        with pytest.raises(ConfigError, match=r"x.yaml: units: unknown text units .*; known: cjk, default, zh"):
            build({"units": bad, "steps": [{"func": "page_length_filter"}]}, "x.yaml")
    with pytest.raises(ValueError, match="unknown text units 'klingon'"):
        Doc("x", units="klingon")
    assert get_units() is get_units("default") is Doc("x").units and get_units(get_units()) is get_units()

    class Half(TextUnits):
        name = "test_half"
        stop_words = frozenset()

        def tokens(self, text, ignore_punctuation=True):
            return text.split()

    with pytest.raises(TypeError, match=r"missing: words, ngram_words"):
        register_units(Half)

    class Tweaked(WhitespaceUnits):  # inherits the default definitions, but the kernels do not know it
        name = "test_tweaked"

    assert WhitespaceUnits.compiled and not Tweaked.compiled
