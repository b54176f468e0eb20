"""The training loop: per optimizer step, the learning rate, the step's micro-batches through the
objective with gradient accumulation to the global batch (gradients synchronised on the last one),
clipping, the optimizer step, logging and the checkpoint cadence; resume from the newest complete
checkpoint in ``--out``; the final export.

Logs (rank 0): loss, lr, grad norm, tokens/s and MFU on the console (through the progress bar when one
is drawn), one JSON line per step in ``OUT/metrics.jsonl``, and TensorBoard (``OUT/tb``) when installed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from training.optim import lr_at

# Peak dense bf16 FLOP/s per device, for MFU (vendor datasheets, without sparsity).
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


def device_peak(device: torch.device, override: float | None) -> float | None:
    """``override``, else the peak of a known GPU, else None (no MFU)."""
    if override:
        return override
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for k, v in PEAK_FLOPS.items():
            if k in name:
                return v
    return None


def accumulation(global_batch: int, micro_batch: int, world: int) -> int:
    """Micro-batches per rank per optimizer step."""
    accum, rem = divmod(global_batch, micro_batch * world)
    if rem or accum == 0:
        raise SystemExit(f"global batch {global_batch} is not a multiple of micro batch {micro_batch} "
                         f"x {world} ranks")
    return accum


class RunLog:
    """Rank 0's console lines, ``metrics.jsonl`` and TensorBoard; on other ranks every call is a no-op."""

    def __init__(self, out: Path, main: bool):
        self.out, self.main = Path(out), main
        self.bar = self.file = self.writer = None  # tqdm bar on rank 0 when stderr is a terminal

    def print(self, msg: str) -> None:
        if self.main:
            if self.bar is not None:
                self.bar.write(msg)
            else:
                print(msg, flush=True)

    def open(self, total: int, desc: str, initial: int) -> None:
        if not self.main:
            return
        self.file = open(self.out / "metrics.jsonl", "a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"))
        except ImportError:
            self.writer = None
        from lakesift.progress import bar

        self.bar = bar(total, desc, "step", initial=initial)

    def progress(self, rec: dict) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{rec['loss']:.3f}", lr=f"{rec['lr']:.1e}", refresh=False)
            self.bar.update(1)

    def scalars(self, rec: dict, step: int) -> None:
        """Every numeric value of the step's record (an objective's own metrics too: DPO's rewards …)."""
        if self.writer is not None:
            for k, v in rec.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.writer.add_scalar(f"train/{k}", v, step)

    def record(self, rec: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(rec) + "\n")
            self.file.flush()

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self.close_bar()
        if self.writer is not None:
            self.writer.close()
        if self.file is not None:
            self.file.close()


@dataclass(frozen=True)
class Schedule:
    """How long to train and how often to log and checkpoint."""

    total_steps: int
    log_every: int = 10
    ckpt_every: int = 1000
    stop_after: int | None = None  # checkpoint and stop at this step, to resume later


