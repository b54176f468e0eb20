"""``make sft`` / ``make dpo``: post-train a model on instruction or preference data, from the raw files (or a
lake table, or a built dataset) to the trained model.

    python -m training.posttrain sft --base BASE --data DATA --out OUT [--steps N] [--lr X] [--batch N]
    python -m training.posttrain dpo --base BASE --data DATA --out OUT [--steps N] [--lr X] [--batch N] [--beta 0.1]

BASE: one of our checkpoints (an export folder such as a run's ``final/``, or a training checkpoint
``step-N``), a Hugging Face causal-LM folder, or a hub id. DATA, by what it is:

* JSONL / Parquet files (or a folder of them) in the conversational shapes (OpenAI ``messages``, ShareGPT,
  Alpaca; preferences ``prompt`` / ``chosen`` / ``rejected``, ``reject`` accepted): imported into the Delta
  table ``sft_examples`` / ``preferences`` of ``OUT/lake`` (``jobs/instruct.py import``; broken rows go to
  ``instruct_rejects`` with their reason), then built;
* the name of such a table in ``--lake`` (or a Delta path): built (``jobs/instruct.py build``: chat template,
  tokens, loss mask, decontamination, MDS in ``OUT/data``);
* a dataset that build wrote (an MDS folder with ``manifest.json`` of kind sft / dpo): used as it is.

Then the trainer (``python -m training.train --objective sft|dpo``, under ``torchrun`` with ``--nproc N``;
checkpoints, ``metrics.jsonl``, TensorBoard in OUT; a rerun with the same OUT resumes) and the final model in
``OUT/final`` with its tokenizer and chat template; for a Hugging Face base the model is in ``OUT/hf``
(``AutoModelForCausalLM`` / ``AutoTokenizer`` load it; ``OUT/final`` links to it). ``OUT/posttrain.json``
records what ran. The tokenizer is the base's own (its folder's ``tokenizer.json``); give ``--tokenizer``
for a checkpoint that has none beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TABLES = {"sft": "sft_examples", "dpo": "preferences"}
IMPORT_KIND = {"sft": "sft", "dpo": "preferences"}
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


def say(msg: str) -> None:
    print(f"posttrain: {msg}", flush=True)


def sh(cmd: list[str], what: str) -> None:
    """Run one stage as its own process; stop on failure."""
    say(f"{what}: {' '.join(cmd)}")
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    rc = subprocess.call(cmd, cwd=REPO, env=env)
    if rc:
        raise SystemExit(f"posttrain: {what} failed (exit {rc})")
    say(f"{what} done in {time.perf_counter() - t0:.0f} s")


def spark_job(argv: list[str], what: str) -> None:
    """A Spark job of ``jobs/instruct.py`` in this process (one Spark session for all of a command's jobs)."""
    from jobs import instruct

    say(f"{what}: jobs/instruct.py {' '.join(argv)}")
    t0 = time.perf_counter()
    rc = instruct.main(argv)
    if rc:
        raise SystemExit(f"posttrain: {what} failed (exit {rc})")
    say(f"{what} done in {time.perf_counter() - t0:.0f} s")


def add_common(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("--base", required=True,
                   help="our checkpoint (export folder / step-N), a Hugging Face model folder, or a hub id")
    p.add_argument("--data", required=True,
                   help="JSONL / Parquet file(s) or folder, a table of --lake, or a built dataset (MDS folder)")
    p.add_argument("--out", required=True, help="output folder: data, checkpoints, logs, the final model")
    p.add_argument("--steps", type=int, help="optimizer steps (default: --epochs over the data)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the data when --steps is not given (1)")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default conf/scales/{kind}.yaml's)")
    p.add_argument("--batch", type=int, help=f"global batch: {'sequences' if kind == 'sft' else 'pairs'} per "
                                             f"optimizer step (default conf/scales/{kind}.yaml's)")
    p.add_argument("--micro-batch", type=int, help="per forward per rank (default: the scale's, fitted to --batch)")
    p.add_argument("--scale", default=str(REPO / "conf" / "scales" / f"{kind}.yaml"),
                   help=f"hyper-parameters (default conf/scales/{kind}.yaml)")
    p.add_argument("--tokenizer", help="tokenizer folder / tokenizer.json / hub id (default: the base's own)")
    p.add_argument("--template", help="a Jinja chat template file (default: the tokenizer's, else Lakesift's)")
    p.add_argument("--seq-len", type=int, default=1024, help="tokens per sequence when building (1024)")
    p.add_argument("--lake", help="the lake of a DATA table (default OUT/lake, where files are imported)")
    p.add_argument("--where", help="SQL filter on the table's rows when building (e.g. \"round <= 2\")")
    p.add_argument("--eval-dir", help="evaluation task files to decontaminate against (default: the build's)")
    p.add_argument("--nproc", type=int, default=1, help="processes (torchrun) for training (1)")
    p.add_argument("--seed", type=int, default=42, help="data order and build seed (42)")
    p.add_argument("--log-every", type=int, default=10, help="a log line every N steps (10)")
    p.add_argument("--ckpt-every", type=int, default=1000, help="checkpoint every N steps, and at the end (1000)")
    if kind == "sft":
        p.add_argument("--packing", choices=("bfd", "pad"), default="bfd",
                       help="bfd: examples packed whole into sequences, attention within each example (default); "
                            "pad: one example per sequence")
        p.add_argument("--mask", choices=("assistant", "last", "all"), default="assistant",
                       help="which tokens carry loss: every assistant turn (default), the last one, all")
    else:
        p.add_argument("--beta", type=float, default=0.1, help="DPO beta (0.1)")
        p.add_argument("--dpo-loss", default="sigmoid", help="sigmoid (DPO, default), ipo or hinge")
        p.add_argument("--reference", help="the frozen reference model (default: BASE)")
        p.add_argument("--rpo-alpha", type=float, default=0.0,
                       help="add alpha x the chosen responses' NLL to the DPO loss (RPO; default 0: plain DPO)")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m training.posttrain", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Subcommands: sft, dpo (this file), loop (training/posttrain/loop.py).")
    sub = p.add_subparsers(dest="cmd", required=True)
    for kind in ("sft", "dpo"):
        add_common(sub.add_parser(kind, help=f"{kind.upper()} on a dataset", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter), kind)
    from training.posttrain import loop

    loop.add_arguments(sub.add_parser("loop", help="the iterative SFT -> DPO loop", description=loop.__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter))
    return p.parse_args(argv)


def data_kind(data: str) -> str:
    """``mds`` (a built dataset), ``files`` (JSONL / Parquet) or ``table`` (a lake table or Delta path)."""
    p = Path(data)
    if p.is_dir() and (p / "manifest.json").is_file() and (p / "index.json").is_file():
        return "mds"
    if p.is_file() and p.name.endswith(DATA_SUFFIXES):
        return "files"
    if p.is_dir() and not (p / "_delta_log").is_dir() and any(
            f.name.endswith(DATA_SUFFIXES) for f in p.rglob("*") if f.is_file()):
        return "files"
    if p.is_file():
        raise SystemExit(f"--data {data}: expected .jsonl(.gz), .json or .parquet")
    return "table"


def base_tokenizer(base: str) -> str | None:
    """The tokenizer that travels with BASE: its folder when it holds ``tokenizer.json``, a hub id as it is."""
    from training.start import inspect

    start = inspect(base)
    p = Path(start.path or base)
    for folder in (p, p.parent):  # a checkpoint step-N: its run folder's final/ is a sibling, not a parent
        if (folder / "tokenizer.json").is_file():
            return str(folder)
    if start.kind == "hf" and not p.exists():
        return base  # a hub id
    return None


def build_data(kind: str, args, out: Path, tokenizer: str) -> Path:
    """The MDS dataset to train on (imported and built as DATA needs); its folder."""
    what = data_kind(args.data)
    if what == "mds":
        man = json.loads((Path(args.data) / "manifest.json").read_text())
        if man.get("kind") != kind:
            raise SystemExit(f"--data {args.data} is a {man.get('kind')!r} dataset; {kind} needs kind {kind!r}")
        return Path(args.data)
    lake = args.lake or str(out / "lake")
    table = args.data
    if what == "files":
        src = Path(args.data).name.split(".")[0] or "data"
        spark_job(["import", "--kind", IMPORT_KIND[kind], "--input", args.data, "--lake", lake, "--source", src,
                   "--mode", "overwrite" if not args.lake else "append"], f"import {args.data}")
        table = TABLES[kind]
    data = out / "data"
    argv = ["build", "--kind", kind, "--lake", lake, "--table", table, "--out", str(data), "--tokenizer", tokenizer,
            "--seq-len", str(args.seq_len), "--seed", str(args.seed)]
    if kind == "sft":
        argv += ["--packing", args.packing, "--mask", args.mask]
    for flag, value in (("--template", args.template), ("--eval-dir", args.eval_dir), ("--where", args.where)):
        if value:
            argv += [flag, value]
    spark_job(argv, f"build the {kind} dataset")
    return data


def samples_of(manifest: dict) -> int:
    counts = manifest.get("counts", {})
    return int(counts.get("sequences") or counts.get("written") or 0)


def write_scale(kind: str, args, seq_len: int, out: Path) -> tuple[Path, int, int]:
    """OUT/scale.yaml: the kind's scale with the data's sequence length and the batch fitted to the ranks;
    (its path, global batch, micro batch)."""
    import yaml

    conf = yaml.safe_load(Path(args.scale).read_text(encoding="utf-8"))
    conf["model"]["seq_len"] = seq_len
    batch = args.batch or conf["global_batch"]
    micro = args.micro_batch or conf["micro_batch"]
    per_rank = batch // args.nproc
    if batch % args.nproc or per_rank == 0:
        raise SystemExit(f"--batch {batch} is not a multiple of --nproc {args.nproc}")
    micro = max(m for m in range(1, min(micro, per_rank) + 1) if per_rank % m == 0)
    conf.update(global_batch=batch, micro_batch=micro, name=f"{conf.get('name', kind)}")
    if args.lr:
        conf["lr"] = args.lr
    path = out / "scale.yaml"
    path.write_text(yaml.safe_dump(conf, sort_keys=False), encoding="utf-8")
    return path, batch, micro


def train_cmd(nproc: int) -> list[str]:
    if nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                "-m", "training.train"]
    return [sys.executable, "-m", "training.train"]


