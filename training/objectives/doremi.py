"""The DoReMi proxy: a model trained with Group DRO over domains, whose domain weights (the output)
move toward the domains where it trails a fixed reference model the most.

    python -m training.train --objective doremi --reference REF_RUN/final \\
        --data DATASET --mix uniform --scale debug-tiny --out PROXY_RUN

Per optimizer step (``training.domain_weights`` has the update rule):

* ``begin_step`` counts the step's target tokens per domain over its micro-batches and all-reduces
  them (k numbers), so every micro-batch's loss can be normalised by the global per-domain count;
* ``loss``: per-token losses of the proxy (fp32 logits) and of the reference (no gradient; or the
  ``ref_loss`` column precomputed by ``python -m training.doremi ref-losses``); the clipped excess
  ``max(proxy - ref, 0)`` is summed per domain; the loss is the paper's
  ``sum_i alpha_i * (mean token loss of domain i over the global batch)`` (plus z-loss), scaled so
  that the trainer's division by the accumulation count and FSDP's mean over ranks leave exactly it;
* ``end_step`` all-reduces the k excess sums and updates the weights once (``--doremi-lookahead``
  instead updates them in ``begin_step`` from no-grad forwards, so the step trains on the weights its
  own batch gave, at one more forward pass per micro-batch). Either way the weights depend on the
  global batch only, not on the accumulation count or the number of ranks.

Rank 0 appends each step's weights, lambda, excess and tokens per domain to
``OUT/doremi_trajectory.jsonl`` and rewrites ``OUT/domain_weights.json`` (the running mean under
``train_domain_weights``, DoReMi's config format, plus our own fields); the weights, their mean and
lambda are in every checkpoint, so a resumed run continues the identical trajectory.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from training.domain_weights import DomainWeights
from training.objectives.base import Batch, Objective, RunInfo, register

TRAJECTORY, WEIGHTS = "doremi_trajectory.jsonl", "domain_weights.json"
ABSENT_WARN_AFTER, ABSENT_WARN_SHARE = 20, 0.5  # warn when a domain misses this share of the first steps


def token_losses(model, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token next-token losses ``(batch, seq)`` in fp32, logsumexp of the logits ``(batch, seq)``)."""
    logits = model(tokens[:, :-1]).float()
    b, s, v = logits.shape
    nll = F.cross_entropy(logits.reshape(-1, v), tokens[:, 1:].reshape(-1), reduction="none").view(b, s)
    return nll, torch.logsumexp(logits, dim=-1)


def read_initial(spec: str | None, domains: list[str]) -> list[float] | None:
    """``uniform`` / None -> None (uniform); a weights file (flat, or DoReMi's ``train_domain_weights``)
    -> the weights in ``domains`` order (a domain it does not name gets 0)."""
    if spec in (None, "uniform"):
        return None
    data = json.loads(Path(spec).read_text(encoding="utf-8"))
    data = data.get("train_domain_weights", data)
    unknown = set(data) - set(domains)
    if unknown:
        raise SystemExit(f"{spec}: weights for unknown domains {sorted(unknown)} (domains: {', '.join(domains)})")
    return [float(data.get(d, 0.0)) for d in domains]


