"""``python -m training.eval``: score a checkpoint on a suite, print a line per task and the
aggregate, optionally write the results JSON."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from lakesift.resolve import ResolveError, resolve, shared_path
from training.eval.load import load_checkpoint, load_tokenizer
from training.eval.scorer import Scorer, perplexity
from training.eval.tasks import aggregate, evaluate_task, load_suite


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m training.eval",
                                 description="In-context evaluation of checkpoints, CORE / EXTENDED style (DCLM), "
                                             "on llm-foundry task files.")
    ap.add_argument("--checkpoint", required=True, help="final/ export, step-N checkpoint or a HF model folder / hub id")
    ap.add_argument("--suite", default="conf/eval/core.yaml", help="suite YAML (default conf/eval/core.yaml)")
    ap.add_argument("--eval-dir", help="task files (default $LAKESIFT_SHARED/data/eval)")
    ap.add_argument("--tokenizer", help="tokenizer.json (default: the checkpoint's, else GPT-NeoX from $LAKESIFT_SHARED)")
    ap.add_argument("--out", help="results JSON (default: print only)")
    ap.add_argument("--limit", type=int, help="examples per task (default all)")
    ap.add_argument("--batch-size", type=int, default=16, help="requests per forward pass (default 16)")
    ap.add_argument("--seed", type=int, default=1234, help="few-shot choice and tie-break seed (default 1234)")
    ap.add_argument("--ppl-text", help="held-out text for perplexity, e.g. ../shared/data/text/wikitext2/valid.txt")
    ap.add_argument("--ppl-tokens", type=int, default=50_000, help="tokens of --ppl-text to score (default 50000)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from lakesift.config import ConfigError

    try:
        suite = load_suite(args.suite)
        root = Path(resolve(args.eval_dir or shared_path("data", "eval"), "evaluation task folder"))
        ppl_text = resolve(args.ppl_text, "perplexity text") if args.ppl_text else None
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        ckpt = resolve(args.checkpoint, "checkpoint", bare_hub_ids=True)
        model, max_len, kind = load_checkpoint(ckpt, device)
        tok = load_tokenizer(args.tokenizer, ckpt)
    except (ConfigError, ResolveError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scorer = Scorer(model, tok, max_len, args.batch_size, device)
    results, missing, hashes = {}, [], {}
    t0 = time.perf_counter()
    for spec in suite.tasks:
        f = root / spec.file
        if not f.is_file():
            missing.append(spec.label)
            print(f"{spec.label:36s} missing ({f})", flush=True)
            continue
        raw = f.read_bytes()
        hashes[spec.file] = hashlib.sha1(raw).hexdigest()[:12]
        rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
        t = time.perf_counter()
        r = results[spec.label] = evaluate_task(spec, rows, scorer, args.seed, args.limit)
        r.update({"shots": spec.shots, "type": spec.type, "random_baseline": spec.random_baseline,
                  "seconds": round(time.perf_counter() - t, 2)})
        acc = f"{r['accuracy']:.3f}" if r["accuracy"] is not None else "n/a"
        print(f"{spec.label:36s} {spec.shots:2d}-shot acc {acc} ({r['examples']} examples"
              + (f", {len(r['skipped'])} skipped: {r['skipped'][0]['reason']}" if r["skipped"] else "") + ")",
              flush=True)
    agg = aggregate(suite, results, missing)
    out = {"checkpoint": str(args.checkpoint), "loaded_as": kind, "suite": args.suite, "suite_name": suite.name,
           "limit": args.limit, "seed": args.seed, "data_sha1": hashes, "tasks": results, **agg,
           "seconds": round(time.perf_counter() - t0, 1)}
    if ppl_text:
        out["perplexity"] = {"text": args.ppl_text, "tokens": args.ppl_tokens,
                             "value": perplexity(model, tok, Path(ppl_text).read_text(encoding="utf-8"),
                                                 max_len, device, args.ppl_tokens)}
    key = suite.name.upper()
    print(f"{key}: " + (f"{agg[key]:.4f}" if agg[key] is not None else f"n/a ({agg['note']})")
          + (f"; over the {agg['tasks_scored']} present tasks {agg[key + '_over_present_tasks']:.4f}"
             if agg[key + "_over_present_tasks"] is not None else ""))
    if "perplexity" in out:
        print(f"perplexity on {args.ppl_text}: {out['perplexity']['value']:.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0
