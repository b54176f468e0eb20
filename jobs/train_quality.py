"""Train a fastText quality classifier (DCLM's recipe by default) from lake tables and files.

    spark-submit jobs/train_quality.py --positive SRC... --negative SRC... --out MODEL_DIR \\
        [--config conf/quality/dclm.yaml] [--lake LAKE] [--per-class N] [--seed S] [--set KEY=VALUE]

A source is one of:
* a table of the lake by name (``filtered``: ``LAKE/filtered``) or a Delta table path / URI;
* ``.jsonl`` / ``.json`` (``.gz``) or ``.parquet`` files, folders or globs (column ``sources.text_column``);
* plain-text files, folders, globs or ``.zip`` archives of them, cut into documents by
  ``sources.text_unit`` (``file``, ``paragraph``, ``line`` or ``chunk`` of ``chunk_chars``).

Spark reads and samples the sources (``per_class`` per class, chosen by a seeded hash, so the same
seed gives the same sample on any cluster); a seeded hash also holds out ``valid_fraction``. The
driver streams the sample into fastText's input format and trains (fastText is a single-machine C++
trainer; 200k pages take minutes). ``MODEL_DIR`` gets ``model.bin``, ``quality.yaml`` (the resolved
config, including the text normalisation inference must use) and ``metrics.json`` (held-out ROC-AUC,
precision / recall / F1 at each reported threshold, score distribution per class). ``MODEL_DIR`` may
be a cloud URI; the files are written locally and uploaded.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from jobs.common import runs
from jobs.common.job import Context, Job
from jobs.common.lake import table_exists
from lakesift.config import ConfigError
from lakesift.log import kv
from udfs.quality_train import TrainConfig


def read_source(spark, src: str, cfg, lake):
    """One source as a DataFrame with a single ``text`` column."""
    df, already_cut = _read_source(spark, src, cfg, lake)
    if cfg.sources.split_tables and not already_cut:
        unit, chunk, min_chars = cfg.sources.text_unit, cfg.sources.chunk_chars, cfg.sources.min_chars

        def cut_rows(batches):
            import pandas as pd

            from udfs.quality_train import split_units

            for pdf in batches:
                rows = [u for t in pdf["text"] if isinstance(t, str) for u in split_units(t, unit, chunk, min_chars)]
                yield pd.DataFrame({"text": pd.Series(rows, dtype=object)})

        df = df.mapInPandas(cut_rows, "text string")
    return df


def _read_source(spark, src: str, cfg, lake):
    from pyspark.sql import functions as F

    from lakesift.io import is_local, local_path

    opts = cfg.sources
    if "/" not in src and ":" not in src and not os.path.exists(src):
        uri = lake.path(src)
        if not table_exists(spark, uri):
            raise ConfigError(f"source {src!r}: no table {src} in the lake {lake.root}")
        return spark.read.format("delta").load(uri).select(F.col(opts.text_column).alias("text")), False
    uri = src.removeprefix("delta:")
    if src.startswith("delta:") or table_exists(spark, uri):
        return spark.read.format("delta").load(uri).select(F.col(opts.text_column).alias("text")), False
    low = src.lower().rstrip("/")
    if is_local(src) and not any(c in src for c in "*?[") and not os.path.exists(local_path(src)):
        raise ConfigError(f"source {src!r}: no such file or folder")
    if low.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz", ".ndjson")):
        return spark.read.json(src).select(F.col(opts.text_column).cast("string").alias("text")), False
    if low.endswith(".parquet") or (is_local(src) and os.path.isdir(local_path(src))
                                    and any(Path(local_path(src)).glob("*.parquet"))):
        return spark.read.parquet(src).select(F.col(opts.text_column).cast("string").alias("text")), False
    # plain text files / zips: one Spark task per file, cut into units there
    files = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(src).select("path", "content")
    from udfs.quality_train import units_task

    return files.mapInPandas(units_task(opts.text_unit, opts.chunk_chars, opts.min_chars), "text string"), True


def union_sources(spark, srcs: list[str], cfg, lake):
    df = None
    for s in srcs:
        part = read_source(spark, s, cfg, lake)
        df = part if df is None else df.unionByName(part)
    return df.filter("text IS NOT NULL")


def upload_folder(local_dir: str, uri: str) -> None:
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri)
    fs.makedirs(root, exist_ok=True)
    for name in os.listdir(local_dir):
        fs.put(os.path.join(local_dir, name), f"{root.rstrip('/')}/{name}")


def labelled_sample(ctx: Context, cfg):
    """Both classes read, sampled (``per_class`` by a seeded hash; balanced when asked) and split into
    train / held-out by another seeded hash; returns (sample, all labelled rows, available counts), both
    frames cached: unpersist them."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    pos = union_sources(ctx.spark, ctx.args.positive, cfg, ctx.lake)
    neg = union_sources(ctx.spark, ctx.args.negative, cfg, ctx.lake)
    seed = cfg.seed
    labelled = (pos.withColumn("y", F.lit(1)).unionByName(neg.withColumn("y", F.lit(0)))
                .filter(F.length(F.trim("text")) > 0)
                .withColumn("_h", F.xxhash64(F.lit(seed), "y", "text"))
                .persist())
    counts = {r.y: r.n for r in labelled.groupBy("y").agg(F.count("*").alias("n")).collect()}
    n_pos, n_neg = counts.get(1, 0), counts.get(0, 0)
    if not n_pos or not n_neg:
        labelled.unpersist()
        raise ConfigError(f"need examples of both classes (positive {n_pos}, negative {n_neg})")
    take = {1: n_pos, 0: n_neg}
    if cfg.balance:
        take = {1: min(n_pos, n_neg), 0: min(n_pos, n_neg)}
    if cfg.per_class:
        take = {y: min(n, cfg.per_class) for y, n in take.items()}
    # the `take[y]` smallest hashes of each class: a seeded sample that does not depend on partitioning
    ranked = labelled.withColumn("_r", F.row_number().over(Window.partitionBy("y").orderBy("_h", "text")))
    sample = ranked.filter(((F.col("y") == 1) & (F.col("_r") <= take[1]))
                           | ((F.col("y") == 0) & (F.col("_r") <= take[0])))
    buckets = 10_000
    held = F.pmod(F.xxhash64(F.lit(seed + 1), "text"), F.lit(buckets)) < int(cfg.valid_fraction * buckets)
    return sample.withColumn("_valid", held).persist(), labelled, n_pos, n_neg


