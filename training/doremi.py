"""DoReMi end to end: domain weights for a lake table, from a reference and a proxy model.

    python -m training.doremi run --lake LAKE --table TABLE --out OUT [--domain source] [--steps N]
    python -m training.doremi compare --out OUT [--steps N]          # main runs: baseline / uniform / DoReMi
    python -m training.doremi ref-losses --reference REF/final --data DATASET --out DATASET_WITH_REF
    (make doremi LAKE=… TABLE=… OUT=… [DOMAIN=source] [STEPS=n]; make doremi-compare OUT=… [STEPS=n])

``run``:

1. the dataset job (Spark) on ``TABLE``: one domain per value of the ``--domain`` column, one MDS
   stream per domain in ``OUT/data/domains/``, a natural-proportion validation set in
   ``OUT/data/validation/``, and ``OUT/data/reference_weights.json`` (token shares);
2. the reference model on the natural mixture (``OUT/reference``);
3. the proxy (``--objective doremi``) on the uniform mixture against that reference (``OUT/proxy``);
4. ``OUT/domain_weights.json`` (DoReMi's config format: the averaged weights under
   ``train_domain_weights``; ``python -m training.train --mix OUT/domain_weights.json`` and the dataset
   job's ``mixing.weights_file`` read it), ``OUT/doremi_trajectory.jsonl`` (weights and lambda per step
   and domain) and ``OUT/doremi.html`` (their plots).

``compare`` trains one model per mixture for the same number of steps and seed (natural = the
token-share baseline, uniform = the stratified baseline that later work found hard to beat, and the
DoReMi weights), scores each on the same validation set (per domain, average and worst perplexity;
``training.domain_eval``), prints the table and writes ``OUT/comparison.json``.

Each stage that finished is kept: a rerun with the same ``OUT`` resumes or skips it (``--force``
redoes the data). Training runs under ``torchrun`` with ``--nproc N``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], what: str) -> None:
    """Run one stage as its own process (Spark and torch each get a fresh one); stop on failure."""
    print(f"doremi: {what}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    rc = subprocess.call(cmd, cwd=REPO, env=env)
    if rc:
        raise SystemExit(f"doremi: {what} failed (exit {rc})")
    print(f"doremi: {what} done in {time.perf_counter() - t0:.0f} s", flush=True)


def train_cmd(args, *extra: str) -> list[str]:
    if args.nproc > 1:
        head = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}"]
    else:
        head = [sys.executable]
    cmd = [*head, "-m", "training.train", "--scale", args.scale, "--seed", str(args.seed),
           "--log-every", str(args.log_every), *extra]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    if args.global_batch:
        cmd += ["--global-batch", str(args.global_batch)]
    if args.micro_batch:
        cmd += ["--micro-batch", str(args.micro_batch)]
    return cmd


def dataset_config(args, seq_len: int) -> dict:
    """The dataset job's config for ``--table``: ``conf/tokenize/domains.yaml`` with the table, the
    domain column, the scale's context and the validation share filled in."""
    import yaml

    cfg = yaml.safe_load((REPO / "conf" / "tokenize" / "domains.yaml").read_text(encoding="utf-8"))
    cfg["name"] = f"doremi-{args.table}"
    cfg["sources"] = [{"name": args.table, "table": args.table}]
    cfg["domains"] = {**cfg.get("domains", {}), "by": "column", "column": args.domain, "layout": "streams",
                      "validation": {**cfg.get("domains", {}).get("validation", {}), "fraction": args.validation}}
    cfg.setdefault("packing", {})["seq_len"] = seq_len
    cfg.setdefault("decontamination", {})["if_missing"] = "skip"
    return cfg