def finish(out: Path, base: str, tokenizer: str, template: str) -> Path:
    """The final model with its tokenizer and chat template beside it; a Hugging Face one moved to OUT/hf
    (OUT/final links to it). Returns the folder."""
    from training import hf
    from training.start import inspect

    final = out / "final"
    if final.is_symlink():  # a rerun: the export went through the link into OUT/hf
        final = out / "hf"
    if not (final / "tokenizer.json").is_file():
        from lakesift.resolve import resolve

        hf.write_tokenizer(resolve(tokenizer, "model", bare_hub_ids=True) if not Path(tokenizer).exists()
                           else tokenizer, final)
    conf_path = final / "tokenizer_config.json"
    conf = json.loads(conf_path.read_text()) if conf_path.is_file() else {}
    if not conf.get("chat_template"):
        conf["chat_template"] = template  # the one the data was rendered with, so chat() agrees with training
        conf_path.write_text(json.dumps(conf, indent=1, ensure_ascii=False))
    if inspect(base).hf is None or final.name == "hf":
        return final
    target = out / "hf"
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    final.rename(target)
    final.symlink_to("hf")
    return target


def run(kind: str, args) -> dict:
    """Build (as needed) and train one SFT or DPO run; the record written to OUT/posttrain.json."""
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = args.tokenizer or base_tokenizer(args.base)
    if tokenizer is None:
        raise SystemExit(f"--base {args.base} has no tokenizer.json beside it: give --tokenizer (TOKENIZER=)")
    data = build_data(kind, args, out, tokenizer)
    manifest = json.loads((data / "manifest.json").read_text())
    n = samples_of(manifest)
    if n == 0:
        raise SystemExit(f"posttrain: {data} holds no {'sequences' if kind == 'sft' else 'pairs'} to train on "
                         f"(see its manifest.json and the lake's instruct_rejects)")
    if (args.batch or 0) > n or (not args.batch and n < 8):
        fit = max(args.nproc, n - n % args.nproc)
        say(f"{kind}: only {n} {'sequences' if kind == 'sft' else 'pairs'}: global batch {fit}")
        args = argparse.Namespace(**{**vars(args), "batch": fit})
    scale, batch, micro = write_scale(kind, args, int(manifest["seq_len"]), out)
    steps = args.steps or max(1, math.ceil(args.epochs * n / batch))
    cmd = [*train_cmd(args.nproc), "--objective", kind, "--scale", str(scale), "--init-from", args.base,
           "--data", str(data), "--out", str(out), "--steps", str(steps), "--seed", str(args.seed),
           "--log-every", str(args.log_every), "--ckpt-every", str(args.ckpt_every)]
    if kind == "dpo":
        cmd += ["--beta", str(args.beta), "--dpo-loss", args.dpo_loss, "--reference", args.reference or args.base,
                "--rpo-alpha", str(getattr(args, "rpo_alpha", 0.0))]
    say(f"{kind}: {n:,} {'sequences' if kind == 'sft' else 'pairs'}, global batch {batch} (micro {micro} x "
        f"{args.nproc} rank(s)), {steps} steps")
    sh(cmd, f"train {kind}")
    model = finish(out, args.base, tokenizer, manifest.get("chat_template") or "")
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    record = {"kind": kind, "base": args.base, "data": str(data), "tokenizer": tokenizer, "steps": steps,
              "global_batch": batch, "counts": manifest.get("counts", {}), "model": str(model),
              "first": lines[0] if lines else None, "last": lines[-1] if lines else None}
    (out / "posttrain.json").write_text(json.dumps(record, indent=1))
    last = record["last"] or {}
    say(f"{kind} done: loss {last.get('loss', float('nan')):.4f} after {steps} steps; model {model}")
    return record


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.cmd == "loop":
        from training.posttrain import loop

        return loop.main(args)
    run(args.cmd, args)
    return 0
