"""Train a decoder LM on Lakesift's MDS shards with FSDP2.

    torchrun --nproc_per_node 8 -m training.train --scale 7B-2x --data s3://bucket/datasets/dclm
    python -m training.train --scale debug-tiny --data ./lake/datasets/demo --out ./lake/runs/demo

One process runs as a world of one (gloo on CPU, NCCL on GPU), so the same code path is tested here
and used on clusters. The model is built on the meta device, each block and then the root wrapped
with ``fully_shard`` (bf16 parameters with fp32 gradient reduction on GPU, fp32 on CPU), materialised
with ``to_empty`` and initialised per parameter from a seed (identical for any number of ranks).
Gradient accumulation reaches the scale's global batch; AdamW (beta2 0.95), warmup then cosine decay
to ``final_lr``, clipping at 1.0, z-loss.

Data: ``StreamingDataset`` over one or more MDS folders (local or remote; ``PATH:PROPORTION`` mixes
them), partitioned over ranks by mosaicml-streaming, with a fixed number of canonical nodes so that
the global sample order does not depend on the number of processes.

Checkpoints (``--out/step-N``, torch distributed checkpointing): model, optimizer, the step, tokens
seen and the dataloader's state; the last ``--keep`` are kept; a run restarted with the same
``--out`` resumes where the last checkpoint stopped, on the same data order.
Logs: loss, lr, grad norm, tokens/s and MFU on the console and in ``--out/metrics.jsonl`` (and
TensorBoard when installed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

# Peak dense bf16 FLOP/s per device, for MFU (vendor datasheets, without sparsity).
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    p.add_argument("--scale", required=True, help="conf/scales/<name>.yaml (400M-1x ... 7B-2x, debug-tiny) or a path")
    p.add_argument("--data", required=True, nargs="+", metavar="MDS[:PROPORTION]", help="MDS dataset folders / URIs")
    p.add_argument("--out", default="./runs/train", help="checkpoints and logs (default ./runs/train)")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the scale's token budget)")
    p.add_argument("--stop-after", type=int, help="stop (after checkpointing) at this step, to resume later")
    p.add_argument("--global-batch", type=int, help="sequences per step (overrides the scale)")
    p.add_argument("--micro-batch", type=int, help="sequences per forward pass per rank (overrides the scale)")
    p.add_argument("--lr", type=float, help="peak learning rate (overrides the scale)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--ckpt-every", type=int, default=1000)
    p.add_argument("--keep", type=int, default=3, help="checkpoints to keep (default 3)")
    p.add_argument("--compile", action="store_true", help="torch.compile each block")
    p.add_argument("--act-ckpt", action="store_true", help="activation checkpointing (default: the scale's)")
    p.add_argument("--peak-flops", type=float, help="device peak FLOP/s for MFU (default: known GPUs)")
    p.add_argument("--local-cache", default=None, help="cache folder for remote shards")
    return p.parse_args(argv)


def setup_distributed():
    import torch
    import torch.distributed as dist

    if "RANK" not in os.environ:  # a world of one, so the FSDP path is the same as under torchrun
        os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"})
        if "MASTER_PORT" not in os.environ:
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    cuda = torch.cuda.is_available()
    local = int(os.environ["LOCAL_RANK"])
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    return dist.get_rank(), dist.get_world_size(), device


def lr_at(step: int, total: int, peak: float, warmup: int, final: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + 0.5 * (peak - final) * (1 + math.cos(math.pi * progress))


def make_loader(specs: list[str], micro_batch: int, seed: int, local_cache: str | None):
    from streaming import Stream, StreamingDataLoader, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()  # leftovers of a killed run would block this one

    from lakesift.io import is_local, local_path

    streams = []
    for i, spec in enumerate(specs):
        uri, _, prop = spec.rpartition(":") if spec.rsplit(":", 1)[-1].replace(".", "", 1).isdigit() else (spec, "", "")
        if is_local(uri):
            streams.append(Stream(local=local_path(uri), proportion=float(prop) if prop else None))
        else:
            cache = os.path.join(local_cache or os.path.expanduser("~/.cache/lakesift/shards"), f"s{i}")
            streams.append(Stream(remote=uri, local=cache, proportion=float(prop) if prop else None))
    ds = StreamingDataset(streams=streams, shuffle=True, shuffle_seed=seed, batch_size=micro_batch,
                          num_canonical_nodes=1, replication=None)
    return StreamingDataLoader(ds, batch_size=micro_batch, num_workers=0, drop_last=True)


def device_peak(device, override: float | None) -> float | None:
    import torch

    if override:
        return override
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for k, v in PEAK_FLOPS.items():
            if k in name:
                return v
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from training.config import load_scale
    from training.model import Transformer, flops_per_token, init_parameters, loss_fn, n_params

    overrides = {k: v for k, v in (("global_batch", args.global_batch), ("micro_batch", args.micro_batch),
                                   ("lr", args.lr)) if v is not None}
    scale = load_scale(args.scale, overrides)
    rank, world, device = setup_distributed()
    torch.manual_seed(args.seed)
    out = Path(args.out)
    log_file = None
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    progress = None  # tqdm bar on rank 0 when stderr is a terminal (lakesift.progress)

    def log(msg: str) -> None:
        if rank == 0:
            if progress is not None:
                progress.write(msg)
            else:
                print(msg, flush=True)

    accum, rem = divmod(scale.global_batch, scale.micro_batch * world)
    if rem or accum == 0:
        raise SystemExit(f"global batch {scale.global_batch} is not a multiple of micro batch {scale.micro_batch} "
                         f"x {world} ranks")
    # --- model: meta -> fully_shard per block, then the root -> to_empty -> seeded init
    with torch.device("meta"):
        model = Transformer(scale.model)
    n = n_params(model)
    model.activation_checkpointing = args.act_ckpt or scale.activation_checkpointing
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if device.type == "cuda" \
        else MixedPrecisionPolicy()
    for i, block in enumerate(model.layers):
        if args.compile:
            model.layers[i] = block = torch.compile(block)
        fully_shard(block, mp_policy=mp, reshard_after_forward=True)
    fully_shard(model, mp_policy=mp)
    model.to_empty(device=device)
    init_parameters(model, args.seed)
    decay = [p for name, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for name, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": scale.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=scale.lr, betas=(scale.beta1, scale.beta2), eps=scale.eps,
                            foreach=device.type == "cuda")
    total_steps = args.steps or scale.steps(n)
    fpt = flops_per_token(scale.model, n)
    peak = device_peak(device, args.peak_flops)
    log(f"scale {scale.name}: {n:,} parameters, {fpt / 1e9:.3f} GFLOP per token (6 x non-embedding params + "
        f"attention), {world} rank(s) on {device.type}, global batch {scale.global_batch} = micro {scale.micro_batch} "
        f"x {world} ranks x {accum} accumulation, {total_steps} steps")

    loader = make_loader(args.data, scale.micro_batch, args.seed, args.local_cache)
    step, tokens_seen = 0, 0
    ckpts = sorted((p for p in out.glob("step-*") if (p / "meta.json").exists()), key=lambda p: int(p.name[5:])) \
        if out.exists() else []
    if ckpts:
        last = ckpts[-1]
        meta = json.loads((last / "meta.json").read_text())
        state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)}
        dcp.load(state, checkpoint_id=str(last))
        set_model_state_dict(model, state["model"])
        set_optimizer_state_dict(model, opt, state["optim"])
        loader.load_state_dict(meta["loader"])
        step, tokens_seen = meta["step"], meta["tokens_seen"]
        log(f"resumed from {last} at step {step} ({tokens_seen:,} tokens)")

    writer = None
    if rank == 0:
        log_file = open(out / "metrics.jsonl", "a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"))
        except ImportError:
            writer = None

    def save(step_no: int) -> None:
        path = out / f"step-{step_no}"
        state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)}
        dcp.save(state, checkpoint_id=str(path))
        if rank == 0:
            meta = {"step": step_no, "tokens_seen": tokens_seen, "loader": loader.state_dict(),
                    "scale": scale.model_dump(), "world_size": world, "seed": args.seed}
            (path / "meta.json").write_text(json.dumps(meta, indent=1))
            done = sorted((p for p in out.glob("step-*") if (p / "meta.json").exists()),
                          key=lambda p: int(p.name[5:]))
            for old in done[:-args.keep]:
                shutil.rmtree(old, ignore_errors=True)
        dist.barrier()

    seq = scale.model.seq_len
    it = iter(loader)
    model.train()
    t_log, tok_log = time.perf_counter(), 0
    if rank == 0:
        from lakesift.progress import bar

        progress = bar(total_steps, f"train {args.scale}", "step", initial=step)
    while step < total_steps:
        lr = lr_at(step, total_steps, scale.lr, scale.warmup, scale.final_lr)
        for g in opt.param_groups:
            g["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for micro in range(accum):
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)  # next epoch
                batch = next(it)
            tokens = torch.as_tensor(batch["tokens"]).long()[:, : seq + 1].to(device)
            model.set_requires_gradient_sync(micro == accum - 1)
            logits = model(tokens[:, :-1])
            loss, ce = loss_fn(logits, tokens[:, 1:], scale.z_loss)
            (loss / accum).backward()
            loss_sum += ce.detach() / accum
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), scale.grad_clip)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        opt.step()
        opt.zero_grad(set_to_none=True)
        dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
        step += 1
        step_tokens = scale.global_batch * seq
        tokens_seen += step_tokens
        tok_log += step_tokens
        rec = {"step": step, "loss": float(loss_sum), "lr": lr, "grad_norm": float(grad_norm), "tokens": tokens_seen}
        if progress is not None:
            progress.set_postfix(loss=f"{rec['loss']:.3f}", lr=f"{lr:.1e}", refresh=False)
            progress.update(1)
        if step % args.log_every == 0 or step == total_steps or step == 1:
            dt = time.perf_counter() - t_log
            tps = tok_log / dt if dt > 0 else 0.0
            mfu = fpt * tps / (peak * world) if peak else None
            rec.update({"tokens_per_s": tps, "mfu": mfu})
            log(f"step {step}/{total_steps} loss {rec['loss']:.4f} lr {lr:.2e} grad_norm {rec['grad_norm']:.3f} "
                f"tokens/s {tps:,.0f}" + (f" MFU {100 * mfu:.1f}%" if mfu is not None else ""))
            t_log, tok_log = time.perf_counter(), 0
            if writer is not None:
                for k in ("loss", "lr", "grad_norm", "tokens_per_s"):
                    writer.add_scalar(f"train/{k}", rec[k], step)
        if log_file is not None:
            log_file.write(json.dumps(rec) + "\n")
            log_file.flush()
        if step % args.ckpt_every == 0 or step == total_steps or step == args.stop_after:
            save(step)
        if args.stop_after and step >= args.stop_after:
            log(f"stopped after step {step} (--stop-after); rerun with the same --out to resume")
            break
    if progress is not None:
        progress.close()
        progress = None
    if step >= total_steps:
        from training.export import export

        export(model, scale, out / "final")  # every rank takes part in gathering; rank 0 writes
        log(f"final model: {out / 'final'}")
    if writer is not None:
        writer.close()
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
