"""Expand a tokenizer's vocabulary for a new language (Colossal-LLaMA-2 style), with every new piece
checked to be reachable and the compression measured on held-out text.

    python jobs/expand_vocab.py --base BASE --text TEXT --out OUT [--add PIECES] [--lake LAKE] \\
        [--config conf/vocab/default.yaml] [--set KEY=VALUE] [--eval-text LANG=PATH ...]

* ``BASE``: a SentencePiece BPE ``.model`` (LLaMA-style, byte fallback) or a byte-level BPE
  ``tokenizer.json`` (GPT-NeoX, GPT-2, Llama-3), or a folder holding one (``tokenizer.model`` first).
* ``TEXT``: a table of the lake (by name), a Delta path, a JSONL(.gz) / JSON / parquet file with a
  ``columns.text`` field, a plain-text file, or a folder of them (its JSONL / parquet files when it has
  any, else its text files, cut by ``sample.text_unit``).
* ``--add PIECES``: pieces to add (JSONL ``{"piece": ..., "freq": ...}`` or one per line); with
  ``add_mode: only`` (the default) instead of training candidates, with ``with_trained`` after them.
* ``--eval-text LANG=PATH`` (repeatable): more held-out text of a known language, e.g.
  ``en=../shared/data/text/wikitext2/valid.txt``, to check that English does not get worse.

Spark reads ``TEXT``, keeps the documents of ``sample.languages`` / ``sample.sources`` (when set; they
need a language / source column), and splits it by a seeded hash of each document's text: a
``sample.heldout_fraction`` held out, the rest the training sample. Each side is taken in the order of
another seeded hash up to its character cap (``sample.max_chars``, ``sample.heldout_max_chars``), so the
same seed gives the same sample on any cluster. The driver then (``lakesift.vocab``, which explains the
method): trains the candidate model on the sample, appends the candidates below every base merge,
drops the pieces that are not reachable or formed fewer than ``min_freq`` times to a fixpoint, checks
that the old ids did not change, measures tokens per character per held-out language, and for a
SentencePiece base compares SentencePiece with the converted fast tokenizer on the held-out text.

``OUT`` (a local folder; a cloud URI is written locally and uploaded) gets ``tokenizer.json`` (what
``jobs/dataset`` loads), ``tokenizer.model`` (SentencePiece), ``base/`` (the base's files),
``added_pieces.tsv``, ``dropped_pieces.tsv`` and ``report.json``; the run is recorded in ``LAKE/_runs``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from jobs.common import runs
from jobs.common.job import Context, Job, UsageError
from jobs.common.lake import table_exists
from lakesift.config import ConfigError, StrictModel
from lakesift.log import kv

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
LANGUAGE_COLUMNS = ("language", "lang")  # looked for in this order when columns.language is not set


class Columns(StrictModel):
    text: str = "text"
    language: str | None = None  # None: `language`, else `lang`, when the input has one
    source: str = "source"


class SampleConfig(StrictModel):
    max_chars: int = Field(10_000_000, gt=0)  # training sample cap (characters)
    languages: list[str] = []  # keep these languages (zh also keeps zh-Hans, zh_TW ...); [] keeps all
    sources: list[str] = []  # keep these values of the source column; [] keeps all
    heldout_fraction: float = Field(0.02, ge=0, lt=1)  # of the documents, by a seeded hash
    heldout_max_chars: int = Field(1_000_000, ge=0)
    text_unit: Literal["file", "paragraph", "line", "chunk"] = "paragraph"  # plain-text files
    chunk_chars: int = Field(2000, gt=0)  # text_unit: chunk
    min_chars: int = Field(1, ge=1)  # plain-text units shorter than this are skipped


class CandidateConfig(StrictModel):
    vocab_size: int = Field(32_000, gt=0)  # size of the candidate model trained on the sample
    max_added: int | None = Field(None, ge=0)  # at most this many trained candidates (in merge order)
    character_coverage: float = Field(0.9995, gt=0, le=1)  # SentencePiece trainer
    max_line_chars: int = Field(4096, gt=0)  # SentencePiece trainer: longer lines are cut
    min_pair_frequency: int = Field(2, ge=1)  # byte-level trainer: a pair seen fewer times is not merged


class EvalConfig(StrictModel):
    max_chars: int = Field(2_000_000, gt=0)  # per --eval-text
    detect_language: bool = True  # held-out documents with no language: lid.176 (udfs.langid)


class ParityConfig(StrictModel):
    max_mismatched_docs: int = Field(0, ge=0)  # SentencePiece base: held-out docs slow and fast may differ on


class ExpandConfig(StrictModel):
    name: str = "default"
    seed: int = 42
    columns: Columns = Columns()
    sample: SampleConfig = SampleConfig()
    candidates: CandidateConfig = CandidateConfig()
    add_mode: Literal["only", "with_trained"] = "only"  # with --add: the list alone, or after trained ones
    min_freq: int = Field(1, ge=0)  # a kept piece is formed at least this often on the sample
    pad_multiple: int = Field(64, ge=1)  # padded_vocab_size: the embedding rows, a multiple of this
    threads: int = Field(0, ge=0)  # SentencePiece trainer / encoder threads, 0: every core (tokenizers: RAYON_NUM_THREADS)
    eval: EvalConfig = EvalConfig()
    parity: ParityConfig = ParityConfig()


@dataclass
class Request:
    """What ``configure`` checked and loaded before Spark starts."""

    base: object  # SpmBase | HfBpeBase
    given: list = field(default_factory=list)  # (text, freq)
    eval_texts: list = field(default_factory=list)  # (lang, path)


# ---------------------------------------------------------------------------------------- reading

def is_name(src: str) -> bool:
    """A bare name (``documents``): a table of the lake when it has one, else a file or folder."""
    return "/" not in src and ":" not in src


def list_files(src: str) -> list[str]:
    from lakesift.io import is_local, local_path

    if is_local(src):
        p = local_path(src)
        if os.path.isfile(p):
            return [p]
        return sorted(os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs if not f.startswith("."))
    import fsspec

    fs, root = fsspec.core.url_to_fs(src)
    proto = src.split("://", 1)[0]
    return [f"{proto}://{f}" for f in sorted(fs.find(root))] if fs.isdir(root) else [src]


def read_text(ctx: Context, src: str, what: str, filters: bool):
    """``src`` as a DataFrame with ``text``, ``lang`` and ``source`` (null when the input has none),
    and its Delta version (None for files). ``filters``: ``sample.languages`` / ``sample.sources``
    apply, so their columns must exist. Spark reads JSON files to infer their schema here, so a file
    it cannot read is a :class:`UsageError` already."""
    try:
        return _read_text(ctx, src, what, filters)
    except spark_errors() as exc:
        raise UsageError(f"{what} {src}: cannot read it: {first_line(exc)}") from None


def _read_text(ctx: Context, src: str, what: str, filters: bool):
    from lakesift.io import is_local, local_path

    cfg, spark = ctx.cfg, ctx.spark
    table = src.removeprefix("delta:")
    if src.startswith("delta:") or (is_name(src) and ctx.lake.exists(spark, src)) or table_exists(spark, src) \
            or (is_name(src) and not os.path.exists(src)):
        df, version = ctx.read(table, hint=f"{what}: a lake table, Delta path, JSONL / parquet / text file or folder")
        return _columns(df, cfg, src, what, filters), version
    files = list_files(src)
    low = [f.lower() for f in files]
    json_files = [f for f, lo in zip(files, low, strict=True) if lo.endswith(JSON_SUFFIXES)]
    parquet = [f for f, lo in zip(files, low, strict=True) if lo.endswith(PARQUET_SUFFIXES)]
    ctx.input(what, src)
    if json_files or parquet:
        parts = []
        if json_files:
            parts.append(_columns(spark.read.json(json_files), cfg, src, what, filters))
        if parquet:
            parts.append(_columns(spark.read.parquet(*parquet), cfg, src, what, filters))
        df = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
        return df, None
    from udfs.quality_train import TEXT_SUFFIXES

    one_file = is_local(src) and os.path.isfile(local_path(src))
    text_files = files if one_file else [f for f in files if Path(f).suffix.lower() in TEXT_SUFFIXES]
    if not text_files:
        raise UsageError(f"{what} {src}: no JSONL, JSON, parquet or text files in it")
    from udfs.quality_train import units_task

    s = cfg.sample
    raw = spark.read.format("binaryFile").load(text_files).select("path", "content")
    cut = units_task(s.text_unit, s.chunk_chars, s.min_chars)
    return _columns(raw.mapInPandas(cut, "text string"), cfg, src, what, filters), None


def _columns(df, cfg: ExpandConfig, src: str, what: str, filters: bool):
    from pyspark.sql import functions as F

    cols = cfg.columns
    if cols.text not in df.columns:
        raise UsageError(f"{what} {src}: no column {cols.text!r} (columns.text); it has {', '.join(df.columns) or 'none'}")
    lang = cols.language or next((c for c in LANGUAGE_COLUMNS if c in df.columns), None)
    if cols.language and cols.language not in df.columns:
        raise UsageError(f"{what} {src}: no column {cols.language!r} (columns.language)")
    s = cfg.sample if filters else SampleConfig()
    if s.languages and lang is None:
        raise UsageError(f"{what} {src}: sample.languages needs a language column ({' or '.join(LANGUAGE_COLUMNS)}, "
                         "or columns.language)")
    if s.sources and cols.source not in df.columns:
        raise UsageError(f"{what} {src}: sample.sources needs the column {cols.source!r} (columns.source)")
    return df.select(F.col(cols.text).cast("string").alias("text"),
                     (F.col(lang).cast("string") if lang else F.lit(None).cast("string")).alias("lang"),
                     (F.col(cols.source).cast("string") if cols.source in df.columns
                      else F.lit(None).cast("string")).alias("source"))


def language_filter(languages: list[str]):
    """``zh`` keeps ``zh``, ``zh-Hans``, ``zh_TW`` ... (case-insensitive)."""
    from functools import reduce

    from pyspark.sql import functions as F

    lang = F.lower(F.col("lang"))
    conds = [(lang == x.lower()) | lang.startswith(x.lower() + "-") | lang.startswith(x.lower() + "_") for x in languages]
    return reduce(lambda a, b: a | b, conds)


HASH_SPAN = 2.0 ** 64


def take_by_hash(df, max_chars: int, total_chars: int) -> list[tuple[str, str | None]]:
    """(text, lang) of the documents with the smallest ``_h`` until ``max_chars`` characters (the last
    one cut to fit). Only the rows under a hash threshold sized for the cap are sorted and collected
    (retried with a higher one in the rare case that is short), so the result is the same as sorting
    everything."""
    from pyspark.sql import functions as F

    frac = 1.0 if total_chars <= max_chars else min(1.0, 1.3 * max_chars / total_chars + 1e-4)
    while True:
        sub = df if frac >= 1 else df.filter(F.col("_h") < F.lit(int(-(2 ** 63) + frac * HASH_SPAN)))
        out, chars = [], 0
        for r in sub.select("text", "lang", "_h").orderBy("_h", "text").collect():
            if chars >= max_chars:
                break
            text = r.text[:max_chars - chars]
            out.append((text, r.lang))
            chars += len(text)
        if chars >= max_chars or frac >= 1:
            return out
        frac = min(1.0, 2 * frac)


def spark_errors() -> tuple[type, ...]:
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JJavaError)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)[:400]


@dataclass
class Sample:
    train: list[str]
    heldout: list[tuple[str, str | None]]
    available_docs: int
    available_chars: int


def sample_text(ctx: Context, df, src: str) -> Sample:
    """The seeded training sample and held-out part of ``df`` (module docstring)."""
    from pyspark.sql import functions as F

    cfg = ctx.cfg
    s = cfg.sample
    df = df.filter(F.col("text").isNotNull() & (F.length(F.trim("text")) > 0))
    if s.languages:
        df = df.filter(language_filter(s.languages))
    if s.sources:
        df = df.filter(F.col("source").isin(s.sources))
    buckets = 10_000
    df = (df.withColumn("_h", F.xxhash64(F.lit(cfg.seed), "text"))
          .withColumn("_held", F.pmod(F.xxhash64(F.lit(cfg.seed + 1), "text"), F.lit(buckets))
                      < int(round(s.heldout_fraction * buckets)))).persist()  # counted, then taken from twice
    try:
        totals = {r._held: (int(r.n), int(r.chars or 0)) for r in
                  df.groupBy("_held").agg(F.count("*").alias("n"), F.sum(F.length("text")).alias("chars")).collect()}
        train_n, train_chars = totals.get(False, (0, 0))
        held_n, held_chars = totals.get(True, (0, 0))
        if not train_n:
            filters = ", ".join(f"{k} {v}" for k, v in (("sample.languages", s.languages), ("sample.sources", s.sources)) if v)
            raise UsageError(f"--text {src}: empty sample: no documents with text" + (f" ({filters})" if filters else ""))
        train = [t for t, _ in take_by_hash(df.filter(~F.col("_held")), s.max_chars, train_chars)]
        heldout = take_by_hash(df.filter("_held"), s.heldout_max_chars, held_chars) if s.heldout_max_chars else []
    except spark_errors() as exc:
        raise UsageError(f"--text {src}: cannot read it: {first_line(exc)}") from None
    finally:
        df.unpersist()
    return Sample(train, heldout, train_n + held_n, train_chars + held_chars)


def eval_texts(ctx: Context, items: list[tuple[str, str]]) -> dict[str, list[str]]:
    """``--eval-text`` documents by language, each source up to ``eval.max_chars`` (seeded hash order)."""
    from pyspark.sql import functions as F

    out: dict[str, list[str]] = {}
    for lang, path in items:
        df, _ = read_text(ctx, path, f"--eval-text {lang}", filters=False)
        df = (df.filter(F.col("text").isNotNull() & (F.length(F.trim("text")) > 0))
              .withColumn("_h", F.xxhash64(F.lit(ctx.cfg.seed), "text"))).persist()
        try:
            total = df.agg(F.sum(F.length("text"))).first()[0] or 0
            rows = take_by_hash(df, ctx.cfg.eval.max_chars, int(total))
        except spark_errors() as exc:
            raise UsageError(f"--eval-text {lang}={path}: cannot read it: {first_line(exc)}") from None
        finally:
            df.unpersist()
        if not rows:
            raise UsageError(f"--eval-text {lang}={path}: no text in it")
        out.setdefault(lang, []).extend(t for t, _ in rows)
    return out


def heldout_by_language(rows: list[tuple[str, str | None]], detect: bool) -> dict[str, list[str]]:
    """Held-out documents by their language column, else by lid.176, else ``und``."""
    missing = [i for i, (_, lang) in enumerate(rows) if not lang]
    found: dict[int, str] = {}
    if missing and detect:
        from udfs.langid import identify

        langs, _ = identify([rows[i][0] for i in missing])
        found = dict(zip(missing, langs, strict=True))
    out: dict[str, list[str]] = {}
    for i, (text, lang) in enumerate(rows):
        out.setdefault(lang or found.get(i, "und"), []).append(text)
    return out


# ---------------------------------------------------------------------------------------- the job

def upload(local_dir: str, uri: str) -> None:
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri)
    fs.makedirs(root, exist_ok=True)
    fs.put(local_dir.rstrip("/") + "/", root.rstrip("/") + "/", recursive=True)


def print_summary(cfg: ExpandConfig, out: str, report: dict) -> None:
    v, smp = report, report["sample"]
    print(f"\n=== vocabulary expansion {cfg.name} -> {out} ===")
    print(f"base: {v['base']} ({v['base_kind']}, {v['base_vocab_size']} ids); sample: {smp['docs']} documents, "
          f"{smp['chars']} characters (seed {smp['seed']})")
    drops = ", ".join(f"{r} {n}" for r, n in sorted(v["dropped"].items())) or "none"
    print(f"added {v['added']} ({', '.join(f'{o} {n}' for o, n in sorted(v['added_by_origin'].items())) or 'none'}), "
          f"dropped {sum(v['dropped'].values())} ({drops}); vocab {v['vocab_size']}, padded {v['padded_vocab_size']} "
          f"(multiple of {v['pad_multiple']})")
    print(f"{'held-out':12s} {'docs':>6s} {'chars':>9s} {'tokens before':>14s} {'after':>9s} "
          f"{'tok/char before':>16s} {'after':>7s} {'ratio':>7s}")
    for lang, st in report["heldout"].items():
        print(f"{lang:12s} {st['docs']:6d} {st['chars']:9d} {st['tokens_before']:14d} {st['tokens_after']:9d} "
              f"{st['tokens_per_char_before'] or 0:16.4f} {st['tokens_per_char_after'] or 0:7.4f} "
              f"{st['tokens_per_char_ratio'] or 0:7.4f}")
    if report.get("english_not_worse") is not None:
        print(f"English not worse: {'yes' if report['english_not_worse'] else 'NO'}")
    if "parity" in report:
        p = report["parity"]
        print(f"slow / fast parity: {p['mismatched_docs']} of {p['docs']} held-out documents differ")


class ExpandVocabJob(Job):
    name, prog = "expand_vocab", "jobs/expand_vocab.py"
    description = ("Expand a tokenizer's vocabulary for a new language (Colossal-LLaMA-2 style): train\n"
                   "candidate pieces on a seeded sample of TEXT (or take --add), append them below every base\n"
                   "merge, keep only the reachable ones, and report tokens per character on held-out text.")
    epilog = ("Examples:\n"
              "  python jobs/expand_vocab.py --base ../shared/data/tokenizers/gpt-neox-20b "
              "--text ../shared/data/zh/text --out ./lake/vocab/neox-zh "
              "--eval-text en=../shared/data/text/wikitext2/valid.txt\n"
              "  python jobs/expand_vocab.py --base llama/tokenizer.model --text filtered --lake ./lake "
              "--set sample.languages=[zh] --out ./lake/vocab/llama-zh\n"
              "The method and its checks: lakesift/vocab/__init__.py; the config keys: conf/vocab/default.yaml.")
    config_model, default_config = ExpandConfig, "conf/vocab/default.yaml"
    config_help = "expansion config"
    sets_help = "override a config key, e.g. --set candidates.vocab_size=20000 (VALUE is YAML; repeatable)"

    raw_help = True

    def add_arguments(self, p) -> None:
        p.add_argument("--base", required=True,
                       help="base tokenizer: a SentencePiece BPE .model, a byte-level BPE tokenizer.json, or a folder "
                            "holding one (tokenizer.model is preferred)")
        p.add_argument("--text", required=True,
                       help="the new language's text: a lake table, a Delta path, a JSONL(.gz) / parquet / text file, "
                            "or a folder of them")
        p.add_argument("--out", required=True, help="output folder (local; a cloud URI is uploaded)")
        p.add_argument("--add", metavar="PIECES",
                       help="pieces to add: JSONL {\"piece\": ..., \"freq\": ...} or one per line (add_mode: only = "
                            "instead of trained ones, with_trained = after them)")
        p.add_argument("--eval-text", action="append", default=[], metavar="LANG=PATH",
                       help="more held-out text of language LANG (file or folder; repeatable), e.g. "
                            "en=../shared/data/text/wikitext2/valid.txt")

    def configure(self, args) -> ExpandConfig:
        from lakesift.io import is_local, local_path
        from lakesift.vocab import VocabError, load_base, read_given

        cfg = super().configure(args)
        if args.text.strip() == "":
            raise ConfigError("--text: empty")
        if not is_name(args.text) and is_local(args.text) and not args.text.startswith("delta:") \
                and not os.path.exists(local_path(args.text)):
            raise ConfigError(f"--text {args.text}: no such file or folder")
        items = []
        for item in args.eval_text:
            lang, sep, path = item.partition("=")
            if not sep or not lang.strip() or not path.strip():
                raise ConfigError(f"--eval-text {item!r}: expected LANG=PATH")
            if is_local(path) and not os.path.exists(local_path(path)):
                raise ConfigError(f"--eval-text {item}: no such file or folder")
            items.append((lang.strip(), path.strip()))
        threads = cfg.threads or os.cpu_count() or 1
        try:
            base = load_base(args.base, threads)
            given = read_given(args.add) if args.add else []
        except VocabError as exc:
            raise ConfigError(str(exc)) from None
        except OSError as exc:
            raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
        args.request = Request(base, given, items)
        return cfg

    def run_config(self, ctx):
        return ctx.cfg.model_dump(mode="json")

    def run(self, ctx: Context) -> None:
        from lakesift import vocab
        from lakesift.io import is_local, local_path
        from lakesift.vocab import report as rep

        args, cfg, log = ctx.args, ctx.cfg, ctx.log
        req: Request = args.request
        base = req.base
        clock = time.perf_counter()
        times: dict[str, float] = {}
        ctx.input("base", base.path)
        if args.add:
            ctx.input("add", args.add)
        df, version = read_text(ctx, args.text, "--text", filters=True)
        ctx.output("vocabulary", args.out)
        fp = runs.fingerprint(cfg, hashlib.sha1(Path(base.path).read_bytes()).hexdigest(), req.given,
                              args.text, req.eval_texts)
        ctx.start(runs.run_id("expand_vocab", cfg.name, fp, {args.text: version} if version is not None else None),
                  base_kind=base.kind)

        t0 = time.perf_counter()
        smp = sample_text(ctx, df, args.text)
        evals = eval_texts(ctx, req.eval_texts)
        times["sampling"] = time.perf_counter() - t0
        chars = sum(len(t) for t in smp.train)
        log.info(kv(stage="sampling", docs=len(smp.train), chars=chars, heldout_docs=len(smp.heldout),
                    available_docs=smp.available_docs, eval_texts=len(evals), seconds=round(times["sampling"], 1)))

        t0 = time.perf_counter()
        given, dropped_before = vocab.given_candidates(base, req.given)
        trained = []
        if not req.given or cfg.add_mode == "with_trained":
            c = cfg.candidates
            try:
                trained = (base.train_candidates(smp.train, c.vocab_size, c.character_coverage, c.max_line_chars)
                           if base.kind == "sentencepiece" else
                           base.train_candidates(smp.train, c.vocab_size, c.min_pair_frequency))
            except vocab.VocabError as exc:
                raise UsageError(str(exc)) from None
        candidates, refused = vocab.select(base, trained, given, cfg.candidates.max_added)
        times["training"] = time.perf_counter() - t0
        log.info(kv(stage="candidates", trained=len(trained), given=len(given), candidates=len(candidates),
                    refused=len(dropped_before) + len(refused), seconds=round(times["training"], 1)))

        t0 = time.perf_counter()
        expansion = vocab.expand(base, candidates, smp.train, cfg.min_freq, log)
        expansion.dropped[:0] = dropped_before + refused
        times["reachability"] = time.perf_counter() - t0
        tok = expansion.tokenizer
        if not vocab.old_ids_unchanged(base, tok):
            raise RuntimeError("the expanded tokenizer changed an old id's piece (a bug: please report it)")

        t0 = time.perf_counter()
        held = heldout_by_language(smp.heldout, cfg.eval.detect_language)
        for lang, texts in evals.items():
            held.setdefault(lang, []).extend(texts)
        stats = rep.compression(held, base.base, tok)
        times["evaluation"] = time.perf_counter() - t0
        log.info(kv(stage="evaluation", languages=",".join(stats) or "-", seconds=round(times["evaluation"], 1),
                    **{f"{k}_tokens_per_char_ratio": v["tokens_per_char_ratio"] for k, v in stats.items()}))
        report = {
            "name": cfg.name, "run_id": ctx.run.id, "created_at": ctx.run.started_at.isoformat(),
            **rep.summary(base, expansion, cfg.pad_multiple),
            "old_ids_unchanged": True,
            "sample": {"text": args.text, "docs": len(smp.train), "chars": chars, "seed": cfg.seed,
                       "heldout_docs": len(smp.heldout), "heldout_chars": sum(len(t) for t, _ in smp.heldout),
                       "available_docs": smp.available_docs, "available_chars": smp.available_chars,
                       "languages": cfg.sample.languages, "sources": cfg.sample.sources},
            "heldout": stats,
        }
        not_worse = rep.english_not_worse(stats)
        if not_worse is not None:
            report["english_not_worse"] = not_worse
        parity_failed = None
        if base.kind == "sentencepiece":
            t0 = time.perf_counter()
            texts = [t for ts in held.values() for t in ts]
            report["parity"] = rep.parity(tok, tok.hf_json(), texts)
            report["parity"]["max_mismatched_docs"] = cfg.parity.max_mismatched_docs
            times["parity"] = time.perf_counter() - t0
            if report["parity"]["mismatched_docs"] > cfg.parity.max_mismatched_docs:
                ex = report["parity"]["examples"][0]
                parity_failed = (f"slow / fast parity: {report['parity']['mismatched_docs']} of {len(texts)} held-out "
                                 f"documents encode differently in SentencePiece and in tokenizer.json (allowed "
                                 f"{cfg.parity.max_mismatched_docs}); first at token {ex['position']}: "
                                 f"{ex['slow']} vs {ex['fast']}")

        t0 = time.perf_counter()
        out_local = local_path(args.out) if is_local(args.out) else tempfile.mkdtemp(prefix="lakesift-vocab-")
        report["seconds"] = {k: round(v, 2) for k, v in {**times, "total": time.perf_counter() - clock}.items()}
        rep.write_outputs(out_local, base, expansion, report)
        if not is_local(args.out):
            upload(out_local, args.out)
        log.info(kv(stage="writing", out=args.out, seconds=round(time.perf_counter() - t0, 1)))
        print_summary(cfg, args.out, report)
        ctx.run.summary.update(out=args.out, padded_vocab_size=report["padded_vocab_size"],
                               heldout={k: v["tokens_per_char_ratio"] for k, v in stats.items()})
        if parity_failed:
            raise RuntimeError(parity_failed)
        ctx.done(added=report["added"], dropped=sum(report["dropped"].values()), vocab_size=report["vocab_size"],
                 padded_vocab_size=report["padded_vocab_size"], english_not_worse=not_worse)


job = ExpandVocabJob()
main, parse_args = job.main, job.parse_args

if __name__ == "__main__":
    sys.exit(main())
