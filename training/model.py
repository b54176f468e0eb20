"""A decoder-only transformer in the open_lm style DCLM trained.

Pre-norm blocks; gain-only LayerNorm (no bias) before attention, before the MLP and at the end;
qk-norm (LayerNorm of the query and key projections, without parameters, so the parameter count
equals DCLM's published counts: 411,616,256 / 1,439,795,200 / 6,889,410,560); rotary positions;
SwiGLU MLP of width ``256 * ceil(int(8d/3) / 256)``; untied input and output embeddings; no biases.
Attention goes through ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU).
Init: truncated normal with std ``1/sqrt(d)`` (``1/sqrt(hidden)`` for the MLP's output), output
projections of layer ``i`` scaled by ``1/sqrt(2 (i + 1))``, as open_lm does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.config import ModelConfig


class GainLayerNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, None, self.eps)


def rope_tables(head_dim: int, seq_len: int, base: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    t = torch.arange(seq_len, device=device, dtype=torch.float32)
    freqs = torch.outer(t, inv)
    return freqs.cos(), freqs.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (batch, heads, seq, head_dim); rotate pairs (even, odd halves) by position. ``cos`` / ``sin``:
    (positions, head_dim / 2) for positions 0, 1, …, or (batch, 1, seq, head_dim / 2) per token."""
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    if cos.dim() == 2:
        cos, sin = cos[: x.shape[-2]], sin[: x.shape[-2]]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def document_attention(doc_ids: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """For sequences that pack several documents (``doc_ids``: (batch, seq), a document's number at each
    position, non-decreasing): the boolean attention mask (batch, 1, seq, seq) that lets a position see
    only the earlier positions of its own document, and the rotary tables at positions restarted at each
    document's first token, so every document is computed exactly as it would be alone."""
    s = doc_ids.shape[1]
    same = doc_ids[:, :, None] == doc_ids[:, None, :]
    causal = torch.ones(s, s, dtype=torch.bool, device=doc_ids.device).tril()
    idx = torch.arange(s, device=doc_ids.device).expand_as(doc_ids)
    first = torch.ones_like(doc_ids, dtype=torch.bool)
    first[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    start = torch.cummax(torch.where(first, idx, torch.zeros_like(idx)), dim=1).values
    pos = idx - start
    return (same & causal)[:, None], cos[pos][:, None], sin[pos][:, None]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, self.h = cfg.d_model, cfg.n_heads
        self.head_dim = d // cfg.n_heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.qk_norm, self.eps = cfg.qk_norm, cfg.norm_eps

    def forward(self, x, cos, sin, mask=None):
        b, s, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if self.qk_norm:
            q = F.layer_norm(q, (d,), None, None, self.eps)
            k = F.layer_norm(k, (d,), None, None, self.eps)
        q, k, v = (t.view(b, s, self.h, self.head_dim).transpose(1, 2) for t in (q, k, v))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, s, d))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w12 = nn.Linear(cfg.d_model, 2 * cfg.ffn_hidden, bias=False)
        self.w3 = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, x):
        a, g = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * g)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = GainLayerNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = GainLayerNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = SwiGLU(cfg)

    def forward(self, x, cos, sin, mask=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = GainLayerNorm(cfg.d_model, cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor, doc_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.hidden(tokens, doc_ids))

    def hidden(self, tokens: torch.Tensor, doc_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The final normalised hidden states (apply ``head`` to the positions you need). ``doc_ids``
        (batch, seq): limit attention to each position's own document (:func:`document_attention`)."""
        h = self.embed(tokens)
        cos, sin = rope_tables(self.cfg.d_model // self.cfg.n_heads, tokens.shape[1], self.cfg.rope_base, tokens.device)
        mask = None
        if doc_ids is not None:
            mask, cos, sin = document_attention(doc_ids, cos, sin)
        for layer in self.layers:  # training.parallelize may checkpoint, compile and shard each one
            h = layer(h, cos, sin) if mask is None else layer(h, cos, sin, mask)
        return self.norm(h)


def init_tensor(name: str, shape, cfg: ModelConfig, gen: torch.Generator) -> torch.Tensor:
    """The initial value of parameter ``name`` (fp32, CPU), from ``gen`` alone: the same values
    whatever the number of ranks the parameter is later sharded over."""
    t = torch.empty(shape, dtype=torch.float32)
    if name.endswith("norm.weight"):
        return t.fill_(1.0)
    d = cfg.d_model
    layer = int(name.split(".")[1]) if name.startswith("layers.") else 0
    if name.endswith("attn.out.weight"):
        std = 1.0 / math.sqrt(d) / math.sqrt(2 * (layer + 1))
    elif name.endswith("ffn.w3.weight"):
        std = 1.0 / math.sqrt(cfg.ffn_hidden) / math.sqrt(2 * (layer + 1))
    else:  # embeddings, output head, qkv, w12
        std = 1.0 / math.sqrt(d)
    return nn.init.trunc_normal_(t, std=std, a=-3 * std, b=3 * std, generator=gen)


@torch.no_grad()
def init_parameters(model: Transformer, seed: int) -> None:
    """Initialise every parameter from a per-parameter seeded generator. Works on plain tensors and
    on FSDP2's sharded DTensors (each rank copies its shard of the full value)."""
    import zlib

    for name, p in model.named_parameters():
        name = name.replace("_orig_mod.", "")  # torch.compile's wrapper: the same values compiled or not
        gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
        full = init_tensor(name, tuple(p.shape), model.cfg, gen)
        if hasattr(p, "device_mesh"):  # DTensor
            from torch.distributed.tensor import distribute_tensor

            local = distribute_tensor(full.to(p.device), p.device_mesh, p.placements).to_local()
            p.to_local().copy_(local)
        else:
            p.copy_(full.to(p.device))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_token(cfg: ModelConfig, params: int) -> int:
    """Training FLOPs per token as torchtitan counts them: 6 x (parameters without the input
    embedding) for the matmuls, plus 12 x layers x heads x head_dim x seq for attention scores."""
    non_embed = params - cfg.vocab_size * cfg.d_model
    return 6 * non_embed + 12 * cfg.n_layers * cfg.n_heads * (cfg.d_model // cfg.n_heads) * cfg.seq_len