class Trainer:
    """Trains ``model`` with ``objective`` on ``loader``'s micro-batches; ``world`` is this rank's
    ``training.distributed.World``, ``desc`` the progress bar's label, ``freezer`` what stays frozen
    (``training.freeze``: its gradient mask before clipping, its restore after each optimizer step)."""

    def __init__(self, *, scale, model, objective, optimizer, loader, checkpointer, world, log: RunLog,
                 schedule: Schedule, flops_per_token: int, peak_flops: float | None, desc: str, freezer=None):
        self.scale, self.model, self.objective, self.opt, self.loader = scale, model, objective, optimizer, loader
        self.freezer = freezer  # training.freeze.Freezer: what stays frozen (None: nothing)
        self.ckpt, self.world, self.log, self.sched = checkpointer, world, log, schedule
        self.fpt, self.peak, self.desc = flops_per_token, peak_flops, desc
        self.accum = accumulation(scale.global_batch, scale.micro_batch, world.size)
        self.step, self.tokens_seen, self.step_tokens = 0, 0, 0
        self._it = None

    def resume(self) -> None:
        """Continue from the newest complete checkpoint in the output folder, if there is one."""
        done = self.ckpt.done()
        if done:
            meta = self.ckpt.load(done[-1], self.model, self.opt, self.loader, self.objective)
            self.step, self.tokens_seen = meta["step"], meta["tokens_seen"]
            self.log.print(f"resumed from {done[-1]} at step {self.step} ({self.tokens_seen:,} tokens)")

    def next_batch(self) -> dict:
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.loader)  # next epoch
            return next(self._it)

    def train_step(self, lr: float) -> tuple[dict[str, float], float]:
        """One optimizer step at ``lr``: (metrics averaged over micro-batches and ranks, grad norm); the
        step's tokens over all ranks (``Objective.count_tokens``) are in ``self.step_tokens``."""
        for g in self.opt.param_groups:
            g["lr"] = lr
        device, accum = self.world.device, self.accum
        batches = [self.next_batch() for _ in range(accum)]
        tokens = sum(self.objective.count_tokens(b) for b in batches)
        self.objective.begin_step(batches)
        sums: dict[str, torch.Tensor] = {}
        for micro, batch in enumerate(batches):
            batch = {k: v.to(device) for k, v in batch.items()}
            self.model.set_requires_gradient_sync(micro == accum - 1)
            loss, metrics = self.objective.loss(self.model, batch)
            (loss / accum).backward()
            for k, v in metrics.items():
                if k not in sums:
                    sums[k] = torch.zeros((), device=device)
                sums[k] += v.detach() / accum
        if self.freezer is not None:
            self.freezer.mask_grads()
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.scale.grad_clip)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.freezer is not None:
            self.freezer.restore()
        names = list(sums)
        avg = torch.stack([sums[k] for k in names] + [torch.tensor(float(tokens), device=device)])
        dist.all_reduce(avg, op=dist.ReduceOp.AVG)
        values = avg.tolist()
        self.step_tokens = round(values.pop() * self.world.size)
        return dict(zip(names, values, strict=True)), float(grad_norm)

    def train(self) -> int:
        """Run to the end of the schedule (or ``stop_after``); returns the last step."""
        sched, scale, log = self.sched, self.scale, self.log
        self.resume()
        log.open(sched.total_steps, f"train {self.desc}", self.step)
        self._it = iter(self.loader)
        self.model.train()
        t_log, tok_log = time.perf_counter(), 0
        while self.step < sched.total_steps:
            lr = lr_at(self.step, sched.total_steps, scale.lr, scale.warmup, scale.final_lr)
            metrics, grad_norm = self.train_step(lr)
            metrics.update(self.objective.end_step())
            self.step += 1
            step_tokens = self.step_tokens
            self.tokens_seen += step_tokens
            tok_log += step_tokens
            rec = {"step": self.step, "loss": metrics.pop("loss"), "lr": lr, "grad_norm": grad_norm,
                   "tokens": self.tokens_seen, **metrics}
            log.progress(rec)
            if self.step % sched.log_every == 0 or self.step == sched.total_steps or self.step == 1:
                dt = time.perf_counter() - t_log
                tps = tok_log / dt if dt > 0 else 0.0
                mfu = self.fpt * tps / (self.peak * self.world.size) if self.peak else None
                rec.update({"tokens_per_s": tps, "mfu": mfu})
                log.print(f"step {self.step}/{sched.total_steps} loss {rec['loss']:.4f} lr {lr:.2e} "
                          f"grad_norm {rec['grad_norm']:.3f} tokens/s {tps:,.0f}"
                          + (f" MFU {100 * mfu:.1f}%" if mfu is not None else ""))
                t_log, tok_log = time.perf_counter(), 0
                log.scalars(rec, self.step)
            log.record(rec)
            if self.step % sched.ckpt_every == 0 or self.step == sched.total_steps or self.step == sched.stop_after:
                self.ckpt.save(self.step, self.tokens_seen, self.model, self.opt, self.loader, self.objective)
            if sched.stop_after and self.step >= sched.stop_after:
                log.print(f"stopped after step {self.step} (--stop-after); rerun with the same --out to resume")
                break
        log.close_bar()
        if self.step >= sched.total_steps:
            from training.export import export

            # every rank takes part in gathering; rank 0 writes
            export(self.model, scale, self.ckpt.out / "final", self.ckpt.info.get("vocab"), self.ckpt.info.get("hf_base"))
            log.print(f"final model: {self.ckpt.out / 'final'}")
        log.close()
        return self.step
