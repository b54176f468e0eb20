#!/usr/bin/env python
"""CPU tokens/s of our FSDP trainer at the debug scale against a minimal plain-PyTorch loop.

    python bench/train_speed.py [--steps 60] [--repeats 3] [--scale debug-tiny]

Data: the MDS shards bench/tokenize_speed.py writes (GPT-NeoX tokens of real pages), cropped to the
scale's sequence length; if absent, real text as bytes. Both sides: the same ``training.model``
Transformer, AdamW, global batch, micro batch, z-loss, clipping, one process, ``OMP_NUM_THREADS=1``.
* ours: ``python -m training.train`` (FSDP2 over a world of one, StreamingDataset, metrics, checkpoint
  at the end), tokens/s as it logs them every 10 steps, the first interval (warm-up) left out;
* reference: a plain loop over tensors already in memory, no FSDP, no data loader, timed over the
  same steps after the same warm-up.
Prints the ratio (the overhead of our machinery), FLOPs per token and the MFU formula.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parents[1]  # run from `make bench`, or with the repository installed / on PYTHONPATH
os.environ.setdefault("OMP_NUM_THREADS", "1")


def data_dir() -> Path:
    job = REPO / "bench" / "out" / "tokenize" / "job"
    if (job / "index.json").exists():
        return job
    import numpy as np
    from streaming import MDSWriter

    out = REPO / "bench" / "out" / "train" / "bytes"
    if not (out / "index.json").exists():
        text = (REPO / "sample" / "text" / "hq" / "wikipedia.txt").read_bytes()
        with MDSWriter(out=str(out), columns={"tokens": "ndarray:uint16:2049"}) as w:
            for i in range(0, len(text) - 2049, 2049):
                w.write({"tokens": np.frombuffer(text[i:i + 2049], dtype=np.uint8).astype(np.uint16)})
    return out


def ours(scale: str, data: Path, steps: int) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-train-"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    harness.run_job([sys.executable, "-m", "training.train", "--scale", scale, "--data", str(data), "--out",
                     str(out), "--steps", str(steps), "--log-every", "10", "--ckpt-every", str(10 * steps)],
                    "training", cwd=REPO, env=env)
    recs = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "tokens_per_s" in r]
    return statistics.median(r["tokens_per_s"] for r in recs[2:])  # skip step 1 and the first interval


def reference(scale_name: str, data: Path, steps: int) -> float:
    import numpy as np
    import torch
    from streaming import StreamingDataset

    from training.config import load_scale
    from training.model import Transformer, init_parameters
    from training.objectives.clm import causal_lm_loss

    scale = load_scale(scale_name)
    seq = scale.model.seq_len
    ds = StreamingDataset(local=str(data), shuffle=False, batch_size=1)
    n_need = scale.global_batch * (steps + 10)
    rows = [np.asarray(ds[i % ds.num_samples]["tokens"][: seq + 1], dtype=np.int64) for i in range(n_need)]
    tokens = torch.from_numpy(np.stack(rows))
    torch.manual_seed(0)
    model = Transformer(scale.model)
    init_parameters(model, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=scale.lr, betas=(scale.beta1, scale.beta2),
                            weight_decay=scale.weight_decay, foreach=False)
    accum = scale.global_batch // scale.micro_batch
    times = []
    for step in range(steps + 10):
        t0 = time.perf_counter()
        for m in range(accum):
            i = (step * accum + m) * scale.micro_batch
            batch = tokens[i:i + scale.micro_batch]
            loss, _ = causal_lm_loss(model(batch[:, :-1]), batch[:, 1:], scale.z_loss)
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), scale.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    per_step = statistics.median(times[10:])
    return scale.global_batch * seq / per_step


def main() -> int:
    args = harness.parse_args(__doc__, shared=False, scale="debug-tiny", steps=60, repeats=3)
    import torch

    from training.config import load_scale
    from training.model import Transformer, flops_per_token, n_params

    data = data_dir()
    scale = load_scale(args.scale)
    with torch.device("meta"):
        n = n_params(Transformer(scale.model))
    print(f"scale {args.scale}: {n:,} parameters, seq {scale.model.seq_len}, global batch {scale.global_batch}, "
          f"micro batch {scale.micro_batch}; data {data}; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    o, r = [], []
    for i in range(args.repeats):
        o.append(ours(args.scale, data, args.steps))
        r.append(reference(args.scale, data, args.steps))
        print(f"run {i + 1}: ours {o[-1]:,.0f} tokens/s; reference loop {r[-1]:,.0f} tokens/s", flush=True)
    mo, mr = statistics.median(o), statistics.median(r)
    print(f"median: ours {mo:,.0f} tokens/s; reference {mr:,.0f} tokens/s; ours / reference {mo / mr:.2f}x")
    for name in ("400M-1x", "7B-1x"):
        s = load_scale(name)
        with torch.device("meta"):
            p = n_params(Transformer(s.model))
        print(f"{name}: {flops_per_token(s.model, p) / 1e9:.2f} GFLOP per token "
              f"(6 x {p - s.model.vocab_size * s.model.d_model:,} non-embedding params + 12 x layers x d x seq)")
    print("MFU = FLOPs per token x tokens/s / (peak FLOP/s per device x devices); H100 bf16 dense peak 989 TFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
