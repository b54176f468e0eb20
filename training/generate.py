"""Batched sampling from a causal LM, and the log-probabilities of given completions.

    from training.generate import generate, sample, sequence_logprobs
    outs = generate(model, [[5, 6, 7], [8, 9]], max_new_tokens=32, temperature=0, stop_ids=[eos])
    groups = sample(model, prompts, n=4, max_new_tokens=32, temperature=1.0, top_p=0.95, seed=3)
    lp = sequence_logprobs(model, prompts, completions)           # sum of log p(completion | prompt)
    lp_mean = sequence_logprobs(model, prompts, completions, mean=True)   # per completion token

``model`` is anything with ``forward(tokens, doc_ids=None) -> logits``: ``training.model.Transformer`` or
``training.hf.HFCausalLM``. Prompts of a batch are **left-padded**, and the padding is its own document in
``doc_ids`` (number 0, the prompt and completion number 1): real tokens never attend to it and their
positions restart at the prompt's first token, so a prompt's result is the one it has alone, whatever its
batch-mates (up to floating-point noise of differently shaped kernels). Sampling draws from one seeded
``torch.Generator`` per prompt (seeded from ``seed`` and the prompt's index in the list), so it is
deterministic and does not depend on ``batch_size`` either.

There is **no KV cache**: each new token recomputes the whole (prompt + completion so far) sequence, a
cost of about ``max_new_tokens`` full forwards per batch. That is fine for the tiny models and short
completions of post-training on CPU; rows that have stopped are dropped from the batch as they stop.
The model runs in eval mode and gets its training mode back afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_SEED_STRIDE = 1_000_003


def _device(model, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


class _eval:
    """Eval mode inside, the model's own mode back afterwards."""

    def __init__(self, model):
        self.model, self.was = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was)


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (batch, longest), doc_ids (batch, longest)): each sequence right-aligned after ``pad_id``s;
    doc_ids 0 on the padding, 1 on the sequence."""
    longest = max(len(s) for s in seqs)
    tokens = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    doc_ids = torch.zeros((len(seqs), longest), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            tokens[i, longest - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
            doc_ids[i, longest - len(s):] = 1
    return tokens.to(device), doc_ids.to(device)


def _next_tokens(logits: torch.Tensor, temperature: float, top_p: float, gens: list[torch.Generator]) -> torch.Tensor:
    """One token per row of ``logits`` (rows, vocab): argmax at temperature 0, else a draw from the
    temperature-scaled distribution cut to its nucleus (the smallest set of most likely tokens whose
    probability reaches ``top_p``; the most likely token always stays). Inverse-CDF sampling with one
    uniform number per row from that row's generator."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    if top_p < 1.0:
        before = sorted_p.cumsum(-1) - sorted_p  # probability of the tokens ranked above each one
        keep = before < top_p
        keep[:, 0] = True
        sorted_p = sorted_p * keep
    cdf = sorted_p.cumsum(-1)
    u = torch.stack([torch.rand((), generator=g) for g in gens]).to(cdf.device, cdf.dtype)
    pick = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0]
    pick = torch.minimum(pick, (sorted_p > 0).sum(-1) - 1)  # never a token outside the nucleus
    return order.gather(-1, pick[:, None])[:, 0]


