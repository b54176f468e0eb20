"""Domains in the dataset job (jobs/dataset/domains.py, docs/domains.md) on real Spark + Delta +
mosaicml-streaming: per-domain streams, the validation hold-out, reference weights, domain_stats,
mixing by domain; and the rules, folders and weights formats without Spark."""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from jobs.dataset import main as dataset_job
from jobs.dataset.domains import Plan, domain_of, folder_name, folders, url_host, url_tld
from jobs.dataset.pack import Counts
from lakesift.config import ConfigError, load_model
from tests.conftest import REPO

pytestmark = pytest.mark.spark
SEQ = 128
SHARES = {"science": 0.5, "news/world": 0.3, "other": 0.2}  # history: not named, share 0
RULES = [{"match": "*.wikipedia.org", "domain": "wikipedia"}, {"match": "*.gov", "domain": "gov"}]


def _topic(name: str, i: int) -> str | None:
    if name == "speeches":
        return "history" if i % 2 else "science"
    return ["science", "news/world", None, " "][i % 4]  # null and blank: the default domain


def _url(name: str, i: int) -> str | None:
    if name == "speeches":
        return f"http://www.whitehouse.gov/s{i}" if i % 2 else "not a url"
    return [f"https://en.wikipedia.org/wiki/A{i}", f"https://www.Example.ORG:8080/p{i}", None][i % 3]


def _tok(shared: Path) -> Path:
    return shared / "data" / "tokenizers" / "gpt-neox-20b" / "20B_tokenizer.json"


def _run(conf: Path, lake: Path, out: Path, shared: Path) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert dataset_job.main(["--config", str(conf), "--lake", str(lake), "--out", str(out),
                                 "--tokenizer", str(_tok(shared))]) == 0
    return buf.getvalue()


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory, shared):
    from udfs.quality_train import split_units

    lake = tmp_path_factory.mktemp("lake")
    texts = {"wiki": (REPO / "sample" / "text" / "hq" / "wikipedia.txt", 60),
             "speeches": (REPO / "sample" / "text" / "hq" / "state_union.txt", 40)}
    docs = {}
    for name, (path, n) in texts.items():
        docs[name] = split_units(path.read_text(encoding="utf-8"), "chunk", 1500, 100)[:n]
        rows = [(f"{name}-{i:04d}", t, _topic(name, i), _url(name, i), "crawl") for i, t in enumerate(docs[name])]
        # the table's own `source` column must not be taken for the configured source's name
        spark.createDataFrame(rows, "doc_id string, text string, topic string, url string, source string") \
            .write.format("delta").save(str(lake / name))
    head = f"""sources:
  - {{name: wiki, table: wiki}}
  - {{name: speeches, table: speeches, frequency: 2.0}}
decontamination: {{enabled: false}}
packing: {{seq_len: {SEQ}, remainder: drop, groups: 2}}
shuffle: {{seed: 5, sequences_per_group: 100}}
output: {{size_limit: 40kb}}
"""
    streams = lake / "streams.yaml"
    streams.write_text(f"""name: streams
{head}mixing: {{mode: proportions, proportions: {json.dumps(SHARES)}}}
domains: {{by: column, column: topic, layout: streams, validation: {{fraction: 0.2, seed: 3}}}}
""")
    hosts = lake / "hosts.yaml"
    hosts.write_text(f"""name: hosts
{head}domains: {{by: url_host, rules: {json.dumps(RULES)}, reference: chunks, epochs: {{wikipedia: 2.0}}}}
""")
    printed = {"streams": _run(streams, lake, lake / "streams", shared),
               "hosts": _run(hosts, lake, lake / "hosts", shared)}
    return lake, docs, printed


def _read(folder: Path) -> list[dict]:
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(folder), shuffle=False, batch_size=1)
    return [ds[i] for i in range(ds.num_samples)]


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


# -- by: column, layout: streams, validation, proportions by domain

