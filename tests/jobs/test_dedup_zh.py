"""Dedup with character units (``normalization.units: chars``, ``conf/dedup/zh.yaml``): the units
themselves, datasketch parity, and the dedup job on real Chinese pages (shared/data/zh/text) with
planted near-duplicates at known character edit rates, against the words mode on the same data."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import re
import statistics

import pytest

from jobs import dedup as dedup_job
from tests.conftest import REPO, shared_dir
from udfs import dedup as D

ZH = D.Normalization(units="chars")
ZH_CONF = REPO / "conf" / "dedup" / "zh.yaml"
SOURCES = ["libreoffice-help-zh-cn", "manpages-zh", "debian-handbook", "installation-guide-amd64"]
N_BASE = 40
# edit rate -> doc id code. Expected Jaccard of 5-char shingles (half substitutions, half deletions):
# 0.5% 0.954, 1% 0.911 (found at 0.8); 2% 0.832 (at the threshold: decided by the measured value);
# 5% 0.644, 30% 0.100 (not found)
RATES = {0.005: "r005", 0.01: "r010", 0.02: "r020", 0.05: "r050", 0.30: "r300"}
FOUND, AT_THRESHOLD, NOT_FOUND = (0.005, 0.01), (0.02,), (0.05, 0.30)
N_VARIANTS = 8  # copies differing only in whitespace and punctuation
UNIT = re.compile(r"[^\W_]")
FULL_TO_ASCII = str.maketrans("，。：；！？（）「」“”、", ",.:;!?()[]\"\"/")


def expected_jaccard(rate: float, n: int = 5) -> float:
    """E[Jaccard] of n-char shingle sets after ``rate`` of the characters are edited, half substituted,
    half deleted: an original shingle survives when none of its n characters changed."""
    s = (1 - rate) ** n
    return s / (2 - rate / 2 - s)


# ------------------------------------------------------------------------------ the units themselves

def test_char_units_and_shingles_of_a_chinese_string():
    text = "数据清洗，工具！"
    assert D.normalize_units(text, ZH) == list("数据清洗工具")
    assert sorted(s.decode() for s in D.text_shingles(text, 5, ZH)) == ["据清洗工具", "数据清洗工"]
    assert [s.decode() for s in D.text_shingles("你好", 5, ZH)] == ["你好"]  # shorter than n: one shingle
    assert D.text_shingles(" ，。 ", 5, ZH) == []
    assert D.text_signature("！？", 5, *D.permutations(8, 1), ZH) is None  # no unit: never a duplicate
    # mixed Chinese / English: Latin letters are single characters too, lower-cased; "_" is not a letter
    assert D.normalize_units("用 Spark_3 清洗", ZH) == ["用", "s", "p", "a", "r", "k", "3", "清", "洗"]
    # without strip_punctuation: only whitespace goes, punctuation and symbols are units
    raw = D.Normalization(units="chars", strip_punctuation=False, lowercase=False)
    assert D.normalize_units("你好， World!", raw) == ["你", "好", "，", "W", "o", "r", "l", "d", "!"]
    # the words of the same string: a Han run up to the punctuation is one "word"
    assert D.normalize_words(text) == ["数据清洗", "工具"]
    assert D.text_shingles(text, 5) == ["数据清洗 工具".encode()]


def test_char_exact_key_ignores_spacing_and_punctuation():
    a, b, c = "你好，世界！Hello World", "你好 世界 hello world", "你好世界\nHelloWorld。"
    assert D.exact_key(a, ZH) == D.exact_key(b, ZH) == D.exact_key(c, ZH)
    assert D.normalized_text(a, ZH) == "你好世界helloworld"
    assert D.exact_key(a, ZH) != D.exact_key("你好，世界！Hello Word", ZH)
    assert D.exact_key(" ，。 ", ZH) is None
    # the words mode: a and b share their words, c's runs are merged
    assert D.exact_key(a) == D.exact_key(b) != D.exact_key(c)


def test_words_mode_unchanged():
    text = (REPO / "sample" / "text" / "hq" / "wikipedia.txt").read_text()[:3000]
    ws = D.normalize_words(text)
    old = {" ".join(ws[i:i + 5]).encode("utf-8") for i in range(len(ws) - 4)}  # the shingles before units
    assert D.normalize_units(text) == ws and set(D.text_shingles(text, 5)) == old == D.shingle_set(text, 5)
    assert D.normalized_text("Hello, WORLD") == "hello world" and D.unit_separator() == " "
    # a default Normalization dumps as before (the fingerprint and run ids of existing configs stay)
    assert D.Normalization().model_dump() == {"lowercase": True, "strip_punctuation": True}
    assert D.Normalization(units="chars").model_dump()["units"] == "chars"


def test_char_paragraph_ngrams():
    sets = D.paragraph_ngram_sets("数据清洗工具\n\n你好", 3, ZH)
    assert [len(s) for s in sets] == [4, 0, 1]  # 6 characters: 4 trigrams; an empty line; a short one
    assert sets[0] != D.paragraph_ngram_sets("数据清洗工具", 3)[0]  # one word in the words mode


def test_char_signatures_are_datasketch_compatible():
    import numpy as np
    from datasketch import MinHash

    # a long text: more shingles than one signature block, so the blocks' minimum is checked too
    text = "".join(t for _, t in _documents(3000)[:8])
    sh = D.text_shingles(text, 5, ZH)
    assert len(sh) > D.SIGNATURE_CHUNK and all(len(s.decode()) == 5 for s in sh)
    a, b = D.permutations(128, 1)
    m = MinHash(num_perm=128, seed=1, scheme="legacy")
    m.update_batch(sh)
    assert np.array_equal(D.text_signature(text, 5, a, b, ZH), m.hashvalues.astype(np.uint32))


def test_zh_config():
    from jobs.dedup.main import DedupConfig
    from lakesift.config import ConfigError, load_model

    cfg = load_model(DedupConfig, ZH_CONF)
    exact, minhash = cfg.steps
    assert exact.normalization.units == minhash.normalization.units == "chars"
    assert (minhash.ngram, minhash.threshold, minhash.verify) == (5, 0.8, True)
    # the comment's candidate probability at the threshold
    assert round(1 - (1 - minhash.threshold ** minhash.rows) ** minhash.bands, 3) == 0.998
    with pytest.raises(ConfigError, match="steps.1.minhash.normalization.units"):
        load_model(DedupConfig, ZH_CONF, sets={"steps.1.normalization.units": "char"})


# ------------------------------------------------------------------------- real pages, planted copies

def _documents(max_chars: int = 3000, min_chars: int = 600) -> list[tuple[str, str]]:
    """(id, text) of the zh-CN technical documents of ``min_chars``-``max_chars`` characters, mostly Han."""
    out = []
    for src in SOURCES:
        path = shared_dir() / "data" / "zh" / "text" / f"{src}.jsonl.gz"
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                mostly_han = d["lang"] == "zh-Hans" and d["han_share"] >= 0.5
                if mostly_han and min_chars <= len(d["text"]) <= max_chars:
                    out.append((d["id"], d["text"]))
    return sorted(out)


def _edit(text: str, rate: float, rng: random.Random) -> str:
    """``text`` with round(rate x its letters / digits) of them edited at random positions, each
    substituted by a random common Han character or deleted (even odds); whitespace and punctuation stay."""
    pos = [i for i, c in enumerate(text) if UNIT.match(c)]
    chars = list(text)
    for i in rng.sample(pos, max(1, round(rate * len(pos)))):
        chars[i] = chr(rng.randint(0x4E00, 0x9FA5)) if rng.random() < 0.5 else ""
    return "".join(chars)


def _variant(text: str) -> str:
    """The same characters with every whitespace removed and the full-width punctuation made ASCII."""
    return "".join(text.translate(FULL_TO_ASCII).split())


@pytest.fixture(scope="module")
def zh_corpus():
    """40 real pages (pairwise Jaccard of 5-char shingles < 0.3, so none is a near-duplicate of
    another), one copy of each at every edit rate, 8 whitespace / punctuation variants. doc ids sort
    base < copy < variant, so ``keep: first`` keeps the base."""
    rng = random.Random(20240611)
    candidates = _documents()
    rng.shuffle(candidates)
    bases, sets = [], []
    for doc_id, text in candidates:
        sh = D.shingle_set(text, 5, ZH)
        if all(D.jaccard(sh, o) < 0.3 for o in sets):
            bases.append((doc_id, text))
            sets.append(sh)
        if len(bases) == N_BASE:
            break
    assert len(bases) == N_BASE
    docs, meta = {}, {}  # meta: doc id -> (base doc id, rate or "variant", chars Jaccard, words Jaccard)
    for i, (_, text) in enumerate(bases):
        docs[f"zb{i:02d}"] = text
    for rate, code in RATES.items():
        for i in range(N_BASE):
            base = f"zb{i:02d}"
            docs[f"zc{code}_{i:02d}"] = _edit(docs[base], rate, rng)
    for i in range(N_VARIANTS):
        docs[f"zv{i:02d}"] = _variant(docs[f"zb{i:02d}"])
    for k, t in docs.items():
        if k.startswith(("zc", "zv")):
            base = f"zb{k[-2:]}"
            kind = "variant" if k.startswith("zv") else next(r for r, c in RATES.items() if c in k)
            meta[k] = (base, kind, D.text_jaccard(docs[base], t, 5, ZH), D.text_jaccard(docs[base], t, 5))
    return docs, meta


def _by_rate(meta, rate, col):
    return [m[col] for m in meta.values() if m[1] == rate]


def test_measured_jaccard_at_each_edit_rate(zh_corpus):
    _, meta = zh_corpus
    for rate in RATES:
        jc, jw = _by_rate(meta, rate, 2), _by_rate(meta, rate, 3)
        assert abs(statistics.mean(jc) - expected_jaccard(rate)) < 0.02, (rate, statistics.mean(jc))
        if rate in FOUND:
            assert min(jc) >= 0.85, (rate, min(jc))  # clearly above 0.8
        if rate in NOT_FOUND:
            assert max(jc) <= 0.75, (rate, max(jc))  # clearly below
        assert statistics.mean(jw) < statistics.mean(jc) - (0.15 if rate < 0.3 else 0)  # a word is a clause
    assert all(m[2] == 1.0 for m in meta.values() if m[1] == "variant")  # the same characters


def _run(spark, tmp_path_factory, docs, *sets):
    lake = tmp_path_factory.mktemp("lake")
    rows = [(k, f"https://example.cn/{k}", t) for k, t in sorted(docs.items())]
    spark.createDataFrame(rows, "doc_id string, url string, text string").write.format("delta") \
        .save(str(lake / "filtered"))
    argv = ["--config", str(ZH_CONF), "--lake", str(lake)]
    assert dedup_job.main(argv + [a for s in sets for a in ("--set", s)]) == 0
    table = spark.read.format("delta").load
    kept = {r.doc_id for r in table(str(lake / "deduped")).select("doc_id").collect()}
    dropped = table(str(lake / "dup_clusters")).filter("NOT kept").collect()
    removed = {r.doc_id: (r.method, r.cluster_id) for r in dropped}
    return kept, removed


@pytest.fixture(scope="module")
def zh_runs(spark, tmp_path_factory, zh_corpus):
    """The job with conf/dedup/zh.yaml (chars) and with the same config in the words mode."""
    docs, _ = zh_corpus
    chars = _run(spark, tmp_path_factory, docs)
    words = _run(spark, tmp_path_factory, docs, "steps.0.normalization.units=words",
                 "steps.1.normalization.units=words")
    return {"chars": chars, "words": words}


def _found(meta, removed, rate) -> int:
    return sum(1 for k, m in meta.items() if m[1] == rate and k in removed)


@pytest.mark.spark
def test_chars_finds_the_planted_near_duplicates(zh_corpus, zh_runs):
    docs, meta = zh_corpus
    kept, removed = zh_runs["chars"]
    assert kept | set(removed) == set(docs) and not kept & set(removed)  # each kept or removed, once
    assert {k for k in docs if k.startswith("zb")} <= kept  # every real page survives its copies
    for k, (base, kind, jc, _) in meta.items():
        if kind == "variant":
            assert removed.get(k) == ("exact", base), k
        elif kind in FOUND or (kind in AT_THRESHOLD and jc >= 0.82):
            assert removed.get(k) == ("minhash", base), (k, jc)
        elif kind in NOT_FOUND or jc < 0.78:
            assert k in kept, (k, jc)


@pytest.mark.spark
def test_chars_against_brute_force_jaccard(zh_corpus, zh_runs):
    """Recall and precision against every pair's exact Jaccard of 5-character shingles."""
    docs, _ = zh_corpus
    kept, removed = zh_runs["chars"]
    sh = {k: D.shingle_set(t, 5, ZH) for k, t in docs.items()}
    close = [(a, b) for a, b in itertools.combinations(sorted(docs), 2) if D.jaccard(sh[a], sh[b]) >= 0.8]
    assert len(close) >= 2 * N_BASE
    assert not [(a, b) for a, b in close if a in kept and b in kept]
    assert set(removed) <= {x for pair in close for x in pair}