@torch.no_grad()
def generate(model, prompts: list[list[int]], *, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
             stop_ids: Sequence[int] = (), pad_id: int = 0, batch_size: int = 16, seed: int = 0,
             device=None) -> list[list[int]]:
    """One completion per prompt (token ids after the prompt; the stop token included when one was hit,
    else ``max_new_tokens`` tokens). ``temperature`` 0: greedy. ``top_p`` < 1: nucleus sampling.
    ``stop_ids``: a row stops at the first of these it produces; a batch stops when all its rows have.
    Prompts go ``batch_size`` at a time, left-padded with ``pad_id`` (see the module docstring)."""
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, not {max_new_tokens}")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("generate: every prompt needs at least one token")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], not {top_p}")
    dev = _device(model, device)
    stops = torch.tensor(sorted(set(int(s) for s in stop_ids)), dtype=torch.long, device=dev)
    out: list[list[int]] = [[] for _ in prompts]
    with _eval(model):
        for lo in range(0, len(prompts), batch_size):
            idx = list(range(lo, min(lo + batch_size, len(prompts))))
            gens = [torch.Generator().manual_seed((seed * _SEED_STRIDE + i) % (2 ** 63)) for i in idx]
            tokens, doc_ids = left_pad([prompts[i] for i in idx], pad_id, dev)
            active = torch.arange(len(idx), device=dev)  # rows of this batch still generating
            for _ in range(max_new_tokens):
                logits = model(tokens, doc_ids)[:, -1, :]
                rows = active.tolist()
                nxt = _next_tokens(logits, temperature, top_p, [gens[r] for r in rows])
                for r, t in zip(rows, nxt.tolist(), strict=True):
                    out[idx[r]].append(t)
                done = torch.isin(nxt, stops) if len(stops) else torch.zeros_like(nxt, dtype=torch.bool)
                if bool(done.all()):
                    break
                keep = ~done
                tokens = torch.cat([tokens[keep], nxt[keep, None]], dim=1)
                doc_ids = torch.cat([doc_ids[keep], torch.ones_like(nxt[keep, None])], dim=1)
                active = active[keep]
    return out


def sample(model, prompts: list[list[int]], n: int, **kw) -> list[list[list[int]]]:
    """``n`` completions per prompt (``generate``'s keywords): the prompts each repeated ``n`` times, so
    every copy draws from its own generator. ``result[i][j]``: the j-th completion of prompt i."""
    if n < 1:
        raise ValueError(f"sample: n must be >= 1, not {n}")
    flat = generate(model, [p for p in prompts for _ in range(n)], **kw)
    return [flat[i * n:(i + 1) * n] for i in range(len(prompts))]


@torch.no_grad()
def token_logprobs(model, prompts: list[list[int]], completions: list[list[int]], *, batch_size: int = 16,
                   pad_id: int = 0, device=None) -> list[torch.Tensor]:
    """log p(token | prompt, earlier completion tokens) for each completion token (a float32 CPU tensor
    per completion, of its length). Each prompt + completion is left-padded as in :func:`generate`."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("token_logprobs: every prompt needs at least one token")
    dev = _device(model, device)
    out: list[torch.Tensor] = []
    with _eval(model):
        for lo in range(0, len(prompts), batch_size):
            ps, cs = prompts[lo:lo + batch_size], completions[lo:lo + batch_size]
            tokens, doc_ids = left_pad([list(p) + list(c) for p, c in zip(ps, cs, strict=True)], pad_id, dev)
            logits = model(tokens, doc_ids)[:, :-1].float()
            targets = tokens[:, 1:]
            lp = logits.gather(-1, targets[..., None])[..., 0] - torch.logsumexp(logits, dim=-1)
            lp = lp.cpu()
            for i, c in enumerate(cs):
                out.append(lp[i, lp.shape[1] - len(c):].clone() if len(c) else torch.zeros(0))
    return out


def sequence_logprobs(model, prompts: list[list[int]], completions: list[list[int]], *, batch_size: int = 16,
                      pad_id: int = 0, device=None, mean: bool = False) -> list[float]:
    """The sum of log p(completion tokens | prompt) per completion (0 for an empty one); with ``mean``,
    divided by the number of completion tokens (``len(completion)``; length-normalised). Per-token
    values: :func:`token_logprobs`; counts: :func:`sequence_logprobs_and_counts`."""
    sums, counts = sequence_logprobs_and_counts(model, prompts, completions, batch_size=batch_size,
                                                pad_id=pad_id, device=device)
    if mean:
        return [s / c if c else 0.0 for s, c in zip(sums, counts, strict=True)]
    return sums


def sequence_logprobs_and_counts(model, prompts: list[list[int]], completions: list[list[int]], *,
                                 batch_size: int = 16, pad_id: int = 0, device=None) -> tuple[list[float], list[int]]:
    """(sums of log p(completion tokens | prompt), numbers of completion tokens)."""
    per_token = token_logprobs(model, prompts, completions, batch_size=batch_size, pad_id=pad_id, device=device)
    return [float(t.sum()) for t in per_token], [int(t.numel()) for t in per_token]