def cmd_run(args) -> int:
    import yaml

    from training.config import load_scale

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    scale = load_scale(args.scale)
    if args.force or not (data / "manifest.json").exists():
        conf = out / "dataset.yaml"
        conf.write_text(yaml.safe_dump(dataset_config(args, scale.model.seq_len), sort_keys=False), encoding="utf-8")
        cmd = [sys.executable, "-m", "jobs.dataset", "--config", str(conf), "--lake", args.lake, "--out", str(data)]
        if args.tokenizer:
            cmd += ["--tokenizer", args.tokenizer]
        sh(cmd, "data (domains, streams, validation set)")
    else:
        print(f"doremi: data: {data} exists (--force rewrites it)")
    domains = json.loads((data / "manifest.json").read_text())["domains"]
    print(f"doremi: {len(domains)} domain(s): {', '.join(sorted(domains))}")
    if len(domains) < 2:
        raise SystemExit(f"doremi: the {args.domain!r} column of {args.table} gives {len(domains)} domain; "
                         "DoReMi weighs two or more (choose another --domain)")
    sh(train_cmd(args, "--data", str(data), "--mix", "natural", "--out", str(out / "reference")),
       "reference model (natural mixture)")
    proxy = ["--data", str(data), "--mix", "uniform", "--out", str(out / "proxy"), "--objective", "doremi",
             "--reference", str(out / "reference" / "final"), "--doremi-eta", str(args.eta),
             "--doremi-smoothing", str(args.smoothing)]
    sh(train_cmd(args, *proxy), "proxy model (DoReMi, uniform mixture)")
    for name in ("domain_weights.json", "doremi_trajectory.jsonl"):
        shutil.copyfile(out / "proxy" / name, out / name)
    weights = json.loads((out / "domain_weights.json").read_text())
    ref = json.loads((data / "reference_weights.json").read_text())["train_domain_weights"]
    print(f"\n{'domain':<24} {'reference':>10} {'doremi':>10}")
    for d in sorted(weights["train_domain_weights"]):
        print(f"{d:<24} {ref.get(d, 0.0):>10.4f} {weights['train_domain_weights'][d]:>10.4f}")
    report(out)
    print(f"\ndomain weights: {out / 'domain_weights.json'}; trajectory: {out / 'doremi_trajectory.jsonl'}")
    return 0


def report(out: Path) -> None:
    """``OUT/doremi.html``: the trajectory and, after ``compare``, the perplexity table."""
    try:
        from lakesift import doremi_report
    except ImportError:  # the page is optional
        return
    (out / "doremi.html").write_text(doremi_report.page(doremi_report.load(out)), encoding="utf-8")
    print(f"doremi: plots: {out / 'doremi.html'}")


def cmd_compare(args) -> int:
    from training.domain_eval import evaluate, validation_dataset
    from training.export import load

    out = Path(args.out)
    data = out / "data"
    mixes = {"baseline": "natural", "uniform": "uniform", "doremi": str(out / "domain_weights.json")}
    results, val = {}, validation_dataset(str(data))
    for name, mix in mixes.items():
        run = out / "main" / name
        sh(train_cmd(args, "--data", str(data), "--mix", mix, "--out", str(run)), f"main model ({name} mixture)")
        meta = json.loads(sorted(run.glob("step-*/meta.json"), key=lambda p: int(p.parent.name[5:]))[-1].read_text())
        results[name] = {"mix": mix, "tokens_seen": meta["tokens_seen"], "steps": meta["step"],
                         "weights": weights_of(data, mix),
                         "validation": evaluate(load(run / "final"), val, max_sequences=args.max_val)}
    comparison = {"steps": results["baseline"]["steps"], "tokens": results["baseline"]["tokens_seen"],
                  "runs": results}
    (out / "comparison.json").write_text(json.dumps(comparison, indent=1), encoding="utf-8")
    print_comparison(comparison)
    report(out)
    return 0


def weights_of(data: Path, mix: str) -> dict[str, float]:
    from training.data import domain_folders, mix_weights, read_manifest

    manifest = read_manifest(str(data))
    domains = sorted(domain_folders(manifest))
    w = mix_weights(mix, domains)
    if w:
        return w
    m = manifest["domains"]  # natural: the token shares written
    total = sum(m[d]["tokens"] for d in domains) or 1
    return {d: m[d]["tokens"] / total for d in domains}


def print_comparison(c: dict) -> None:
    runs = c["runs"]
    domains = sorted(next(iter(runs.values()))["validation"]["domains"])
    print(f"\nvalidation perplexity after {c['steps']} steps ({c['tokens']:,} tokens) per run; lower is better")
    head = f"{'run':<10}" + "".join(f" {d[:14]:>14}" for d in domains) + f" {'average':>10} {'worst':>10} {'natural':>10}"
    print(head)
    for name, r in runs.items():
        v = r["validation"]
        print(f"{name:<10}" + "".join(f" {v['domains'][d]['ppl']:>14.2f}" for d in domains)
              + f" {v['average_ppl']:>10.2f} {v['worst_ppl']:>10.2f} {v['natural']['ppl']:>10.2f}")
    best = min(runs, key=lambda n: runs[n]["validation"]["average_ppl"])
    print(f"lowest average perplexity: {best}")


