"""DoReMi's domain weights (Xie et al. 2023, Algorithm 1): the exponentiated-gradient update of Group
DRO over domains, driven by the proxy model's clipped excess loss over a reference model.

Per optimizer step, from the step's per-domain sums over *all* its tokens (every micro-batch, every
rank)::

    lambda_i = sum_t max(loss_proxy_t - loss_ref_t, 0) / tokens_i     (a domain absent: previous lambda_i)
    alpha'   = alpha * exp(eta * lambda)
    alpha    = (1 - c) * alpha' / sum(alpha') + c / k

and the output is the mean of alpha over the steps (not the last alpha). The update runs in float64 on
every rank from all-reduced sums, so every rank holds the same weights without a broadcast.

This module is the arithmetic only (no process group, no model): :mod:`training.objectives.doremi`
computes the sums and calls :meth:`DomainWeights.update`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class DomainWeights:
    """The weights ``alpha`` over ``domains`` (a fixed order), their running mean and the last lambda.

    ``initial``: the starting weights (normalised; default uniform). ``average_initial``: count the
    starting weights in the mean, as the reference implementation does (its average starts at the
    initial weights with a count of one); the paper's mean runs over the updated weights only.
    ``initial_lambda``: the lambda of a domain that has not yet been seen in any step (the reference
    code starts at log(vocabulary size); 0 leaves an unseen domain's weight to the smoothing)."""

    def __init__(self, domains: Sequence[str], eta: float = 1.0, smoothing: float = 1e-3,
                 initial: Sequence[float] | None = None, average_initial: bool = False, initial_lambda: float = 0.0):
        k = len(domains)
        if k < 1:
            raise ValueError("DoReMi needs at least one domain")
        if eta < 0 or not 0 <= smoothing <= 1:
            raise ValueError(f"eta must be >= 0 and smoothing in [0, 1] (got eta={eta}, smoothing={smoothing})")
        self.domains, self.eta, self.smoothing = list(domains), float(eta), float(smoothing)
        a = torch.full((k,), 1.0 / k, dtype=torch.float64) if initial is None else torch.tensor(initial, dtype=torch.float64)
        if a.shape != (k,) or bool((a < 0).any()) or float(a.sum()) <= 0:
            raise ValueError(f"initial weights must be {k} non-negative numbers with a positive sum")
        self.alpha = a / a.sum()
        self.initial = self.alpha.clone()
        self.average = self.alpha.clone()
        self.count = torch.tensor(1 if average_initial else 0, dtype=torch.int64)  # weights in the average
        self.lam = torch.full((k,), float(initial_lambda), dtype=torch.float64)
        self.steps = torch.zeros((), dtype=torch.int64)  # updates done

    @property
    def k(self) -> int:
        return len(self.domains)

    def update(self, excess_sum: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """One step from per-domain sums of clipped excess loss and token counts; returns the new alpha."""
        excess_sum, tokens = excess_sum.double().cpu(), tokens.double().cpu()
        seen = tokens > 0
        self.lam = torch.where(seen, excess_sum / tokens.clamp_min(1), self.lam)
        logits = torch.log(self.alpha) + self.eta * self.lam  # in log space: exp(eta * lambda) may overflow
        self.alpha = (1 - self.smoothing) * torch.softmax(logits, dim=0) + self.smoothing / self.k
        self.count += 1
        self.average = self.average + (self.alpha - self.average) / self.count.double()
        self.steps += 1
        return self.alpha

    def as_dict(self, values: torch.Tensor) -> dict[str, float]:
        return {d: float(v) for d, v in zip(self.domains, values.tolist(), strict=True)}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"alpha": self.alpha, "average": self.average, "count": self.count, "lambda": self.lam,
                "steps": self.steps, "initial": self.initial}

    def load_state_dict(self, state: dict) -> None:
        if state["alpha"].shape != self.alpha.shape:
            raise ValueError(f"the checkpoint has weights for {state['alpha'].numel()} domains, this run "
                             f"{self.k} ({', '.join(self.domains)})")
        self.alpha, self.average = state["alpha"].double().clone(), state["average"].double().clone()
        self.count, self.lam = state["count"].clone(), state["lambda"].double().clone()
        self.steps, self.initial = state["steps"].clone(), state["initial"].double().clone()
