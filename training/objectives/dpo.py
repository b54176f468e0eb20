"""Direct preference optimisation (Rafailov et al. 2023): raise the policy's log-likelihood of the chosen
completion over the rejected one, relative to a frozen reference model.

    python -m training.train --objective dpo --init-from SFT_RUN/final --data PAIRS_MDS --scale debug-tiny \\
        --beta 0.1 --out DPO_RUN                        # the reference is --init-from unless --reference R
    python -m training.objectives.dpo precompute --reference SFT_RUN/final --data PAIRS_MDS --out PAIRS_REF \\
        --scale debug-tiny                               # then: --data PAIRS_REF --dpo-precomputed-ref

The DPO MDS layout (one pair per sample): ``chosen`` (uint32: prompt + chosen completion), ``rejected``
(uint32: prompt + rejected completion), ``prompt_len`` (int32: the shared prompt prefix) and ``pair_id``;
optionally ``ref_chosen_logp`` / ``ref_rejected_logp`` (float32, the reference's log-probabilities, written
by ``precompute`` above).

``collate`` crops each sequence to ``seq_len + 1`` (keep the start), right-pads chosen and rejected to one
common length and stacks them as one ``tokens`` tensor ``(2B, T) = [chosen; rejected]`` (one forward
for both, as TRL does); the completion mask covers the targets at positions ``>= prompt_len`` and ``< length``
(so the prompt and the padding carry nothing; right padding never reaches a real token through causal
attention). A sequence's log-probability is the SUM of its completion tokens' log-probabilities (fp32
log-softmax). With ``Δ = (π_c − ref_c) − (π_r − ref_r)`` the per-pair losses are (``--dpo-loss``):

* ``sigmoid`` (default): ``−(1−ε)·logσ(βΔ) − ε·logσ(−βΔ)``, ``ε = --label-smoothing`` (cDPO; 0 by default);
* ``ipo``: ``(Δ_avg − 1/(2β))²``, ``Δ_avg`` from the log-ratios divided by each completion's token count
  (TRL's length-normalised IPO);
* ``hinge``: ``relu(1 − βΔ)``.

The micro-batch loss is the mean over its pairs; every micro-batch holds ``micro_batch`` pairs (the
loader drops a short last batch), so the trainer's averaging over micro-batches and ranks is the mean
over the pairs of the global batch. Metrics (TRL's names): ``rewards/chosen`` = mean β(π_c − ref_c),
``rewards/rejected``, ``rewards/accuracies`` = mean[r_c > r_r], ``rewards/margins``, ``logps/chosen``,
``logps/rejected``. With the policy equal to the reference the loss is log 2 and the rewards 0.

The reference (``--reference SPEC``, default the run's ``--init-from``: an export folder, a checkpoint
step-N, a Hugging Face folder) is loaded whole with ``training.start.load_full`` and returned from
``extra_models``, so the builder shards it like the policy, frozen and in eval mode; its log-probs are
computed under ``torch.no_grad()``. With ``--dpo-precomputed-ref`` no reference is loaded: the samples'
``ref_chosen_logp`` / ``ref_rejected_logp`` are used (computed with the same crop: give ``precompute`` the
run's ``--scale``). Nothing to checkpoint: the reference is an input.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from training.objectives.base import Batch, Objective, register

LOSSES = ("sigmoid", "ipo", "hinge")
REF_FIELDS = ("ref_chosen_logp", "ref_rejected_logp")


def sequence_logps(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per row, the sum over the masked targets of log p(tokens[:, 1:] | prefix): ``logits`` (N, T-1, V)
    for ``tokens[:, :-1]``, ``mask`` (N, T-1) over the targets; fp32."""
    logits = logits.float()
    targets = tokens[:, 1:]
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return (picked * mask).sum(1)


