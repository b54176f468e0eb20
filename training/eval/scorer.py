"""The model side of evaluation: batched continuation scoring, greedy generation and perplexity, all
within the model's context window."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Request:
    """One scoring unit: a context and a continuation (token ids); ``skip`` says why it cannot be
    scored (then it is not run)."""

    context: list[int]
    continuation: list[int]
    skip: str | None = None


class Scorer:
    """Batched continuation scoring and greedy generation for a model returning logits."""

    def __init__(self, model, tokenizer, max_len: int, batch_size: int = 16, device: str = "cpu"):
        self.model, self.tok, self.max_len, self.batch_size, self.device = model, tokenizer, max_len, batch_size, device

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def request(self, context: str, continuation: str) -> Request:
        """Context and continuation tokenised apart, as llm-foundry does, in at most ``max_len``
        tokens: the whole continuation and the end of the context (cut from the left). A continuation
        that leaves no room for a token of context, or an empty context or continuation, is skipped."""
        ctx, cont = self.encode(context), self.encode(continuation)
        room = self.max_len - len(cont)
        if not cont:
            return Request(ctx, cont, "empty continuation")
        if room < 1:
            return Request([], cont, f"continuation of {len(cont)} tokens does not fit the model's "
                                     f"{self.max_len}-token window with any context")
        if not ctx:
            return Request(ctx, cont, "empty context")
        return Request(ctx[-room:], cont)

    def score(self, reqs: list[Request]) -> list[tuple[float, float, bool] | None]:
        """(sum of losses, mean loss, greedy match) of each continuation given its context; None for
        a skipped request.

        Requests are batched by length (longest first, so padding stays small) and, for our own
        model, the output head runs only at the continuation positions: the vocabulary projection
        of every context position is the largest cost and is not needed."""
        import torch
        import torch.nn.functional as F

        out: list[tuple[float, float, bool] | None] = [None] * len(reqs)
        run = [i for i, r in enumerate(reqs) if r.skip is None]
        order = sorted(run, key=lambda i: -(len(reqs[i].context) + len(reqs[i].continuation)))
        partial = hasattr(self.model, "hidden") and hasattr(self.model, "head")
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            chunk = [reqs[i] for i in idx]
            seqs = [r.context + r.continuation for r in chunk]
            width = max(len(s) for s in seqs) - 1
            inp = torch.zeros((len(chunk), max(width, 1)), dtype=torch.long)
            for j, s in enumerate(seqs):
                inp[j, : len(s) - 1] = torch.tensor(s[:-1], dtype=torch.long)
            with torch.no_grad():
                if partial:
                    h = self.model.hidden(inp.to(self.device))
                else:
                    logits_all = self.model(inp.to(self.device))
                for j, r in enumerate(chunk):
                    start = len(r.context) - 1  # position predicting the first continuation token
                    sl = slice(start, start + len(r.continuation))
                    logits = self.model.head(h[j, sl]) if partial else logits_all[j, sl]
                    logp = F.log_softmax(logits.float(), dim=-1).cpu()
                    tgt = torch.tensor(r.continuation, dtype=torch.long)
                    losses = -logp.gather(1, tgt.view(-1, 1)).squeeze(1)
                    greedy = bool((logp.argmax(dim=-1) == tgt).all())
                    out[idx[j]] = (float(losses.sum()), float(losses.mean()), greedy)
        return out

    def generate(self, context: str, stop: str, max_new_tokens: int) -> str | None:
        """Greedy continuation of ``context`` until ``stop`` or ``max_new_tokens`` (at most
        ``max_len - 1``), the context cut from the left to fit; None for an empty context."""
        import torch

        max_new_tokens = min(max_new_tokens, self.max_len - 1)
        ids = self.encode(context)[-(self.max_len - max_new_tokens):]
        if not ids:
            return None
        new: list[int] = []
        for _ in range(max_new_tokens):
            x = torch.tensor([ids + new], dtype=torch.long, device=self.device)
            with torch.no_grad():
                if hasattr(self.model, "hidden") and hasattr(self.model, "head"):
                    last = self.model.head(self.model.hidden(x)[0, -1])
                else:
                    last = self.model(x)[0, -1]
            new.append(int(last.argmax()))
            text = self.tok.decode(new)
            if stop and stop in text:
                return text.split(stop)[0]
        return self.tok.decode(new)


def window_nll(model, ids: list[int], window: int, device: str = "cpu") -> tuple[float, int]:
    """(summed next-token negative log-likelihood in nats, tokens predicted) of ``ids`` scored in
    non-overlapping windows of ``window`` tokens, each window seeing only itself."""
    import torch
    import torch.nn.functional as F

    nll, count = 0.0, 0
    for i in range(0, len(ids) - 1, window):
        chunk = torch.tensor([ids[i:i + window + 1]], dtype=torch.long, device=device)
        if chunk.shape[1] < 2:
            break
        with torch.no_grad():
            logits = model(chunk[:, :-1]).float()
        nll += float(F.cross_entropy(logits[0], chunk[0, 1:], reduction="sum"))
        count += chunk.shape[1] - 1
    return nll, count


def perplexity(model, tok, text: str, window: int, device: str = "cpu", max_tokens: int | None = None) -> float:
    """Token perplexity of ``text`` in non-overlapping windows of ``window`` tokens."""
    import math

    ids = tok.encode(text, add_special_tokens=False).ids
    if max_tokens:
        ids = ids[:max_tokens]
    nll, count = window_nll(model, ids, window, device)
    return math.exp(nll / max(count, 1))


def bits_per_char(model, tok, texts: list[str], window: int, eos_id: int | None, device: str = "cpu") -> dict:
    """Bits per character of ``texts`` under ``model`` with tokenizer ``tok``: comparable across tokenizers
    (a tokenizer with fewer tokens per character is not favoured, as token perplexity would be). Each text
    is encoded after an EOS (so its first token is predicted too; without ``eos_id`` the first token is
    context only) and scored in non-overlapping windows of ``window`` tokens, each window but the first
    seeing only itself. Returns {bits_per_char, chars, tokens, tokens_per_char}."""
    import math

    nll, chars, tokens = 0.0, 0, 0
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        if not ids:
            continue
        ids = ([eos_id] if eos_id is not None else []) + ids
        chars += len(text)
        tokens += len(ids) - (eos_id is not None)
        nll += window_nll(model, ids, window, device)[0]
    return {"bits_per_char": nll / math.log(2) / max(chars, 1), "chars": chars, "tokens": tokens,
            "tokens_per_char": tokens / max(chars, 1)}
