"""Scale configs (``conf/scales/*.yaml``): model shape and DCLM's training hyperparameters."""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import Field

from lakesift.config import StrictModel, load_model

SCALES = Path(__file__).resolve().parents[1] / "conf" / "scales"


class ModelConfig(StrictModel):
    d_model: int = Field(gt=0)
    n_layers: int = Field(gt=0)
    n_heads: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    seq_len: int = Field(gt=0)
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    qk_norm: bool = True

    @property
    def ffn_hidden(self) -> int:
        """open_lm's SwiGLU width: 256 * ceil(int(8d/3) / 256)."""
        return 256 * math.ceil(int(8 * self.d_model / 3) / 256)


class ScaleConfig(StrictModel):
    name: str
    model: ModelConfig
    params: int | None = None  # DCLM's published count, checked against the built model
    chinchilla_multiplier: float = 1.0
    total_tokens: int | None = None  # debug scales: a fixed budget instead of 20 x params x multiplier
    global_batch: int = Field(gt=0)  # sequences per optimizer step
    micro_batch: int = Field(gt=0)  # sequences per forward / backward per rank
    lr: float = Field(gt=0)
    warmup: int = Field(ge=0)
    weight_decay: float = Field(ge=0)
    z_loss: float = Field(ge=0)
    final_lr: float = Field(ge=0)
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    activation_checkpointing: bool = False

    def tokens(self, n_params: int) -> int:
        if self.total_tokens is not None:
            return self.total_tokens
        return int(20 * n_params * self.chinchilla_multiplier)

    def steps(self, n_params: int) -> int:
        return max(1, self.tokens(n_params) // (self.global_batch * self.model.seq_len))


def load_scale(name_or_path: str, overrides: dict | None = None) -> ScaleConfig:
    p = Path(name_or_path)
    if not p.suffix:
        p = SCALES / f"{name_or_path}.yaml"
    if not p.is_file():
        known = ", ".join(sorted(x.stem for x in SCALES.glob("*.yaml")))
        from lakesift.config import ConfigError

        raise ConfigError(f"unknown scale {name_or_path!r} (known: {known}; or a YAML path)")
    return load_model(ScaleConfig, p, overrides)
