"""Checkpoints and tokenizers for evaluation, found through ``lakesift.resolve`` (local paths, cloud
URIs, ``hf://`` or bare Hugging Face hub ids)."""

from __future__ import annotations

import json
from pathlib import Path

from lakesift.resolve import resolve, shared_path


def load_checkpoint(path: str, device: str = "cpu"):
    """(model returning logits, max sequence length, what was loaded) for a ``training.export``
    folder (``final/``), a training checkpoint ``step-N`` (torch distributed checkpoint + meta.json)
    or a Hugging Face causal-LM folder or hub id (``transformers``)."""
    p = Path(resolve(path, "checkpoint", bare_hub_ids=True))
    if (p / "config.json").exists() and json.loads((p / "config.json").read_text()).get("format") == "lakesift-open_lm":
        from training.export import load

        model = load(p, device)
        return model, model.cfg.seq_len, "lakesift export"
    if (p / "meta.json").exists():  # a training checkpoint written with torch distributed checkpointing
        import torch.distributed.checkpoint as dcp

        from training.config import ModelConfig
        from training.model import Transformer

        cfg = ModelConfig.model_validate(json.loads((p / "meta.json").read_text())["scale"]["model"])
        model = Transformer(cfg)
        state = {"model": model.state_dict()}
        dcp.load(state, checkpoint_id=str(p))
        model.load_state_dict(state["model"])
        return model.to(device).eval(), cfg.seq_len, "lakesift training checkpoint"
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(p)).to(device).eval()

    def fn(x):
        return hf(x).logits

    return fn, int(getattr(hf.config, "max_position_embeddings", 2048)), "transformers"


def default_tokenizer() -> str:
    """GPT-NeoX's tokenizer in the shared data folder (what the tokenize job's shards use)."""
    return shared_path("data", "tokenizers", "gpt-neox-20b", "20B_tokenizer.json")


def load_tokenizer(path: str | None, checkpoint: str):
    """``path`` (a tokenizer.json, a folder holding one, or a hub id), else the checkpoint's own
    ``tokenizer.json``, else :func:`default_tokenizer`."""
    from tokenizers import Tokenizer

    if path is None:
        own = Path(resolve(checkpoint, "checkpoint", bare_hub_ids=True)) / "tokenizer.json"
        path = str(own) if own.exists() else default_tokenizer()
    return Tokenizer.from_file(resolve(path, "tokenizer", file="tokenizer.json", suffixes=(".json",),
                                       bare_hub_ids=True))
