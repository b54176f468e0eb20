"""Where a run's weights come from (``--init-from``, and each stage of ``--stages`` after the first):

* nothing: a new ``training.model.Transformer`` of the scale's shape, initialised from the seed;
* an export folder (``config.json`` with ``"format": "lakesift-open_lm"`` + ``model.safetensors``: a
  run's ``final/``, or ``python -m training.resize``'s output): its shape (the scale's ``seq_len`` kept) and
  weights;
* a training checkpoint ``step-N`` (torch distributed checkpoint + ``meta.json``): its shape and model
  weights, and with ``optimizer=True`` also the optimizer state (a stage with ``optimizer: keep``);
* a Hugging Face causal-LM folder or hub id (``config.json`` with a ``model_type``): the model through
  ``transformers`` (``training.hf``), trained as it is and exported back in its own format.

The vocabulary facts of a resized checkpoint (``vocab``: ``base_vocab_size`` …, which ``--freeze new_rows``
needs) travel with it: from its config, into the run's checkpoints' ``meta.json`` and its final export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Start:
    kind: str  # "new" | "export" | "dcp" | "hf"
    path: str | None = None
    model: dict | None = None  # our model's shape (ModelConfig fields), for export / dcp
    vocab: dict = field(default_factory=dict)  # base_vocab_size, tokenizer_vocab_size, padded_vocab_size …
    hf: str | None = None  # the Hugging Face model a checkpoint of an HF run was trained from (its architecture)


def inspect(spec: str | None) -> Start:
    """What ``spec`` is; a clear ``SystemExit`` when it is none of the known kinds."""
    if not spec:
        return Start("new")
    p = Path(spec)
    cfg = p / "config.json"
    if (p / "meta.json").is_file():
        meta = json.loads((p / "meta.json").read_text())
        hf = meta.get("hf_base")
        return Start("dcp", str(p), None if hf else meta["scale"]["model"], meta.get("vocab") or {}, hf)
    if cfg.is_file():
        conf = json.loads(cfg.read_text())
        if conf.get("format") == "lakesift-open_lm":
            return Start("export", str(p), conf["model"], conf.get("vocab") or {})
        if "model_type" in conf:
            vocab_file = p / "lakesift_vocab.json"
            vocab = json.loads(vocab_file.read_text()) if vocab_file.is_file() else {}
            return Start("hf", str(p), None, vocab, str(p))
    if not p.exists():
        from lakesift.resolve import looks_like_hub_id

        if looks_like_hub_id(spec):
            return Start("hf", spec, hf=spec)
    raise SystemExit(f"--init-from {spec}: not an export folder (config.json + model.safetensors), a training "
                     "checkpoint (step-N with meta.json) or a Hugging Face model folder / hub id")


def model_config(start: Start, scale):
    """The shape to build: the checkpoint's (with the scale's ``seq_len``), else the scale's."""
    from training.config import ModelConfig

    if start.model is None:
        return scale.model
    return ModelConfig.model_validate({**start.model, "seq_len": scale.model.seq_len})


def build(start: Start, scale, device, seed: int, *, compile: bool = False, act_ckpt: bool = False):
    """The model, sharded on ``device``, with the start's weights loaded (optimizer state: :func:`load_optimizer`)."""
    from training import parallelize

    if start.hf:  # a Hugging Face model, or a checkpoint of a run that trained one
        from training import hf

        model = hf.load(start.hf)
        parallelize.parallelize(model, device, compile=compile, act_ckpt=act_ckpt)
        if start.kind == "dcp":
            load_dcp(model, start.path)
        return model
    model = parallelize.build_model(model_config(start, scale), device, seed, compile=compile, act_ckpt=act_ckpt)
    if start.kind == "export":
        load_export(model, start.path)
    elif start.kind == "dcp":
        load_dcp(model, start.path)
    return model


def shape_of(model, scale):
    """The ``ModelConfig`` that FLOP counts use: ours, or the Hugging Face model's in the same terms."""
    from training.config import ModelConfig

    c = model.cfg  # ours, or training.hf.Shape (the same field names)
    if isinstance(c, ModelConfig):
        return c
    return ModelConfig(d_model=c.d_model, n_layers=c.n_layers, n_heads=c.n_heads, vocab_size=c.vocab_size,
                       seq_len=scale.model.seq_len)


def load_export(model, folder: str) -> None:
    """An export folder's full weights into the (sharded) model."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    state = load_file(str(Path(folder) / "model.safetensors"))
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def load_dcp(model, path: str, opt=None) -> None:
    """A training checkpoint's model weights (and with ``opt`` the optimizer state) into the model. The
    optimizer state of parameters the checkpoint's run left frozen is not in it: they start fresh."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import DefaultLoadPlanner
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    state = {"model": get_model_state_dict(model)}
    if opt is not None:
        state["optim"] = get_optimizer_state_dict(model, opt)
    dcp.load(state, checkpoint_id=path, planner=DefaultLoadPlanner(allow_partial_load=opt is not None))
    set_model_state_dict(model, state["model"])
    if opt is not None:
        set_optimizer_state_dict(model, opt, state["optim"])


def load_full(spec: str, scale=None):
    """The whole model of ``spec`` (an export folder, a training checkpoint step-N, a Hugging Face folder
    or hub id) unsharded on the CPU in fp32 — a frozen model beside the trained one (DPO's reference), which
    ``training.parallelize.place_frozen`` then shards like the policy. A checkpoint's shards are read with
    torch distributed checkpointing into full tensors (every rank reads what it needs of them)."""
    start = inspect(spec)
    if start.kind == "new":
        raise SystemExit("a frozen model needs weights: an export folder, a checkpoint or a Hugging Face model")
    if start.hf:
        from training import hf

        model = hf.load(start.hf)
    elif start.kind == "export":
        from training.export import load

        return load(start.path)
    else:
        import torch

        from training.config import ModelConfig
        from training.model import Transformer

        cfg = ModelConfig.model_validate({**start.model, **({"seq_len": scale.model.seq_len} if scale else {})})
        with torch.device("cpu"):
            model = Transformer(cfg)
    if start.kind == "dcp":
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint import DefaultLoadPlanner

        state = {"model": model.state_dict()}
        dcp.load(state, checkpoint_id=start.path, planner=DefaultLoadPlanner(allow_partial_load=True))
        model.load_state_dict(state["model"])
    return model.eval()


def describe(start: Start) -> str:
    if start.kind == "new":
        return "weights: new, from the seed"
    v = start.vocab
    extra = (f"; vocabulary {v.get('base_vocab_size'):,} base ids -> {v.get('padded_vocab_size'):,} rows"
             if v.get("base_vocab_size") and v.get("padded_vocab_size") else "")
    return f"weights: {start.kind} {start.path}{extra}"