def test_every_domain_is_a_stream_and_index_json_reads_them_all(lake):
    root, _, _ = lake
    out = root / "streams"
    m = _manifest(out)
    assert m["domains"]["news/world"]["folder"] == "domains/news_world"  # the unsafe name, mapped
    assert m["domain_config"]["folders"] == {"history": "history", "news/world": "news_world", "other": "other",
                                             "science": "science"}
    history = m["domains"]["history"]  # no share: no training stream, a path only to what exists
    assert history["sequences_written"] == 0 and history["folder"] is None and not (out / "domains" / "history").exists()
    assert history["validation_folder"] == "validation/domains/history"
    everything = _read(out)
    assert len(everything) == m["sequences"] and {s["domain"] for s in everything} == {"science", "news/world", "other"}
    for name, f in m["domains"].items():
        if f["sequences_written"]:
            samples = _read(out / f["folder"])
            assert {s["domain"] for s in samples} == {name} and len(samples) == f["sequences_written"]
    assert Counter(s["domain"] for s in everything) == {n: f["sequences_written"] for n, f in m["domains"].items()
                                                         if f["sequences_written"]}
    assert m["shards"] == len(json.loads((out / "index.json").read_text())["shards"])
    seqs = {}
    for s in everything:  # copies of a sequence share its id; two sequences never do
        assert seqs.setdefault(int(s["seq_id"]), s["tokens"].tobytes()) == s["tokens"].tobytes()


def test_documents_are_all_accounted_for_by_domain(lake):
    root, docs, _ = lake
    m = _manifest(root / "streams")
    want = Counter()
    for name, texts in docs.items():
        for i in range(len(texts)):
            want[(_topic(name, i) or "").strip() or "other"] += 1
    assert {n: f["documents"] for n, f in m["domains"].items()} == dict(want)
    assert sum(f["documents"] for f in m["domains"].values()) == sum(s["documents"] for s in m["sources"].values())
    assert m["domains"]["science"]["sources"] == ["speeches", "wiki"]
    assert {k: v for k, v in m["domain_config"].items() if k != "folders"} == {
        "by": "column", "column": "topic", "url_column": None, "default": "other", "layout": "streams",
        "validation_fraction": 0.2, "validation_seed": 3, "reference": "tokens", "mixing_unit": "domain",
        "sample_domain": True}


def test_validation_is_held_out_once_per_domain(lake):
    root, _, _ = lake
    out = root / "streams"
    m = _manifest(out)
    held = _read(out / "validation")
    assert len(held) == m["validation"]["sequences"] == sum(f["validation_sequences"] for f in m["domains"].values())
    ids = [int(s["seq_id"]) for s in held]
    assert len(set(ids)) == len(ids)  # each once: not mixed
    assert not set(ids) & {int(s["seq_id"]) for s in _read(out)}
    total = sum(f["sequences"] for f in m["domains"].values())
    assert abs(len(held) / total - 0.2) < 0.09, (len(held), total)
    for name, f in m["domains"].items():
        assert (f["validation_folder"] is not None) == (f["validation_sequences"] > 0)
        if f["validation_sequences"]:
            samples = _read(out / f["validation_folder"])
            assert {s["domain"] for s in samples} == {name} and len(samples) == f["validation_sequences"]


def test_proportions_by_domain_name_are_met(lake):
    root, _, _ = lake
    m = _manifest(root / "streams")
    length = SEQ + 1
    doms = m["domains"]
    train = {n: f["tokens"] * ((f["sequences"] - f["validation_sequences"]) / f["sequences"] if f["sequences"] else 1)
             for n, f in doms.items()}  # the tokens of its training sequences' share
    budget = sum(train.values())
    for name, f in doms.items():
        share = SHARES.get(name, 0.0)
        assert f["frequency"] == pytest.approx(share * budget / train[name], abs=1e-5)
        kept = f["sequences"] - f["validation_sequences"]
        expect = f["frequency"] * kept  # floor(f) copies each, one more with probability frac(f)
        assert abs(f["sequences_written"] - expect) <= 3 * math.sqrt(kept * 0.25) + 1, name
        # the share of the budget, less the group tails packing dropped
        assert f["tokens_written"] == pytest.approx(share * budget, rel=0.15, abs=4 * length), name
    assert all(s["frequency"] is None for s in m["sources"].values())  # the unit is the domain


def test_reference_weights_are_token_shares_and_domain_stats_has_the_rows(lake, spark):
    root, _, printed = lake
    m = _manifest(root / "streams")
    ref = json.loads((root / "streams" / "reference_weights.json").read_text())
    total = sum(f["tokens"] for f in m["domains"].values())
    want = {n: f["tokens"] / total for n, f in sorted(m["domains"].items())}
    assert list(ref) == ["train_domain_weights", "eval_domain_weights"]
    assert list(ref["train_domain_weights"]) == sorted(want)
    assert ref["train_domain_weights"] == pytest.approx(want) and ref["eval_domain_weights"] == pytest.approx(want)
    rows = [r for r in spark.read.format("delta").load(str(root / "domain_stats")).collect()
            if r.run_id == m["run_id"]]
    assert {r.domain: (r.documents, r.tokens, r.chunks, r.sequences, r.sequences_written, r.validation_sequences,
                       r.folder, r.validation_folder) for r in rows} == {
        n: (f["documents"], f["tokens"], f["chunks"], f["sequences"], f["sequences_written"],
            f["validation_sequences"], f["folder"], f["validation_folder"]) for n, f in m["domains"].items()}
    assert all(r.name == "streams" and r.by == "column" for r in rows)
    assert "news/world" in printed["streams"] and "held out" in printed["streams"]


