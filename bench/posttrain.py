#!/usr/bin/env python
"""CPU steps/s and tokens/s of our SFT and DPO objectives in our trainer against TRL's SFTTrainer / DPOTrainer.

    python bench/posttrain.py [--steps 40] [--repeats 3] [--batch 8] [--seq 128]

Both sides train the same tiny Llama (a ``LlamaConfig``: hidden 128, 2 layers, vocab 1,024, written once
as a Hugging Face folder) on the same synthetic data with the same batch, AdamW, clipping 1.0, fp32, no
gradient checkpointing, one process, ``OMP_NUM_THREADS=1``:
* SFT: examples of exactly ``--seq`` tokens (a prompt of 8-40 tokens, the rest answer, loss on the
  answer only), ``--batch`` per step: no padding on either side;
* DPO: ``--batch`` pairs per step (prompt 8-32 tokens, completions 8-48), the reference a second copy
  of the start model; ours runs ``[chosen; rejected]`` as one forward, as TRL does.
Ours: ``python -m training.train --objective sft|dpo --init-from MODEL`` (FSDP2 over a world of one,
StreamingDataset over MDS, metrics, checkpoints), timed from its logged intervals, the first one (warm-up)
left out; TRL: ``trainer.train()`` for the same steps, timed by a callback from step 10 on. tokens/s =
steps/s x the data's mean tokens per step (non-pad tokens read, both sides the same figure).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
VOCAB, EOS, PAD = 1024, 1023, 1022
WARM = 10  # steps left out on both sides


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(VOCAB - 2)} | {"<pad>": PAD, "<eos>": EOS}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def text(ids) -> str:
    return " ".join("<eos>" if i == EOS else f"t{i}" for i in ids)


def prepare(out: Path, n_sft: int, n_dpo: int, seq: int, batch: int) -> dict:
    """The model folder, our scale, the SFT and DPO data (MDS for us, lists for TRL)."""
    import numpy as np
    import torch
    from streaming import MDSWriter
    from transformers import AutoModelForCausalLM, LlamaConfig

    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "model"
    if not (model_dir / "config.json").exists():
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=128, intermediate_size=344, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                          pad_token_id=PAD, eos_token_id=EOS, bos_token_id=None)
        AutoModelForCausalLM.from_config(cfg).save_pretrained(str(model_dir))
    scale = out / "posttrain-bench.yaml"
    scale.write_text(f"name: posttrain-bench\nmodel: {{d_model: 128, n_layers: 2, n_heads: 4, vocab_size: {VOCAB}, "
                     f"seq_len: {seq - 1}}}\ntotal_tokens: 1000000\nglobal_batch: {batch}\nmicro_batch: {batch}\n"
                     "lr: 1.0e-5\nwarmup: 0\nweight_decay: 0.0\nz_loss: 0.0\nfinal_lr: 1.0e-5\n")
    rng = np.random.default_rng(0)
    sft = []
    for _ in range(n_sft):
        p = int(rng.integers(8, 40))
        sft.append((rng.integers(0, VOCAB - 2, seq - 1).tolist() + [EOS], [0] * p + [1] * (seq - p)))
    dpo = []
    for _ in range(n_dpo):
        p = rng.integers(0, VOCAB - 2, int(rng.integers(8, 32))).tolist()
        c = rng.integers(0, VOCAB - 2, int(rng.integers(8, 48))).tolist() + [EOS]
        r = rng.integers(0, VOCAB - 2, int(rng.integers(8, 48))).tolist() + [EOS]
        dpo.append((p, c, r))
    for name, cols, rows in (
        ("sft", {"tokens": f"ndarray:uint32:{seq}", "loss_mask": f"ndarray:uint8:{seq}", "starts": "ndarray:int32",
                 "pad": "int32", "n_examples": "int32"},
         [{"tokens": np.array(t, np.uint32), "loss_mask": np.array(m, np.uint8), "starts": np.zeros(1, np.int32),
           "pad": 0, "n_examples": 1} for t, m in sft]),
        ("dpo", {"chosen": "ndarray:uint32", "rejected": "ndarray:uint32", "prompt_len": "int32", "pair_id": "str"},
         [{"chosen": np.array(p + c, np.uint32), "rejected": np.array(p + r, np.uint32), "prompt_len": len(p),
           "pair_id": str(i)} for i, (p, c, r) in enumerate(dpo)])):
        if not (out / name / "index.json").exists():
            with MDSWriter(out=str(out / name), columns=cols) as w:
                for row in rows:
                    w.write(row)
    return {"model": model_dir, "scale": scale, "sft": sft, "dpo": dpo,
            "sft_tokens": batch * seq,  # tokens read per step
            "dpo_tokens": batch * statistics.mean(2 * len(p) + len(c) + len(r) for p, c, r in dpo)}


def ours(objective: str, prep: dict, data: Path, steps: int) -> float:
    """Steps/s of our trainer over its logged intervals after the first."""
    out = Path(tempfile.mkdtemp(prefix=f"bench-{objective}-"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    harness.run_job([sys.executable, "-m", "training.train", "--objective", objective, "--scale", str(prep["scale"]),
                     "--init-from", str(prep["model"]), "--data", str(data), "--out", str(out), "--steps", str(steps),
                     "--log-every", str(WARM), "--ckpt-every", str(10 * steps), "--beta", "0.1"],
                    f"our {objective} run", cwd=REPO, env=env)
    recs = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "tokens_per_s" in r]
    rates = []
    for prev, cur in zip(recs, recs[1:], strict=False):
        if prev["step"] < WARM:  # step 1 and the first interval: warm-up
            continue
        dt = (cur["tokens"] - prev["tokens"]) / cur["tokens_per_s"]
        rates.append((cur["step"] - prev["step"]) / dt)
    return statistics.median(rates)


class Clock:
    """A TrainerCallback recording the time at the end of each step."""

    def __init__(self):
        from transformers import TrainerCallback

        times = self.times = []

        class CB(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                times.append(time.perf_counter())

        self.callback = CB()

    def steps_per_s(self) -> float:
        t = self.times[WARM - 1:]
        return (len(t) - 1) / (t[-1] - t[0])


def trl_run(objective: str, prep: dict, steps: int, batch: int) -> float:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    tok = tokenizer()
    common = dict(output_dir=tempfile.mkdtemp(prefix=f"bench-trl-{objective}-"), report_to="none", use_cpu=True,
                  bf16=False, max_steps=steps, per_device_train_batch_size=batch, gradient_accumulation_steps=1,
                  gradient_checkpointing=False, learning_rate=1e-5, lr_scheduler_type="constant", warmup_steps=0,
                  weight_decay=0.0, max_grad_norm=1.0, save_strategy="no", logging_steps=10 * steps,
                  dataloader_num_workers=0, disable_tqdm=True, max_length=None)
    model = AutoModelForCausalLM.from_pretrained(str(prep["model"]))
    clock = Clock()
    if objective == "sft":
        from trl import SFTConfig, SFTTrainer

        ds = Dataset.from_dict({"input_ids": [t for t, _ in prep["sft"]], "completion_mask": [m for _, m in prep["sft"]]})
        trainer = SFTTrainer(model=model, args=SFTConfig(**common, completion_only_loss=True, packing=False),
                             train_dataset=ds, processing_class=tok, callbacks=[clock.callback])
    else:
        from trl import DPOConfig, DPOTrainer

        d = prep["dpo"]
        ds = Dataset.from_dict({"prompt": [text(p) for p, _, _ in d], "chosen": [" " + text(c) for _, c, _ in d],
                                "rejected": [" " + text(r) for _, _, r in d]})
        ref = AutoModelForCausalLM.from_pretrained(str(prep["model"]))
        trainer = DPOTrainer(model=model, ref_model=ref, args=DPOConfig(**common, beta=0.1), train_dataset=ds,
                             processing_class=tok, callbacks=[clock.callback])
    with contextlib.redirect_stdout(io.StringIO()):  # its end-of-training summary line
        trainer.train()
    return clock.steps_per_s()


def main() -> int:
    args = harness.parse_args(__doc__, out="posttrain", shared=False, steps=40, repeats=3, batch=8, seq=128)
    import logging
    import warnings

    import datasets
    import torch

    datasets.disable_progress_bars()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    n = max(args.steps * args.batch, 64)
    prep = prepare(Path(args.out), n, n, args.seq, args.batch)
    print(f"tiny Llama (hidden 128, 2 layers, vocab {VOCAB:,}); batch {args.batch}; SFT {args.seq} tokens per "
          f"example, DPO {prep['dpo_tokens'] / args.batch:.0f} tokens per pair; {args.steps} steps, the first "
          f"{WARM} left out; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}", flush=True)
    results = {}
    for objective in ("sft", "dpo"):
        o, t = [], []
        for i in range(args.repeats):
            o.append(ours(objective, prep, Path(args.out) / objective, args.steps))
            t.append(trl_run(objective, prep, args.steps, args.batch))
            print(f"{objective} run {i + 1}: ours {o[-1]:.2f} steps/s; TRL {t[-1]:.2f} steps/s", flush=True)
        mo, mt, tok = statistics.median(o), statistics.median(t), prep[f"{objective}_tokens"]
        results[objective] = mo / mt
        print(f"{objective} median: ours {mo:.2f} steps/s, {mo * tok:,.0f} tokens/s; TRL {mt:.2f} steps/s, "
              f"{mt * tok:,.0f} tokens/s; ours / TRL {mo / mt:.2f}x", flush=True)
    print(harness.ratios("ours / TRL (steps/s)", {k.upper(): v for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