def cmd_ref_losses(args) -> int:
    """Write the dataset's domain streams again with the reference's per-token losses (``ref_loss``,
    float16, one per target token) beside the tokens, so a proxy run needs no reference forward."""
    import numpy as np
    import torch
    from streaming import MDSWriter, StreamingDataset

    from training.data import domain_folders, read_manifest
    from training.export import load
    from training.objectives.doremi import token_losses

    manifest = read_manifest(args.data)
    folders = domain_folders(manifest)
    if not folders:
        raise SystemExit(f"{args.data}: no domain streams (domains.layout: streams)")
    model = load(args.reference)
    seq = model.cfg.seq_len
    out = Path(args.out)
    for d, folder in folders.items():
        ds = StreamingDataset(local=os.path.join(args.data, folder), shuffle=False, batch_size=1)
        first = ds[0]
        cols = {k: ("str" if isinstance(v, str) else "int64" if isinstance(v, int | np.integer) else
                    f"ndarray:{v.dtype}:{v.shape[0]}") for k, v in first.items()}
        cols["ref_loss"] = f"ndarray:float16:{seq}"
        with MDSWriter(out=str(out / folder), columns=cols, size_limit=args.size_limit) as w, torch.no_grad():
            for start in range(0, ds.num_samples, args.batch_size):
                samples = [ds[i] for i in range(start, min(ds.num_samples, start + args.batch_size))]
                tokens = torch.from_numpy(np.stack([s["tokens"][: seq + 1] for s in samples]).astype(np.int64))
                nll = token_losses(model, tokens)[0]
                for s, row in zip(samples, nll.numpy().astype(np.float16), strict=True):
                    w.write({**s, "ref_loss": row})
        print(f"ref-losses: {d}: {ds.num_samples:,} sequences -> {out / folder}")
    (out / "manifest.json").write_text(json.dumps({**manifest, "reference_losses": str(args.reference)}, indent=1))
    return 0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m training.doremi", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:6]))
    sub = p.add_subparsers(dest="cmd", required=True)

    def training_flags(q):
        q.add_argument("--out", required=True, help="the DoReMi folder (data, runs, weights)")
        q.add_argument("--scale", default="debug-tiny", help="model scale of every run (default debug-tiny)")
        q.add_argument("--steps", type=int, help="optimizer steps of each run (default: the scale's budget)")
        q.add_argument("--global-batch", type=int, help="sequences per step (default: the scale's); DoReMi wants "
                                                        "every domain in most batches")
        q.add_argument("--micro-batch", type=int)
        q.add_argument("--seed", type=int, default=42, help="the same seed for every run (default 42)")
        q.add_argument("--nproc", type=int, default=1, help="processes per run under torchrun (default 1)")
        q.add_argument("--log-every", type=int, default=25)

    r = sub.add_parser("run", help="data side, reference and proxy runs, domain_weights.json")
    training_flags(r)
    r.add_argument("--lake", required=True)
    r.add_argument("--table", required=True, help="the lake table to weigh (e.g. documents, deduped)")
    r.add_argument("--domain", default="source", help="the column whose values are the domains (default source)")
    r.add_argument("--tokenizer", help="tokenizer file / folder / hub id (default: conf/tokenize/domains.yaml's)")
    r.add_argument("--validation", type=float, default=0.1, help="share of sequences held out (default 0.1)")
    r.add_argument("--eta", type=float, default=1.0, help="DoReMi step size (default 1.0)")
    r.add_argument("--smoothing", type=float, default=1e-3, help="DoReMi smoothing (default 1e-3)")
    r.add_argument("--force", action="store_true", help="rewrite the data even when OUT/data exists")
    c = sub.add_parser("compare", help="main runs on the baseline, uniform and DoReMi mixtures, scored alike")
    training_flags(c)
    c.add_argument("--max-val", type=int, help="score at most N validation sequences")
    f = sub.add_parser("ref-losses", help="precompute the reference's per-token losses beside the tokens")
    f.add_argument("--reference", required=True, help="the reference model's final/ folder")
    f.add_argument("--data", required=True, help="a dataset with domain streams")
    f.add_argument("--out", required=True, help="where to write the copy with ref_loss")
    f.add_argument("--batch-size", type=int, default=16)
    f.add_argument("--size-limit", default="64mb")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from lakesift.io import is_local, local_path

    # the stages run with the repository as their working folder: local paths made absolute first
    args.out = os.path.abspath(args.out)
    for name in ("lake", "data", "reference", "tokenizer"):
        v = getattr(args, name, None)
        if v and is_local(v) and (name != "tokenizer" or os.path.exists(v)):
            setattr(args, name, os.path.abspath(local_path(v)))
    return {"run": cmd_run, "compare": cmd_compare, "ref-losses": cmd_ref_losses}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