# -- by: url_host with rules, layout: single, chunks reference with epochs

def test_url_hosts_and_rules_name_the_domains(lake):
    root, docs, _ = lake
    out = root / "hosts"
    m = _manifest(out)
    want = Counter(domain_of(_url(n, i), "url_host", tuple((r["match"], r["domain"]) for r in RULES), False, "other")
                   for n, texts in docs.items() for i in range(len(texts)))
    assert want == {"wikipedia": 20, "example.org": 20, "other": 40, "gov": 20}
    assert {n: f["documents"] for n, f in m["domains"].items()} == dict(want)
    assert not (out / "domains").exists() and not (out / "validation").exists()  # single layout, no hold-out
    samples = _read(out)
    assert Counter(s["domain"] for s in samples) == {n: f["sequences_written"] for n, f in m["domains"].items()
                                                      if f["sequences_written"]}
    assert all(f["folder"] is f["validation_folder"] is f["frequency"] is None for f in m["domains"].values())
    assert m["domain_config"]["folders"] is None
    assert m["sources"]["speeches"]["frequency"] == 2.0  # frequency mode: a domain's sequences, its source's


def test_chunks_reference_is_the_nopack_count_times_epochs(lake, shared):
    from udfs.tokenizing import load_tokenizer

    root, docs, _ = lake
    m = _manifest(root / "hosts")
    tok = load_tokenizer(_tok(shared).read_text())
    rules = tuple((r["match"], r["domain"]) for r in RULES)
    chunks = defaultdict(int)
    for name, texts in docs.items():
        for i, t in enumerate(texts):
            n = len(tok.encode(t, add_special_tokens=False).ids) + 1  # + EOS
            chunks[domain_of(_url(name, i), "url_host", rules, False, "other")] += -(-n // SEQ)
    assert {n: f["chunks"] for n, f in m["domains"].items()} == dict(chunks)
    scaled = {n: c * (2.0 if n == "wikipedia" else 1.0) for n, c in chunks.items()}
    ref = json.loads((root / "hosts" / "reference_weights.json").read_text())["train_domain_weights"]
    assert ref == pytest.approx({n: v / sum(scaled.values()) for n, v in scaled.items()})


# -- without Spark: rules, folders, weights files, errors

def test_hosts_tlds_and_rules():
    assert url_host("https://www.Example.ORG:8080/x?y") == "example.org"
    assert url_host("en.wikipedia.org/wiki/X") == "en.wikipedia.org"  # no scheme
    assert url_host("http://user@www.host.cn./") == "host.cn"
    assert [url_host(u) for u in (None, "", "not a url", "http://[::1", "mailto:x")] == [None] * 5
    assert url_tld("https://news.bbc.co.uk/a") == "uk" and url_tld("http://blog.example.org") == "org"
    assert [url_tld(u) for u in ("http://localhost/", "http://10.0.0.1/", "http://[2001:db8::1]/")] == [None] * 3
    rules = (("*.cn", "chinese"), ("*.wikipedia.org", "wiki"), ("*.org", "org"))
    assert domain_of("https://zh.wikipedia.org/", "url_host", rules, False, "other") == "wiki"  # first match
    assert domain_of("http://www.gov.cn/", "url_host", rules, False, "other") == "chinese"
    assert domain_of("http://example.com/", "url_host", rules, False, "other") == "example.com"
    assert domain_of("http://example.com/", "url_host", rules, True, "other") == "other"  # rules_only
    assert domain_of("https://a.org/", "url_tld", (("org", "nonprofit"),), False, "x") == "nonprofit"
    assert domain_of(None, "column", (), False, "other") == "other" and domain_of(" a ", "column", (), False, "o") == "a"


def test_folder_names_are_safe_and_collisions_refused():
    assert folder_name("news/world") == "news_world" and folder_name("..") == "_."
    assert folder_name(".hidden") == "_hidden" and folder_name("ünï code") == "_n__code"
    assert folders(["a", "b.c"]) == {"a": "a", "b.c": "b.c"}
    with pytest.raises(ConfigError, match=r"'a b' and 'a_b' would both be written to folder domains/a_b"):
        folders(["a_b", "a b"])
    with pytest.raises(ConfigError, match="case is ignored"):
        folders(["News", "news"])


def test_read_weights_takes_doremi_and_trainer_files(tmp_path):
    from udfs.tokenizing import read_weights

    f = tmp_path / "doremi.json"
    f.write_text(json.dumps({"train_domain_weights": {"a": 0.7, "b": 0.3}, "eval_domain_weights": {"a": 0.5}}))
    assert read_weights(str(f)) == {"a": 0.7, "b": 0.3}
    f.write_text(json.dumps({"step": 2000, "objective": "doremi", "domains": ["a", "b"],
                             "train_domain_weights": {"a": 0.25, "b": 0.75}, "average": {"a": 0.4, "b": 0.6}}))
    assert read_weights(str(f)) == {"a": 0.25, "b": 0.75}
    y = tmp_path / "w.yaml"
    y.write_text("weights: {a: 1, b: 3}\n")
    assert read_weights(str(y)) == {"a": 1.0, "b": 3.0}
    y.write_text("a: 2\nb: 1\n")
    assert read_weights(str(y)) == {"a": 2.0, "b": 1.0}
    y.write_text("a: 2\nb: heavy\n")
    with pytest.raises(ValueError, match="expected a mapping of name to weight"):
        read_weights(str(y))


def test_proportions_naming_an_unknown_domain_found_after_counting_is_a_config_error():
    from jobs.dataset.config import DatasetConfig
    from jobs.dataset.main import unit_frequencies

    cfg = load_model(DatasetConfig, None, {
        "sources": [{"name": "web", "table": "t"}], "domains": {"by": "column", "column": "topic"},
        "mixing": {"mode": "proportions", "proportions": {"news": 1, "sport": 1}}})
    plan = Plan(["news", "other"], None, {("web", "news"): 0, ("web", "other"): 1}, "domain")
    counts = {("web", "news"): Counts(tokens=100, sequences=1), ("web", "other"): Counts(tokens=300, sequences=3)}
    with pytest.raises(ConfigError, match=r"proportions name unknown domains \['sport'\] \(known: \['news', 'other'\]\)"):
        unit_frequencies(cfg, plan, counts, {})
    cfg.mixing.proportions = {"news": 1, "other": 1}
    assert unit_frequencies(cfg, plan, counts, {}) == pytest.approx({"news": 2.0, "other": 2 / 3})


@pytest.mark.parametrize("domains, extra, message", [
    ({"by": "url_host", "rules": [{"match": "*.gov", "domain": "gov"}], "rules_only": True},
     ["--set", "mixing={mode: proportions, proportions: {gov: 1, edu: 1}}"],
     "proportions name unknown domains ['edu'] (known: ['gov', 'other'])"),
    ({"layout": "streams"}, ["--set", "sources=[{name: a b, table: x}, {name: a_b, table: y}]"],
     "'a b' and 'a_b' would both be written to folder domains/a_b"),
    ({"by": "column"}, [], "domains: Value error, column: set it for by: column"),
    ({"epochs": {"nosuch": 2}}, [], "domains.epochs: unknown domains ['nosuch'] (known: ['a'])"),
])
def test_domain_config_errors_exit_2_before_spark(tmp_path, capsys, shared, domains, extra, message):
    conf = tmp_path / "c.yaml"
    conf.write_text(f"sources: [{{name: a, table: a}}]\ndomains: {json.dumps(domains)}\n")
    rc = dataset_job.main(["--config", str(conf), "--lake", str(tmp_path), "--out", str(tmp_path / "out"),
                           "--tokenizer", str(_tok(shared)), *extra])
    assert rc == 2 and message in capsys.readouterr().err


def test_seq_id_budget_and_the_example_config():
    from jobs.dataset.config import DatasetConfig
    from jobs.dataset.mix import check_id_budget

    check_id_budget(2, 1024, 64, 10**6)  # 1024 domains x 64 groups: the 16 bits of the group field
    with pytest.raises(ConfigError, match=r"1025 domains x packing.groups 64 = 65600 packing groups"):
        check_id_budget(2, 1025, 64, 10)
    cfg = load_model(DatasetConfig, REPO / "conf" / "tokenize" / "domains.yaml")
    assert cfg.domains_given and (cfg.domains.by, cfg.domains.column, cfg.domains.layout) == ("column", "source",
                                                                                              "streams")
    assert cfg.domains.validation.fraction == 0.1 and "domains" not in load_model(
        DatasetConfig, REPO / "conf" / "tokenize" / "dclm.yaml").record()  # no section: recorded as before