@pytest.mark.spark
def test_words_mode_misses_them(zh_corpus, zh_runs, capsys):
    """The point of the change: on the same Chinese pages, 5-word shingles (a word is a clause) find
    few of the copies that 5-character shingles find, and the words exact key misses the variants."""
    _, meta = zh_corpus
    (_, rm_chars), (_, rm_words) = zh_runs["chars"], zh_runs["words"]
    near = [r for r in RATES if r not in NOT_FOUND]
    by_rate = {r: (_found(meta, rm_chars, r), _found(meta, rm_words, r)) for r in [*RATES, "variant"]}
    with capsys.disabled():
        print("\nrate     chars J (min/mean/max)   words J (min/mean/max)   found chars / words (of 40 or 8)")
        for r, (fc, fw) in by_rate.items():
            jc, jw = _by_rate(meta, r, 2), _by_rate(meta, r, 3)
            print(f"{r!s:8} {min(jc):.3f}/{statistics.mean(jc):.3f}/{max(jc):.3f}      "
                  f"{min(jw):.3f}/{statistics.mean(jw):.3f}/{max(jw):.3f}      {fc} / {fw}")
    found_chars = sum(by_rate[r][0] for r in near)
    found_words = sum(by_rate[r][1] for r in near)
    assert found_chars >= len(FOUND) * N_BASE  # every copy at 0.5% and 1%, and the 2% ones above 0.8
    assert found_words < found_chars and found_words <= 0.25 * len(FOUND) * N_BASE  # most missed
    for r in near:
        assert by_rate[r][1] <= by_rate[r][0]
    # what the words mode finds is what its own Jaccard says (verify: true), not a failure of the job
    assert all(meta[k][3] >= 0.8 for k, (m, _) in rm_words.items() if m == "minhash" and k in meta)
    assert by_rate["variant"] == (N_VARIANTS, by_rate["variant"][1]) and by_rate["variant"][1] < N_VARIANTS