def write_model(ctx: Context, cfg, hp, out_local: str, metrics: dict) -> None:
    """``metrics.json`` and ``quality.yaml`` beside ``model.bin``; uploaded when ``--out`` is a URI."""
    import yaml

    from lakesift.io import is_local
    from udfs import quality, quality_train

    args = ctx.args
    quality_train.save_json(os.path.join(out_local, quality.METRICS_FILE), metrics)
    resolved = cfg.model_dump()
    resolved["hyperparameters"] = hp.model_dump()
    resolved["trained_on"] = {"positive": args.positive, "negative": args.negative, "lake": args.lake}
    Path(out_local, quality.CONFIG_FILE).write_text(
        "# written by jobs/train_quality.py; inference reads `normalization` and `labels` from here\n"
        + yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
    if not is_local(args.out):
        upload_folder(out_local, args.out)


def print_metrics(cfg, out: str, metrics: dict, train_seconds: float) -> None:
    v = metrics["valid"]
    print(f"\n=== quality classifier {cfg.name} -> {out} ===")
    print(f"train: {metrics['train']['positive']} positive, {metrics['train']['negative']} negative "
          f"({train_seconds:.1f} s)")
    if v:
        print(f"held-out: {v['positives']} positive, {v['negatives']} negative, ROC-AUC {v['roc_auc']:.4f}")
        for m in v["at_threshold"]:
            print(f"  p(hq) >= {m['threshold']:<9g} precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
                  f"F1 {m['f1']:.3f}  kept {100 * m['kept_fraction']:.1f}%")
        for cls in ("positive", "negative"):
            q = v["scores"][cls].get("quantiles", {})
            if q:
                print(f"  p(hq) of {cls:8s}: p10 {q['p10']:.3f}  median {q['p50']:.3f}  p90 {q['p90']:.3f}")


class TrainQualityJob(Job):
    name, prog = "train_quality", "jobs/train_quality.py"
    description = "Train a fastText quality classifier: positive (reference-quality) vs negative (web) text."
    epilog = ("Example: python jobs/train_quality.py --lake ./lake --positive sample/text/hq "
              "--negative documents sample/text/cc --out ./lake/models/quality --config conf/quality/demo.yaml")
    config_model, config_required = TrainConfig, False
    config_help = ("classifier recipe YAML, e.g. conf/quality/dclm.yaml (DCLM's) or conf/quality/demo.yaml "
                   "(default: the built-in defaults of udfs.quality_train.TrainConfig)")
    sets_help = "override a config key, e.g. --set hyperparameters.epoch=3 (VALUE is YAML; repeatable)"

    def add_arguments(self, p):
        p.add_argument("--positive", nargs="+", required=True, metavar="SRC", help="sources of the positive class")
        p.add_argument("--negative", nargs="+", required=True, metavar="SRC", help="sources of the negative class")
        p.add_argument("--out", required=True, help="model folder (local path or cloud URI)")
        p.add_argument("--per-class", type=int, help="examples per class (overrides per_class)")
        p.add_argument("--seed", type=int, help="sampling / split / training seed (overrides seed)")

    def overrides(self, args):
        return {"per_class": args.per_class, "seed": args.seed}

    def run_config(self, ctx):
        return ctx.cfg.model_dump(mode="json")

    def run(self, ctx: Context) -> None:
        from pyspark.sql import functions as F

        from lakesift.io import is_local, local_path
        from udfs import quality, quality_train

        args, cfg = ctx.args, ctx.cfg
        for src in (*args.positive, *args.negative):
            ctx.input(src, src)
        ctx.output("quality_model", args.out)
        ctx.start(runs.run_id("train_quality", cfg.name, runs.fingerprint(cfg)), config=args.config or "defaults")
        t0 = time.perf_counter()
        sample, labelled, n_pos, n_neg = labelled_sample(ctx, cfg)
        seed = cfg.seed
        work = tempfile.mkdtemp(prefix="lakesift-quality-")
        out_local = local_path(args.out) if is_local(args.out) else tempfile.mkdtemp(prefix="lakesift-model-")
        os.makedirs(out_local, exist_ok=True)
        train_file = os.path.join(work, "train.txt")
        # a seeded shuffle of the training lines (fastText's SGD sees them in file order)
        train_rows = ((r.y, r.text) for r in sample.filter(~F.col("_valid"))
                      .orderBy(F.xxhash64(F.lit(seed + 2), "text"), "text").select("y", "text").toLocalIterator())
        n_train = quality_train.write_training_file(train_file, train_rows, cfg.labels, cfg.normalization)
        valid_rows = [(r.y, r.text) for r in sample.filter("_valid").orderBy("_h").select("y", "text").collect()]
        per_split = {(r._valid, r.y): r.n for r in sample.groupBy("_valid", "y").agg(F.count("*").alias("n")).collect()}
        ctx.log.info(kv(positives_available=n_pos, negatives_available=n_neg, train_lines=n_train,
                        valid=len(valid_rows), seconds_reading=round(time.perf_counter() - t0, 1)))
        labelled.unpersist()
        sample.unpersist()
        if n_train == 0:
            raise ConfigError("no training lines after normalisation")
        t1 = time.perf_counter()
        hp = cfg.hyperparameters
        hp = hp.model_copy(update={"seed": seed}) if hp.seed == 0 else hp
        model = quality_train.train(train_file, hp, os.path.join(out_local, quality.MODEL_FILE))
        train_seconds = time.perf_counter() - t1
        metrics = {
            "name": cfg.name, "created_at": ctx.run.started_at.isoformat(), "train_seconds": round(train_seconds, 2),
            "available": {"positive": n_pos, "negative": n_neg},
            "train": {"positive": per_split.get((False, 1), 0), "negative": per_split.get((False, 0), 0),
                      "lines": n_train},
            "valid": quality_train.evaluate(model, valid_rows, cfg.labels, cfg.normalization, cfg.report_thresholds)
            if valid_rows else None,
        }
        write_model(ctx, cfg, hp, out_local, metrics)
        print_metrics(cfg, args.out, metrics, train_seconds)
        v = metrics["valid"]
        ctx.run.summary.update(out=args.out, roc_auc=v["roc_auc"] if v else None)
        ctx.done(train_lines=n_train, roc_auc=round(v["roc_auc"], 4) if v and v.get("roc_auc") is not None else None)


job = TrainQualityJob()
main, parse_args = job.main, job.parse_args

if __name__ == "__main__":
    sys.exit(main())
