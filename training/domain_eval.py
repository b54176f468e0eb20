"""Validation perplexity per domain, on the held-out sequences a dataset written with domains keeps in
``DATASET/validation/`` (the dataset job's ``domains.validation.fraction``): drawn before mixing, so
the set has the data's natural proportions and is the same whichever mixture a model was trained on.
Every run of a comparison is scored on it, so baseline and DoReMi models meet on equal terms.

    python -m training.domain_eval --checkpoint RUN/final --data DATASET [--max-sequences N]

Figures: per domain and over the whole (natural) set, the mean next-token loss and its perplexity;
``average_ppl`` (the mean of the per-domain perplexities, every domain counting once) and
``worst_ppl`` (the largest).
"""

from __future__ import annotations

import argparse
import json
import math
import sys


def validation_dataset(root: str, local_cache: str | None = None):
    """``StreamingDataset`` of ``root/validation`` in its stored order (local or remote)."""
    from streaming import StreamingDataset

    from training.data import read_manifest, streams

    val = f"{root.rstrip('/')}/validation"
    if read_manifest(root) is None:
        raise SystemExit(f"{root} has no manifest.json: not a Lakesift dataset")
    try:
        return StreamingDataset(streams=streams([val], local_cache), shuffle=False, batch_size=1)
    except FileNotFoundError:
        raise SystemExit(f"{root} has no validation set: write it with domains.validation.fraction > 0") from None


def figures(loss_sum: float, tokens: int) -> dict:
    loss = loss_sum / tokens if tokens else float("nan")
    return {"loss": loss, "ppl": math.exp(loss) if tokens else float("nan"), "tokens": tokens}


def evaluate(model, dataset, batch_size: int = 16, max_sequences: int | None = None) -> dict:
    """Score ``model`` (a ``training.model.Transformer``) on ``dataset``'s samples (``tokens``,
    ``domain``), cropped to the model's context."""
    import numpy as np
    import torch

    from training.objectives.doremi import token_losses

    seq = model.cfg.seq_len
    device = next(model.parameters()).device
    n = dataset.num_samples if max_sequences is None else min(max_sequences, dataset.num_samples)
    sums: dict[str, list] = {}
    model.eval()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            samples = [dataset[i] for i in range(start, min(n, start + batch_size))]
            tokens = torch.from_numpy(np.stack([s["tokens"][: seq + 1] for s in samples]).astype(np.int64)).to(device)
            nll = token_losses(model, tokens)[0].sum(1)
            for s, v in zip(samples, nll.tolist(), strict=True):
                acc = sums.setdefault(s.get("domain", "all"), [0.0, 0])
                acc[0] += v
                acc[1] += tokens.shape[1] - 1
    domains = {d: figures(*sums[d]) for d in sorted(sums)}
    ppls = [f["ppl"] for f in domains.values()]
    return {"natural": figures(sum(v[0] for v in sums.values()), sum(v[1] for v in sums.values())),
            "domains": domains, "average_ppl": sum(ppls) / len(ppls) if ppls else float("nan"),
            "worst_ppl": max(ppls) if ppls else float("nan"), "sequences": n}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.domain_eval", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="an exported model folder (a run's final/)")
    p.add_argument("--data", required=True, help="a dataset folder / URI with a validation/ set")
    p.add_argument("--max-sequences", type=int, help="score only the first N validation sequences")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    from training.export import load

    result = evaluate(load(args.checkpoint), validation_dataset(args.data), args.batch_size, args.max_sequences)
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