def dpo_losses(pi_c: torch.Tensor, pi_r: torch.Tensor, ref_c: torch.Tensor, ref_r: torch.Tensor, beta: float,
               kind: str = "sigmoid", label_smoothing: float = 0.0, n_c: torch.Tensor | None = None,
               n_r: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pair losses (see the module docstring); ``n_c`` / ``n_r``: completion token counts (``ipo``)."""
    lc, lr = pi_c - ref_c, pi_r - ref_r
    if kind == "sigmoid":
        z = beta * (lc - lr)
        return -(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    if kind == "hinge":
        return torch.relu(1 - beta * (lc - lr))
    if kind == "ipo":
        if n_c is None or n_r is None:
            raise ValueError("the ipo loss needs the completion token counts")
        delta = lc / n_c.clamp_min(1) - lr / n_r.clamp_min(1)
        return (delta - 1 / (2 * beta)) ** 2
    raise ValueError(f"unknown DPO loss {kind!r} (known: {', '.join(LOSSES)})")


def pair_batch(samples: list[dict], max_len: int | None) -> Batch:
    """``prompt_len`` (B,), ``tokens`` (2B, T) = [chosen; rejected] right-padded with 0, ``mask`` (2B, T-1)
    over the targets, ``n_completion`` (2B,) and ``lengths`` (2B,); sequences cropped to ``max_len`` (keep
    the start)."""
    seqs = [np.asarray(s["chosen"]) for s in samples] + [np.asarray(s["rejected"]) for s in samples]
    if max_len is not None:
        seqs = [x[:max_len] for x in seqs]
    prompt = torch.tensor([int(s["prompt_len"]) for s in samples] * 2, dtype=torch.int64)
    lengths = torch.tensor([len(x) for x in seqs], dtype=torch.int64)
    t = max(2, int(lengths.max()))
    tokens = torch.zeros(len(seqs), t, dtype=torch.int64)
    for i, x in enumerate(seqs):
        tokens[i, : len(x)] = torch.from_numpy(x.astype(np.int64))
    pos = torch.arange(t)
    completion = (pos[None] >= prompt[:, None]) & (pos[None] < lengths[:, None])  # over input positions
    # the first value has one row per sample: StreamingDataLoader counts a batch's samples by it (its resume state)
    return {"prompt_len": prompt[: len(samples)], "tokens": tokens, "mask": completion[:, 1:],
            "n_completion": completion.sum(1), "lengths": lengths}


@register
class DPO(Objective):
    name = "dpo"
    fields = ("chosen", "rejected", "prompt_len")

    @classmethod
    def add_arguments(cls, g) -> None:
        try:  # DoReMi's group may already hold --reference (one flag for both: the frozen model to compare to)
            g.add_argument("--reference", metavar="SPEC",
                           help="the frozen reference model (export folder, checkpoint step-N, Hugging Face folder)")
        except argparse.ArgumentError:
            pass
        g.add_argument("--beta", type=float, default=0.1, help="DPO's beta (default 0.1)")
        g.add_argument("--dpo-loss", choices=LOSSES, default="sigmoid", help="sigmoid (default), ipo or hinge")
        g.add_argument("--label-smoothing", type=float, default=0.0,
                       help="cDPO's label smoothing of the sigmoid loss (default 0)")
        g.add_argument("--rpo-alpha", type=float, default=0.0,
                       help="RPO: add alpha x the chosen responses' NLL (per token, averaged over pairs) to the loss, "
                            "which keeps DPO from lowering the chosen responses' likelihood (default 0: off)")
        g.add_argument("--dpo-precomputed-ref", action="store_true",
                       help="read the reference's log-probs from the samples' ref_chosen_logp / ref_rejected_logp "
                            "(python -m training.objectives.dpo precompute) instead of loading a reference")

    def __init__(self, scale, options=None):
        super().__init__(scale, options)
        o = options
        self.beta = float(getattr(o, "beta", 0.1) if o is not None else 0.1)
        self.kind = getattr(o, "dpo_loss", "sigmoid") or "sigmoid"
        self.label_smoothing = float(getattr(o, "label_smoothing", 0.0) or 0.0)
        self.precomputed = bool(getattr(o, "dpo_precomputed_ref", False))
        self.rpo_alpha = float(getattr(o, "rpo_alpha", 0.0) or 0.0)
        if self.rpo_alpha < 0:
            raise SystemExit(f"--rpo-alpha {self.rpo_alpha}: must be >= 0")
        if self.kind not in LOSSES:
            raise SystemExit(f"--dpo-loss {self.kind}: expected one of {', '.join(LOSSES)}")
        if self.beta <= 0:
            raise SystemExit(f"--beta {self.beta}: must be positive")
        if not 0 <= self.label_smoothing < 0.5:
            raise SystemExit(f"--label-smoothing {self.label_smoothing}: expected 0 <= e < 0.5")
        if self.label_smoothing and self.kind != "sigmoid":
            raise SystemExit("--label-smoothing applies to --dpo-loss sigmoid only")
        if self.precomputed:
            self.fields = ("chosen", "rejected", "prompt_len", *REF_FIELDS)
        self.reference_spec = getattr(o, "reference", None) or getattr(o, "init_from", None)
        if o is not None and not self.precomputed and not self.reference_spec:
            raise SystemExit("--objective dpo needs a reference: --reference SPEC, --init-from (the default "
                             "reference), or --dpo-precomputed-ref")
        self.reference = None  # a module, loaded by extra_models (tests may set it)

    def extra_models(self):
        if self.precomputed:
            return {}
        if self.reference is None:
            from training.start import load_full

            self.reference = load_full(self.reference_spec, self.scale)
        return {"reference": self.reference}

    def collate(self, samples: list[dict]) -> Batch:
        batch = pair_batch(samples, self.scale.model.seq_len + 1)
        if self.precomputed:
            for f in REF_FIELDS:
                batch[f] = torch.tensor([float(s[f]) for s in samples], dtype=torch.float32)
        return batch

    def count_tokens(self, batch: Batch) -> int:
        return int(batch["lengths"].sum())

    def reference_logps(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if self.precomputed:
            return batch["ref_chosen_logp"].float(), batch["ref_rejected_logp"].float()
        if self.reference is None:
            raise RuntimeError("the DPO reference is not loaded (extra_models)")
        tokens = batch["tokens"]
        with torch.no_grad():
            ref = sequence_logps(self.reference(tokens[:, :-1]), tokens, batch["mask"])
        return ref.chunk(2)

    def loss(self, model, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tokens = batch["tokens"]
        logps = sequence_logps(model(tokens[:, :-1]), tokens, batch["mask"])
        pi_c, pi_r = logps.chunk(2)
        ref_c, ref_r = self.reference_logps(batch)
        n_c, n_r = batch["n_completion"].chunk(2)
        per_pair = dpo_losses(pi_c, pi_r, ref_c, ref_r, self.beta, self.kind, self.label_smoothing, n_c, n_r)
        loss = per_pair.mean()
        nll = -(pi_c / n_c.clamp(min=1)).mean()  # the chosen responses' NLL per token, averaged over pairs
        if self.rpo_alpha:
            loss = loss + self.rpo_alpha * nll
        with torch.no_grad():
            r_c, r_r = self.beta * (pi_c - ref_c), self.beta * (pi_r - ref_r)
            metrics = {"loss": loss.detach(), "rewards/chosen": r_c.mean(), "rewards/rejected": r_r.mean(),
                       "rewards/accuracies": (r_c > r_r).float().mean(), "rewards/margins": (r_c - r_r).mean(),
                       "logps/chosen": pi_c.mean(), "logps/rejected": pi_r.mean(), "nll/chosen": nll.detach()}
        return loss, metrics


# -- precomputed reference log-probs ------------------------------------------------------------------------


@torch.no_grad()
def precompute_reference(model, samples: list[dict], max_len: int | None = None, batch_size: int = 8,
                         device: str | torch.device = "cpu") -> list[tuple[float, float]]:
    """(reference log-prob of chosen, of rejected) per sample, as ``--objective dpo`` computes them
    (``max_len``: the run's ``seq_len + 1`` crop)."""
    model = model.to(device).eval()
    out: list[tuple[float, float]] = []
    for i in range(0, len(samples), batch_size):
        b = pair_batch(samples[i:i + batch_size], max_len)
        tokens = b["tokens"].to(device)
        logps = sequence_logps(model(tokens[:, :-1]), tokens, b["mask"].to(device)).cpu()
        c, r = logps.chunk(2)
        out += list(zip(c.tolist(), r.tolist(), strict=True))
    return out


def _columns(folder: str) -> dict[str, str]:
    import json
    from pathlib import Path

    index = json.loads((Path(folder) / "index.json").read_text())
    shard = index["shards"][0]
    return dict(zip(shard["column_names"], shard["column_encodings"], strict=True))


def precompute_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.objectives.dpo precompute",
                                description="copy a DPO MDS dataset, adding the reference's log-probs")
    p.add_argument("--reference", required=True, help="export folder, checkpoint step-N or Hugging Face folder")
    p.add_argument("--data", required=True, help="the DPO MDS folder (local)")
    p.add_argument("--out", required=True, help="the copy with ref_chosen_logp / ref_rejected_logp")
    p.add_argument("--scale", help="the DPO run's scale: crop to its seq_len + 1 as the run does (default: no crop)")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)
    from streaming import MDSWriter, StreamingDataset

    from training.start import load_full

    scale = None
    if args.scale:
        from training.config import load_scale

        scale = load_scale(args.scale)
    max_len = scale.model.seq_len + 1 if scale else None
    model = load_full(args.reference, scale)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ds = StreamingDataset(local=args.data, shuffle=False, batch_size=1)
    samples = [ds[i] for i in range(ds.num_samples)]
    refs = precompute_reference(model, samples, max_len, args.batch_size, device)
    columns = {k: v for k, v in _columns(args.data).items() if k not in REF_FIELDS}
    columns.update({f: "float32" for f in REF_FIELDS})
    with MDSWriter(out=args.out, columns=columns) as w:
        for s, (c, r) in zip(samples, refs, strict=True):
            w.write({**{k: s[k] for k in columns if k not in REF_FIELDS},
                     "ref_chosen_logp": np.float32(c), "ref_rejected_logp": np.float32(r)})
    print(f"{len(samples)} pairs -> {args.out} (reference {args.reference}"
          + (f", cropped to {max_len} tokens" if max_len else "") + ")")
    return 0


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 2 or sys.argv[1] != "precompute":
        sys.exit("usage: python -m training.objectives.dpo precompute --reference R --data IN --out OUT [--scale S]")
    sys.exit(precompute_main(sys.argv[2:]))
