#!/usr/bin/env python
"""Examples/s of the evaluation harness on CPU: batched scoring against one request at a time.

    python bench/eval_speed.py [--examples 200] [--repeats 3]

Model: the debug-tiny shape (d 64, 2 layers, GPT-NeoX vocabulary), seeded random weights (speed does
not depend on what the weights learned). Tasks: PIQA (multiple choice, 10-shot) and LAMBADA
(language modeling, 0-shot) from $LAKESIFT_SHARED/data/eval, the first ``--examples`` of each. Same prompts,
same results (checked), batch size 16 vs 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # run from `make bench`, or with the repository installed / on PYTHONPATH


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", help="shared data folder (default $LAKESIFT_SHARED, else ../shared)")
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import torch
    from tokenizers import Tokenizer

    from lakesift.resolve import shared_path
    from training import eval as E
    from training.config import load_scale
    from training.eval.load import default_tokenizer
    from training.model import Transformer, init_parameters

    if args.shared:
        os.environ["LAKESIFT_SHARED"] = args.shared
    torch.set_num_threads(1)
    cfg = load_scale("debug-tiny").model.model_copy(update={"seq_len": 2048})
    model = Transformer(cfg)
    init_parameters(model, 0)
    model.eval()
    tok = Tokenizer.from_file(default_tokenizer())
    tasks = [(E.TaskSpec(label="piqa", file="", type="multiple_choice", shots=10, continuation_delimiter="\nAnswer: "),
              "commonsense_reasoning/piqa.jsonl"),
             (E.TaskSpec(label="lambada", file="", type="language_modeling", shots=0),
              "language_understanding/lambada_openai.jsonl")]
    print(f"model d={cfg.d_model} layers={cfg.n_layers} vocab={cfg.vocab_size}; {args.examples} examples per task; "
          "1 thread")
    for spec, rel in tasks:
        rows = [json.loads(x) for x in (Path(shared_path("data", "eval")) / rel).read_text().splitlines() if x.strip()]
        rates = {1: [], 16: []}
        accs = {}
        for _ in range(args.repeats):
            for bs in (16, 1):
                t0 = time.perf_counter()
                r = E.evaluate_task(spec, rows, E.Scorer(model, tok, cfg.seq_len, bs), 1, args.examples)
                rates[bs].append(args.examples / (time.perf_counter() - t0))
                accs[bs] = r["accuracy"]
        assert accs[1] == accs[16], accs
        b, o = statistics.median(rates[16]), statistics.median(rates[1])
        print(f"{spec.label} ({spec.type}, {spec.shots}-shot): batched {b:.1f} examples/s, one at a time {o:.1f} "
              f"examples/s, ratio {b / o:.2f}x (same accuracy {accs[1]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
