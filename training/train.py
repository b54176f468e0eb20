"""Train a decoder LM on Lakesift's MDS shards with FSDP2.

    torchrun --nproc_per_node 8 -m training.train --scale 7B-2x --data s3://bucket/datasets/dclm
    python -m training.train --scale debug-tiny --data ./lake/datasets/demo --out ./lake/runs/demo
    python -m training.train --scale debug-tiny --stages ./lake/datasets/zh/stages.yaml \
        --init-from ./runs/resized --out ./runs/continued       # staged continued pre-training

Builds the pieces and runs ``training.trainer.Trainer``: the process group (``training.distributed``),
the model on the meta device sharded by ``training.parallelize``, materialised with ``to_empty`` and
initialised per parameter from the seed (the same for any number of ranks), the objective
(``training.objectives``), the data (``training.data``), AdamW and the learning-rate schedule
(``training.optim``) and the checkpoints (``training.checkpoint``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    p.add_argument("--scale", required=True, help="conf/scales/<name>.yaml (400M-1x ... 7B-2x, debug-tiny) or a path")
    p.add_argument("--data", nargs="+", metavar="MDS[:PROPORTION]", help="MDS dataset folders / URIs")
    p.add_argument("--mix", metavar="natural|uniform|WEIGHTS.json",
                   help="mix a dataset's domain streams: every sequence once, equal shares, or by a weights file "
                        "(e.g. a DoReMi run's domain_weights.json)")
    p.add_argument("--stages", metavar="STAGES.yaml",
                   help="run the stages of a bucketed dataset's stage manifest in order (instead of --data): "
                        "continued pre-training, each stage in OUT/stage-<i>-<name>/ (lakesift/stages.py)")
    p.add_argument("--init-from", metavar="CKPT",
                   help="start from these weights: an export folder (a run's final/, training.resize's output), a "
                        "training checkpoint step-N, or a Hugging Face causal-LM folder / hub id (default: new)")
    from training.freeze import MODES

    p.add_argument("--freeze", choices=MODES, default="none",
                   help="what does not train: none (default), non_embedding (only the embedding and head train), "
                        "new_rows (only the rows a vocabulary expansion added)")
    p.add_argument("--out", default="./runs/train", help="checkpoints and logs (default ./runs/train)")
    p.add_argument("--objective", default="clm", help="what to train, by name (default clm: causal LM + z-loss)")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the scale's token budget)")
    p.add_argument("--stop-after", type=int, help="stop (after checkpointing) at this step, to resume later")
    p.add_argument("--global-batch", type=int, help="sequences per step (overrides the scale)")
    p.add_argument("--micro-batch", type=int, help="sequences per forward pass per rank (overrides the scale)")
    p.add_argument("--lr", type=float, help="peak learning rate (overrides the scale)")
    p.add_argument("--seed", type=int, default=42, help="seed of the initial weights and the data order (default 42)")
    p.add_argument("--log-every", type=int, default=10, help="a console / TensorBoard line every N steps (default 10)")
    p.add_argument("--ckpt-every", type=int, default=1000, help="checkpoint every N steps, and at the end (default 1000)")
    p.add_argument("--keep", type=int, default=3, help="checkpoints to keep (default 3; 0 keeps all)")
    p.add_argument("--compile", action="store_true", help="torch.compile each block")
    p.add_argument("--act-ckpt", action="store_true", help="activation checkpointing (default: the scale's)")
    p.add_argument("--peak-flops", type=float, help="device peak FLOP/s for MFU (default: known GPUs)")
    p.add_argument("--local-cache", default=None, help="cache folder for remote shards (default ~/.cache/lakesift/shards)")
    from training.objectives import REGISTRY

    for name, cls in sorted(REGISTRY.items()):
        cls.add_arguments(p.add_argument_group(f"objective {name}"))
    args = p.parse_args(argv)
    if bool(args.stages) == bool(args.data):
        p.error("give --data (one run) or --stages (a stage manifest), not both")
    if args.stages and args.mix:
        p.error("--mix is for --data; a stage's mix is in its manifest")
    return args


@dataclass(frozen=True)
class RunSpec:
    """One training run: what the command line asks for, or one stage of ``--stages``."""

    data: list[str]
    out: Path
    start: Any  # training.start.Start
    freeze: str = "none"
    steps: int | None = None
    lr: float | None = None
    warmup: int | None = None
    keep_optimizer: bool = False  # load the start's optimizer state too (a training checkpoint)
    stop_after: int | None = None


def train_run(args, world, spec: RunSpec) -> int:
    """Build the pieces of one run on ``world`` and train it; returns the last step."""
    import torch

    from training import checkpoint, data, objectives, optim, parallelize, start, trainer
    from training.config import load_scale
    from training.freeze import Freezer
    from training.model import flops_per_token, n_params

    overrides = {"global_batch": args.global_batch, "micro_batch": args.micro_batch, "lr": spec.lr or args.lr,
                 "warmup": spec.warmup}
    scale = load_scale(args.scale, overrides)  # None: not given
    scale = scale.model_copy(update={"model": start.model_config(spec.start, scale)})
    torch.manual_seed(args.seed)
    out = spec.out
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
    log = trainer.RunLog(out, world.main)
    accum = trainer.accumulation(scale.global_batch, scale.micro_batch, world.size)
    objective = objectives.build(args.objective, scale, args)
    plan = data.plan(spec.data, args.mix)
    model = start.build(spec.start, scale, world.device, args.seed, compile=args.compile,
                        act_ckpt=args.act_ckpt or scale.activation_checkpointing)
    shape = start.shape_of(model, scale)
    for extra in objective.extra_models().values():
        parallelize.place_frozen(extra, world.device)
    freezer = Freezer(model, spec.freeze, spec.start.vocab.get("base_vocab_size"))
    freeze_line = freezer.apply()
    opt = optim.build_optimizer(model, scale, world.device)
    if spec.keep_optimizer:
        start.load_dcp(model, spec.start.path, opt)
    n = n_params(model)
    steps, fpt = spec.steps or args.steps or scale.steps(n), flops_per_token(shape, n)
    log.print(f"scale {scale.name}: {n:,} parameters, {fpt / 1e9:.3f} GFLOP per token (6 x non-embedding params "
              f"+ attention), {world.size} rank(s) on {world.device.type}, global batch {scale.global_batch} = "
              f"micro {scale.micro_batch} x {world.size} ranks x {accum} accumulation, {steps} steps")
    log.print(f"{start.describe(spec.start)}{'; optimizer state kept' if spec.keep_optimizer else ''}; {freeze_line}")
    loader = data.make_loader(plan.specs, scale.micro_batch, args.seed, args.local_cache, objective.fields,
                              objective.collate)
    log.print(f"objective {objective.name}; {data.describe(loader)}")
    if len(loader) == 0:
        raise SystemExit(f"{' '.join(spec.data)}: {loader.dataset.epoch_size} sample(s) per epoch, fewer than one "
                         f"micro-batch ({scale.micro_batch}) per rank x {world.size} rank(s): lower --micro-batch")
    objective.bind(objectives.RunInfo(out=out, world=world, model=model, accumulation=accum, domains=plan.domains))
    info = {"scale": scale.model_dump(), "world_size": world.size, "seed": args.seed, "vocab": spec.start.vocab,
            "init_from": spec.start.path, "hf_base": spec.start.hf}
    return trainer.Trainer(scale=scale, model=model, objective=objective, optimizer=opt, loader=loader, world=world,
                           log=log, checkpointer=checkpoint.Checkpointer(out, args.keep, world.rank, info),
                           schedule=trainer.Schedule(steps, args.log_every, args.ckpt_every, spec.stop_after),
                           flops_per_token=fpt, peak_flops=trainer.device_peak(world.device, args.peak_flops),
                           desc=spec.out.name if args.stages else args.scale,
                           freezer=freezer).train()


def main(argv=None) -> int:
    args = parse_args(argv)
    from training import distributed, start

    world = distributed.setup()
    try:
        if args.stages:
            from training.stages import run_stages

            run_stages(args, world, train_run)
        else:
            train_run(args, world, RunSpec(list(args.data), Path(args.out), start.inspect(args.init_from),
                                           args.freeze, stop_after=args.stop_after))
    except BaseException:
        distributed.teardown(wait=False)
        raise
    distributed.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