@register
class DoReMiProxy(Objective):
    name = "doremi"
    fields = ("tokens", "domain")

    @classmethod
    def add_arguments(cls, g) -> None:
        g.add_argument("--reference", metavar="FOLDER",
                       help="the reference model (a run's exported final/ folder), trained on the reference mixture")
        g.add_argument("--reference-losses", action="store_true",
                       help="read the reference's per-token losses from the shards' ref_loss column instead of "
                            "running the reference (python -m training.doremi ref-losses writes it)")
        g.add_argument("--domains", help="comma-separated domain order (default: the dataset's domains, sorted)")
        g.add_argument("--doremi-eta", type=float, default=1.0, help="step size of the weight update (default 1.0)")
        g.add_argument("--doremi-smoothing", type=float, default=1e-3,
                       help="mix of the uniform distribution into each update (default 1e-3)")
        g.add_argument("--doremi-initial", default="uniform",
                       help="starting weights: uniform (default) or a weights JSON")
        g.add_argument("--doremi-lookahead", action="store_true",
                       help="update the weights before the step's backward pass (one extra no-grad forward per "
                            "micro-batch) instead of after it")
        g.add_argument("--doremi-average-initial", action="store_true",
                       help="count the starting weights in the averaged output, as the reference code does")

    def __init__(self, scale, options=None):
        super().__init__(scale, options)
        o = options
        self.reference_path = getattr(o, "reference", None)
        self.precomputed = bool(getattr(o, "reference_losses", False))
        if self.precomputed:
            self.fields = ("tokens", "domain", "ref_loss")
        elif not self.reference_path:
            raise SystemExit("--objective doremi needs --reference FOLDER (or --reference-losses)")
        self.lookahead = bool(getattr(o, "doremi_lookahead", False))
        self.reference = None
        self.weights: DomainWeights | None = None
        self.run: RunInfo | None = None
        self._resumed_at = 0

    # -- building ---------------------------------------------------------------------------------------

    def extra_models(self):
        if self.precomputed:
            return {}
        if self.reference is None:
            from training.export import load

            ref = load(self.reference_path)
            mine, theirs = self.scale.model.model_dump(), ref.cfg.model_dump()
            if mine != theirs:
                raise SystemExit(f"the reference {self.reference_path} has the shape {theirs}, this run "
                                 f"{mine}: train the reference at the proxy's scale")
            self.reference = ref
        return {"reference": self.reference}

    def bind(self, run: RunInfo) -> None:
        o = self.options
        domains = [d.strip() for d in o.domains.split(",")] if getattr(o, "domains", None) else list(run.domains)
        if not domains:
            raise SystemExit("--objective doremi needs the data's domains: a dataset written with domain streams "
                             "(--data DATASET --mix uniform) or --domains a,b,c")
        if len(set(domains)) != len(domains):
            raise SystemExit(f"--domains lists a domain twice: {domains}")
        self.run, self.domain_ids = run, {d: i for i, d in enumerate(domains)}
        self.weights = DomainWeights(domains, o.doremi_eta, o.doremi_smoothing,
                                     read_initial(o.doremi_initial, domains), o.doremi_average_initial)
        self._step_tokens = torch.zeros(len(domains), dtype=torch.float64)
        self._excess = torch.zeros(len(domains), dtype=torch.float64)
        self._absent = torch.zeros(len(domains), dtype=torch.int64)
        self._warned = False
        self._lookahead_ref: list[torch.Tensor] = []

    # -- the step ---------------------------------------------------------------------------------------

    def collate(self, samples: list[dict]) -> Batch:
        import numpy as np

        s = self.scale.model.seq_len
        tokens = np.stack([x["tokens"] for x in samples])[:, : s + 1]
        try:
            dom = [self.domain_ids[x["domain"]] for x in samples]
        except KeyError as exc:
            raise ValueError(f"a sample of domain {exc.args[0]!r}, which is not among the run's domains "
                             f"({', '.join(self.domain_ids)})") from None
        batch = {"tokens": torch.from_numpy(tokens.astype(np.int64)), "domain": torch.tensor(dom, dtype=torch.int64)}
        if self.precomputed:
            batch["ref_loss"] = torch.from_numpy(np.stack([x["ref_loss"] for x in samples])[:, :s].astype(np.float32))
        return batch

    def _reference_nll(self, batch: Batch) -> torch.Tensor:
        if self.precomputed:
            return batch["ref_loss"].float()
        with torch.no_grad():
            return token_losses(self.reference, batch["tokens"])[0]

    def _domain_sums(self, values: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        """Per-domain sums (float64, CPU) of per-sequence ``values``."""
        return torch.zeros(self.weights.k, dtype=torch.float64).index_add_(0, domain.cpu(), values.double().cpu())

    def _all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """SUM over ranks of a small CPU float64 tensor (through the device for NCCL)."""
        x = t.to(self.run.world.device)
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x.cpu()

    def begin_step(self, batches: list[Batch]) -> None:
        s = self.scale.model.seq_len
        counts = self._domain_sums(torch.full((sum(len(b["domain"]) for b in batches),), float(s)),
                                   torch.cat([b["domain"] for b in batches]))
        self._step_tokens = self._all_reduce(counts)
        self._excess.zero_()
        if self.lookahead:  # the weights this step's batch gives, before its backward pass
            device, self._lookahead_ref = self.run.world.device, []
            with torch.no_grad():
                for b in batches:
                    tokens, domain = b["tokens"].to(device), b["domain"].to(device)
                    ref = self._reference_nll({k: v.to(device) for k, v in b.items()})
                    nll, _ = token_losses(self.run.model, tokens)
                    self._excess += self._domain_sums((nll - ref).clamp_min(0).sum(1), domain)
                    self._lookahead_ref.append(ref)
            self._update()

    def loss(self, model, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tokens, domain = batch["tokens"], batch["domain"]
        nll, lse = token_losses(model, tokens)
        ref = self._lookahead_ref.pop(0) if self.lookahead else self._reference_nll(batch)
        excess = (nll.detach() - ref).clamp_min(0)
        if not self.lookahead:
            self._excess += self._domain_sums(excess.sum(1), domain)
        # alpha_i / (global tokens of domain i), times what the trainer's / accumulation and FSDP's mean undo
        n = self._step_tokens
        per_domain = torch.where(n > 0, self.weights.alpha / n.clamp_min(1), torch.zeros_like(n))
        scale = per_domain * (self.run.accumulation * self.run.world.size)
        w = scale.to(nll.device, torch.float32)[domain]
        dro = (nll.sum(1) * w).sum()
        loss = dro + self.scale.z_loss * lse.pow(2).mean() if self.scale.z_loss else dro
        return loss, {"loss": nll.detach().mean(), "dro_loss": dro.detach(), "excess": excess.mean()}

    def _update(self) -> None:
        excess = self._all_reduce(self._excess)
        self.weights.update(excess, self._step_tokens)
        self._last_excess = excess

    def end_step(self) -> dict[str, float]:
        if not self.lookahead:
            self._update()
        w, n = self.weights, self._step_tokens
        self._absent += (n == 0).long()
        self._check_absent()
        if self.run.world.main:
            self._record(n)
        return {f"domain_weight/{d}": v for d, v in w.as_dict(w.alpha).items()}

    def _check_absent(self) -> None:
        steps = int(self.weights.steps) - self._resumed_at
        if self._warned or steps < ABSENT_WARN_AFTER:
            return
        self._warned = True
        rare = [d for d, a in zip(self.weights.domains, self._absent.tolist(), strict=True) if a > ABSENT_WARN_SHARE * steps]
        if rare and self.run.world.main:
            warnings.warn(f"DoReMi: domain(s) {', '.join(rare)} were absent from more than "
                          f"{ABSENT_WARN_SHARE:.0%} of the first {steps} steps: the global batch is too small for "
                          f"{self.weights.k} domains and their weights barely move; raise --global-batch",
                          stacklevel=2)

    # -- records and state ------------------------------------------------------------------------------

    def _record(self, n: torch.Tensor) -> None:
        w = self.weights
        excess = {d: (float(e / t) if t > 0 else None)
                  for d, e, t in zip(w.domains, self._last_excess.tolist(), n.tolist(), strict=True)}
        row = {"step": int(w.steps), "alpha": w.as_dict(w.alpha), "lambda": w.as_dict(w.lam), "excess": excess,
               "tokens": {d: int(t) for d, t in zip(w.domains, n.tolist(), strict=True)},
               "average": w.as_dict(w.average)}
        with open(self.run.out / TRAJECTORY, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        write_json(self.run.out / WEIGHTS, self.weights_record())

    def weights_record(self) -> dict:
        """``domain_weights.json``: the averaged weights in DoReMi's config format, plus our fields."""
        w, o = self.weights, self.options
        avg = w.as_dict(w.average)
        return {"train_domain_weights": avg, "eval_domain_weights": avg, "final_domain_weights": w.as_dict(w.alpha),
                "reference_weights": w.as_dict(w.initial), "method": "doremi", "steps": int(w.steps),
                "eta": w.eta, "smoothing": w.smoothing, "domains": w.domains, "lookahead": self.lookahead,
                "average_initial": bool(o.doremi_average_initial),
                "reference": "precomputed ref_loss column" if self.precomputed else str(self.reference_path)}

    def state_dict(self) -> dict:
        return self.weights.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.weights.load_state_dict(state)
        self._resumed_at = int(self.weights.steps)
        if self.run.world.main:  # steps logged after that checkpoint will be logged again
            path = self.run.out / TRAJECTORY
            if path.exists():
                keep = [x for x in path.read_text(encoding="utf-8").splitlines()
                        if x.strip() and json.loads(x)["step"] <= self._resumed_at]
                path.write_text("".join(x + "\n" for x in keep), encoding="utf-8")


def write_json(path: Path, data: dict) -> None:
    """Replace ``path`` atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)
